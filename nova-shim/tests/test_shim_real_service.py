"""One filter + weigher pass through Nova's handlers against the real Go
service (bin/ecrae serve). Skipped when the binary has not been built."""

import logging
import os
import subprocess
import time

import grpc
import pytest

from nova.scheduler import filters as nova_filters
from nova.scheduler import weights as nova_weights

import shimtest
from ecrae_nova import client
from ecrae_nova import scheduler

REPO = os.path.dirname(shimtest.SHIM_DIR)
ECRAE = os.environ.get('ECRAE_BIN', os.path.join(REPO, 'bin', 'ecrae'))


class Service(object):
    """`ecrae serve` on fixed ports and a bbolt file in tmp_path."""

    def __init__(self, tmp_path, *args):
        self.tmp_path = tmp_path
        self.args = list(args)
        self.ports = [shimtest.free_port() for _ in range(3)]
        self.endpoint = '127.0.0.1:%d' % self.ports[0]
        self.proc = None
        self.log = open(tmp_path / 'ecrae.log', 'a')

    def start(self):
        grpc_port, http_port, nats_port = self.ports
        self.proc = subprocess.Popen(
            [ECRAE, 'serve', '--grpc-addr', self.endpoint,
             '--http-addr', '127.0.0.1:%d' % http_port,
             '--nats-addr', '127.0.0.1:%d' % nats_port,
             '--db', str(self.tmp_path / 'ecrae.db')] + self.args,
            cwd=str(self.tmp_path), stdout=self.log, stderr=subprocess.STDOUT)
        channel = grpc.insecure_channel(self.endpoint)
        deadline = time.monotonic() + 30
        try:
            while True:
                if self.proc.poll() is not None:
                    pytest.fail('ecrae serve exited with %s:\n%s' % (
                        self.proc.returncode, self.output()))
                try:
                    grpc.channel_ready_future(channel).result(timeout=0.5)
                    return
                except grpc.FutureTimeoutError:
                    if time.monotonic() > deadline:
                        pytest.fail('ecrae serve not ready on %s:\n%s' % (
                            self.endpoint, self.output()))
        finally:
            channel.close()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def output(self):
        self.log.flush()
        return (self.tmp_path / 'ecrae.log').read_text()


@pytest.fixture
def ecrae_service(tmp_path, ecrae_conf):
    if not os.access(ECRAE, os.X_OK):
        pytest.skip('%s not built (run `make build`); the real-service test '
                    'needs it' % ECRAE)
    service = Service(tmp_path)
    try:
        service.start()
        # A first call may load the knowledge base: a generous deadline.
        ecrae_conf(endpoint=service.endpoint, timeout=10.0)
        yield service
    finally:
        client.close_channels()   # lets the server's graceful stop finish
        if service.proc is not None:
            service.stop()
        service.log.close()


def test_filter_and_weigher_pass_against_ecrae_serve(ecrae_service, caplog,
                                                      monkeypatch):
    caplog.set_level(logging.WARNING, logger='ecrae_nova')
    answers = []
    real_call = client.call

    def spy(conf, method, request):
        resp = real_call(conf, method, request)
        answers.append((method, resp))
        return resp
    monkeypatch.setattr(client, 'call', spy)
    hosts = shimtest.host_states(4)
    # A tag of the default knowledge base, carried by the flavor.
    spec = shimtest.request_spec(
        extra_specs={'ecrae:tag': 'web-frontend'},
        image_props={'hw_architecture': 'x86_64'})

    fh = nova_filters.HostFilterHandler()
    passed = fh.get_filtered_objects(
        [c() for c in fh.get_matching_classes(['ecrae_nova.EcraeFilter'])],
        hosts, spec, index=0)
    wh = nova_weights.HostWeightHandler()
    weighed = wh.get_weighed_objects(
        [c() for c in wh.get_matching_classes(['ecrae_nova.EcraeWeigher'])],
        hosts, spec)

    failures = [r.getMessage() for r in caplog.records
                if r.name == scheduler.LOG.logger.name]
    assert failures == [], 'the service did not answer: %s' % failures
    assert scheduler.FAILURE_WARNING.suppressed == 0
    # passed hosts are a subsequence of the candidates, in order
    order = [h.host for h in hosts]
    idx = [order.index(h.host) for h in passed]
    assert idx == sorted(idx)
    assert sorted(w.obj.host for w in weighed) == sorted(order)
    assert all(0.0 <= w.weight <= 1.0 for w in weighed)
    assert [m for m, _ in answers] == ['FilterHosts', 'WeighHosts']
    for _, resp in answers:
        assert resp.tag == 'web-frontend', resp
    assert len(answers[1][1].score_values) == len(hosts)

    # The scheduler hint carries the tag when the flavor does not.
    answers.clear()
    spec = shimtest.request_spec(hints={'ecrae_tag': ['batch']})
    fh.get_filtered_objects(
        [c() for c in fh.get_matching_classes(['ecrae_nova.EcraeFilter'])],
        hosts, spec, index=0)
    assert answers[0][1].tag == 'batch'


def test_references_against_ecrae_serve_and_its_restart(ecrae_service,
                                                        caplog, monkeypatch):
    """Unchanged hosts go as references once sent and get the same
    answers; after a restart (the service holds no state) the pass
    sends full states again, without a failure or a warning."""
    caplog.set_level(logging.WARNING, logger='ecrae_nova')
    sent = []
    real_call = client.call

    def spy(conf, method, build):
        def recorded(refs):
            request = build(refs)
            sent.append((method, request.references, request.packed))
            return request
        return real_call(conf, method, recorded)
    monkeypatch.setattr(client, 'call', spy)
    hosts = shimtest.host_states(6)
    spec = shimtest.request_spec(
        extra_specs={'ecrae:tag': 'web-frontend'},
        image_props={'hw_architecture': 'x86_64'})
    fh = nova_filters.HostFilterHandler()
    wh = nova_weights.HostWeightHandler()
    filters = [scheduler.EcraeFilter()]
    weighers = [scheduler.EcraeWeigher()]

    def one_pass():
        passed = fh.get_filtered_objects(filters, hosts, spec, index=0)
        return [(w.obj.host, w.weight)
                for w in wh.get_weighed_objects(weighers, passed, spec)]

    first = one_pass()
    assert len(first) > 1
    n = len(first)
    again = one_pass()
    assert again == first
    # The first call sends full states; every later one refers to them,
    # packed in host_refs since the service said it reads them.
    assert sent == [('FilterHosts', 0, False), ('WeighHosts', n, True),
                    ('FilterHosts', 6, True), ('WeighHosts', n, True)]

    del sent[:]
    ecrae_service.stop()
    ecrae_service.start()
    assert one_pass() == first
    assert sent == [('FilterHosts', 6, True), ('FilterHosts', 0, False),
                    ('WeighHosts', n, True)]
    assert [r.getMessage() for r in caplog.records
            if r.name.startswith('ecrae_nova')] == []


@pytest.mark.parametrize('where', ['service', 'shim'])
def test_a_pass_past_the_message_limit_fails_open_and_says_why(
        tmp_path, ecrae_conf, warnings_log, where):
    """A pass larger than the service's --grpc-max-message, or than the
    shim's own [ecrae] max_message_mb, fails open with "message too large"
    in the warning; a pass within both goes through."""
    if not os.access(ECRAE, os.X_OK):
        pytest.skip('%s not built (run `make build`)' % ECRAE)
    # The service's limit: 8 KiB takes a pass of 4 hosts (about 250 bytes
    # each), not one of 60. The shim's: 1 MiB, which 4 hosts with a
    # 300 KB cpu_info each pass.
    service = Service(tmp_path, '--grpc-max-message',
                      '8KiB' if where == 'service' else '64MiB')
    try:
        service.start()
        ecrae_conf(endpoint=service.endpoint, timeout=10.0, max_message_mb=1)
        spec = shimtest.request_spec(extra_specs={'ecrae:tag': 'web-frontend'})
        filt = scheduler.EcraeFilter()

        small = shimtest.host_states(4)
        assert filt.filter_all(small, spec) is not None
        assert warnings_log() == []

        if where == 'service':
            big = shimtest.host_states(60)
        else:
            big = shimtest.host_states(4)
            for h in big:
                h.cpu_info = '{"arch": "x86_64", "features": [%s]}' % (
                    ', '.join('"f%06d"' % i for i in range(30000)))
        assert list(filt.filter_all(big, spec)) == big   # failed open
        msgs = [r.getMessage() for r in warnings_log()]
        assert len(msgs) == 1, msgs
        assert 'message too large, RESOURCE_EXHAUSTED' in msgs[0], msgs[0]
        assert 'failing open' in msgs[0], msgs[0]
    finally:
        client.close_channels()
        service.stop()
        service.log.close()
