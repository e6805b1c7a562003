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


@pytest.fixture
def ecrae_service(tmp_path, ecrae_conf):
    if not os.access(ECRAE, os.X_OK):
        pytest.skip('%s not built (run `make build`); the real-service test '
                    'needs it' % ECRAE)
    grpc_port, http_port, nats_port = (shimtest.free_port() for _ in range(3))
    log = open(tmp_path / 'ecrae.log', 'w')
    proc = subprocess.Popen(
        [ECRAE, 'serve', '--grpc-addr', '127.0.0.1:%d' % grpc_port,
         '--http-addr', '127.0.0.1:%d' % http_port,
         '--nats-addr', '127.0.0.1:%d' % nats_port,
         '--db', str(tmp_path / 'ecrae.db')],
        cwd=str(tmp_path), stdout=log, stderr=subprocess.STDOUT)
    endpoint = '127.0.0.1:%d' % grpc_port
    try:
        channel = grpc.insecure_channel(endpoint)
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail('ecrae serve exited with %s:\n%s' % (
                    proc.returncode, (tmp_path / 'ecrae.log').read_text()))
            try:
                grpc.channel_ready_future(channel).result(timeout=0.5)
                break
            except grpc.FutureTimeoutError:
                if time.monotonic() > deadline:
                    pytest.fail('ecrae serve not ready on %s:\n%s' % (
                        endpoint, (tmp_path / 'ecrae.log').read_text()))
        channel.close()
        # A first call may load the knowledge base: a generous deadline.
        ecrae_conf(endpoint=endpoint, timeout=10.0)
        yield proc
    finally:
        client.close_channels()   # lets the server's graceful stop finish
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


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
