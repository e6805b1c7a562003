"""The shim over mutual TLS with a `scheduler` certificate, inside a real Nova.

`bin/ecrae serve` runs with --tls-cert/--tls-key/--tls-client-ca and
--authz; the certificates are made for this test by Debian's `openssl` (none
is checked in). Nova's scheduler (the shim's existing tls_enabled, ca_file,
cert_file and key_file options) boots servers with ECRAE's ranking; the same
certificate is refused a KB import, which an operator certificate may do.
"""
import harness  # noqa: F401  (sys.path + nova monkey patching, first)

import os
import shutil
import subprocess
import tempfile

import grpc

from ecrae.v1 import knowledge_base_pb2
from ecrae.v1 import knowledge_base_pb2_grpc
from ecrae_nova import client as ecrae_client

import support
import test_ecrae_in_nova as base


def _openssl(*args):
    subprocess.run(('openssl',) + args, check=True, capture_output=True,
                   stdin=subprocess.DEVNULL, timeout=60)


def make_pki(d):
    """A CA, a server certificate for 127.0.0.1, and client certificates
    with CN nova-scheduler and ops (P-256 keys)."""
    ca_key, ca = os.path.join(d, 'ca-key.pem'), os.path.join(d, 'ca.pem')
    _openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt',
             'ec_paramgen_curve:P-256', '-nodes', '-keyout', ca_key,
             '-out', ca, '-days', '1', '-subj', '/CN=ecrae-test-ca')
    out = {'ca': ca}
    for name, cn, ext in (
            ('server', 'ecrae-server',
             'subjectAltName=IP:127.0.0.1,DNS:localhost\n'
             'extendedKeyUsage=serverAuth'),
            ('scheduler', 'nova-scheduler', 'extendedKeyUsage=clientAuth'),
            ('operator', 'ops', 'extendedKeyUsage=clientAuth')):
        key, csr, crt = (os.path.join(d, name + s)
                         for s in ('-key.pem', '.csr', '.pem'))
        extfile = os.path.join(d, name + '.ext')
        with open(extfile, 'w') as f:
            f.write(ext + '\n')
        _openssl('req', '-newkey', 'ec', '-pkeyopt',
                 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key,
                 '-out', csr, '-subj', '/CN=' + cn)
        _openssl('x509', '-req', '-in', csr, '-CA', ca, '-CAkey', ca_key,
                 '-CAcreateserial', '-out', crt, '-days', '1',
                 '-extfile', extfile)
        out[name] = (crt, key)
    return out


class ShimMutualTLSTest(base.EcraeNovaTestCase):

    @classmethod
    def setUpClass(cls):
        if shutil.which('openssl') is None:
            raise RuntimeError('openssl not found (make test installs it)')
        cls.pki_dir = tempfile.mkdtemp(prefix='ecrae-pki-')
        cls.pki = make_pki(cls.pki_dir)
        authz = os.path.join(cls.pki_dir, 'authz.yaml')
        with open(authz, 'w') as f:
            f.write('operator: [ops]\nscheduler: [nova-scheduler]\n')
        crt, key = cls.pki['server']
        op_crt, op_key = cls.pki['operator']
        # EcraeNovaTestCase.setUpClass starts support.EcraeService():
        # start this one instead, with TLS, roles, and operator client
        # flags for the KB import.
        orig = support.EcraeService

        def tls_service():
            return orig(extra_args=['--tls-cert', crt, '--tls-key', key,
                                    '--tls-client-ca', cls.pki['ca'],
                                    '--authz', authz],
                        https_ca=cls.pki['ca'],
                        client_args=['--tls-ca', cls.pki['ca'],
                                     '--tls-cert', op_crt,
                                     '--tls-key', op_key])
        support.EcraeService = tls_service
        try:
            super().setUpClass()
        finally:
            support.EcraeService = orig

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.pki_dir, ignore_errors=True)

    def _configure_nova(self):
        super()._configure_nova()
        crt, key = self.pki['scheduler']
        self.flags(tls_enabled=True, ca_file=self.pki['ca'], cert_file=crt,
                   key_file=key, group='ecrae')

    def test_boots_over_mutual_tls_with_scheduler_role(self):
        for _ in range(3):
            server = self._boot(flavor_id=self._flavor())
            ranking = self._ecrae_ranking(server['id'])  # asserts no error
            top = max(ranking, key=ranking.get)
            self.assertEqual(base.ECRAE_FAVOURITE, top, ranking)
            self.assertEqual(top, server['OS-EXT-SRV-ATTR:host'])
        # Every call of the shim went through: nothing failed open.
        self.assertTrue(self.spy.calls)
        self.assertEqual([], [c for c in self.spy.calls if c[3] is not None])

    def test_scheduler_certificate_is_refused_kb_import(self):
        crt, key = self.pki['scheduler']
        with open(self.pki['ca'], 'rb') as f:
            root = f.read()
        with open(crt, 'rb') as f:
            chain = f.read()
        with open(key, 'rb') as f:
            pkey = f.read()
        channel = grpc.secure_channel(
            self.ecrae.grpc_addr, grpc.ssl_channel_credentials(
                root_certificates=root, private_key=pkey,
                certificate_chain=chain),
            options=[('grpc.enable_http_proxy', 0)])
        self.addCleanup(channel.close)
        stub = knowledge_base_pb2_grpc.KnowledgeBaseServiceStub(channel)
        # testtools' assertRaises returns the exception (no context manager)
        exc = self.assertRaises(
            grpc.RpcError, ecrae_client.run_blocking,
            stub.ImportKnowledgeBase,
            knowledge_base_pb2.ImportKnowledgeBaseRequest(
                yaml=base.KB_YAML, replace=True), timeout=10)
        self.assertEqual(grpc.StatusCode.PERMISSION_DENIED, exc.code())
        self.assertIn('ImportKnowledgeBase', exc.details())
        self.assertIn('role scheduler', exc.details())
        # Reads are the scheduler's.
        tags = ecrae_client.run_blocking(
            stub.ListTags, knowledge_base_pb2.ListTagsRequest(), timeout=10)
        self.assertIn('default', [t.name for t in tags.tags])
