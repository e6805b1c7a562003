"""TLS on both links: the shim's gRPC channel and the NATS driver, with a
throw-away CA, server and client certificates (mutual TLS)."""

import datetime
import ipaddress
import ssl

import grpc
import pytest

import shimtest
from test_shim_notifier import (  # noqa: F401  (fixtures nats, drivers)
    NATS_SERVER, Subscriber, drivers, make_driver, message, nats)
from test_shim_scheduler import names, run_filter

x509 = pytest.importorskip('cryptography.x509')
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402


def _cert(subject, issuer_name, issuer_key, key, ca=False, san=True):
    now = datetime.datetime.utcnow()
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                     subject)]))
         .issuer_name(issuer_name).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None),
                        critical=True))
    if san:
        b = b.add_extension(x509.SubjectAlternativeName([
            x509.DNSName('localhost'),
            x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]),
            critical=False)
    return b.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope='module')
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp('pki')
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'test-ca')])
    ca = _cert('test-ca', ca_name, ca_key, ca_key, ca=True, san=False)
    files = {'ca': d / 'ca.pem'}
    files['ca'].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for who in ('server', 'client'):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(who, ca_name, ca_key, key)
        files[who + '_cert'] = d / (who + '.pem')
        files[who + '_key'] = d / (who + '.key')
        files[who + '_cert'].write_bytes(
            cert.public_bytes(serialization.Encoding.PEM))
        files[who + '_key'].write_bytes(key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
    return {k: str(v) for k, v in files.items()}


def _read(path):
    with open(path, 'rb') as f:
        return f.read()


def test_grpc_mutual_tls(pki, ecrae_conf, warnings_log):
    servicer = shimtest.FakePlacement()
    servicer.reject = {'host1'}
    from concurrent import futures
    from ecrae.v1 import placement_pb2_grpc
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    placement_pb2_grpc.add_PlacementServiceServicer_to_server(servicer,
                                                              server)
    creds = grpc.ssl_server_credentials(
        [(_read(pki['server_key']), _read(pki['server_cert']))],
        root_certificates=_read(pki['ca']), require_client_auth=True)
    port = server.add_secure_port('127.0.0.1:0', creds)
    server.start()
    try:
        hosts = shimtest.host_states(3)
        ecrae_conf(endpoint='127.0.0.1:%d' % port, timeout=5.0,
                   tls_enabled=True, ca_file=pki['ca'],
                   cert_file=pki['client_cert'], key_file=pki['client_key'])
        assert names(run_filter(hosts, shimtest.request_spec())) == \
            ['host2', 'host3']
        assert servicer.methods() == ['FilterHosts']
        assert warnings_log() == []

        # Without a client certificate the server refuses: fail open.
        ecrae_conf(cert_file=None, key_file=None)
        assert names(run_filter(hosts, shimtest.request_spec())) == \
            names(hosts)
        assert servicer.methods() == ['FilterHosts']
        assert len(warnings_log()) == 1
    finally:
        server.stop(0)


class TlsSubscriber(Subscriber):
    def __init__(self, port, pki, subject='>'):
        self.pki = pki
        super().__init__(port, subject)

    def _line(self):
        line = super()._line()
        if line.startswith(b'INFO ') and not isinstance(self.sock,
                                                        ssl.SSLSocket):
            ctx = ssl.create_default_context(cafile=self.pki['ca'])
            ctx.load_cert_chain(self.pki['client_cert'],
                                self.pki['client_key'])
            self.sock = ctx.wrap_socket(self.sock,
                                        server_hostname='127.0.0.1')
        return line


@pytest.mark.skipif(NATS_SERVER is None, reason='nats-server not installed')
def test_nats_mutual_tls(pki, nats, drivers, tmp_path):
    config = tmp_path / 'nats.conf'
    config.write_text('tls {\n  cert_file: "%s"\n  key_file: "%s"\n'
                      '  ca_file: "%s"\n  verify: true\n}\n'
                      % (pki['server_cert'], pki['server_key'], pki['ca']))
    server = nats(config=str(config)).start()
    sub = TlsSubscriber(server.port, pki)
    drv = drivers(make_driver(server.port, tls_enabled=True,
                              ca_file=pki['ca'], cert_file=pki['client_cert'],
                              key_file=pki['client_key']))
    drv.notify({}, message(n=7), 'INFO', None)
    subject, body = sub.next()
    assert subject == 'nova.versioned_notifications.info.instance.create.end'
    assert body['message_id'] == 'id-7'
    assert drv.flush(5) and drv.published == 1
