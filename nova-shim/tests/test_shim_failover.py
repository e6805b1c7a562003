"""[ecrae] endpoints: the shim against two real `ecrae serve` processes
(bin/ecrae; skipped when not built). Each is a standalone service here:
failover is the shim's business, and any replica answers a pass alike."""

import logging
import os
import time

import pytest

from nova.scheduler import filters as nova_filters

import shimtest
from ecrae_nova import client
from ecrae_nova import scheduler
from test_shim_real_service import ECRAE, Service


@pytest.fixture
def two_services(tmp_path, ecrae_conf, monkeypatch):
    if not os.access(ECRAE, os.X_OK):
        pytest.skip('%s not built (run `make build`)' % ECRAE)
    services = []
    for name in ('a', 'b'):
        d = tmp_path / name
        d.mkdir()
        s = Service(d)
        services.append(s)
        s.start()
    # The order of endpoints puts this process's preferred replica (from
    # its host name and pid) on services[0].
    eps = [s.endpoint for s in services]
    k = client.preferred(2)
    ordered = eps[-k:] + eps[:-k] if k else eps
    assert client.preferred(2) == ordered.index(eps[0])
    ecrae_conf(endpoints=ordered, timeout=5.0, down_seconds=0.5)
    served = []
    real = client._call_one

    def spy(conf, endpoint, method, build, budget):
        resp = real(conf, endpoint, method, build, budget)
        served.append(endpoint)
        return resp
    monkeypatch.setattr(client, '_call_one', spy)
    yield services, served
    client.close_channels()
    client._down.clear()
    for s in services:
        if s.proc is not None and s.proc.poll() is None:
            s.stop()
        s.log.close()


def _pass():
    hosts = shimtest.host_states(4)
    spec = shimtest.request_spec(extra_specs={'ecrae:tag': 'web-frontend'},
                                 image_props={'hw_architecture': 'x86_64'})
    fh = nova_filters.HostFilterHandler()
    return fh.get_filtered_objects([scheduler.EcraeFilter()], hosts, spec,
                                   index=0)


def test_prefers_one_fails_over_within_the_deadline_and_goes_back(
        two_services, caplog):
    caplog.set_level(logging.WARNING, logger='ecrae_nova')
    (a, b), served = two_services
    _pass()
    _pass()
    assert served == [a.endpoint, a.endpoint]   # stable preference

    # kill -9 the preferred replica: the next pass is answered by the
    # other one, in the same call, without failing open.
    a.proc.kill()
    a.proc.wait()
    del served[:]
    _pass()
    assert served == [b.endpoint]
    assert scheduler.FAILURE_WARNING.suppressed == 0
    assert [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING] == []

    # Back after down_seconds once it is up again.
    a.start()
    deadline = time.monotonic() + 30
    while not served or served[-1] != a.endpoint:
        assert time.monotonic() < deadline, served
        _pass()
    assert [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING] == []


def test_fails_open_only_when_no_replica_answers(two_services, warnings_log):
    (a, b), served = two_services
    a.stop()
    b.stop()
    hosts = shimtest.host_states(4)
    passed = _pass()
    assert len(passed) == len(hosts)   # fail-open: every host passes
    assert served == []
    msgs = [r.getMessage() for r in warnings_log()]
    assert len(msgs) == 1 and 'FilterHosts' in msgs[0], msgs
    assert a.endpoint in msgs[0] and b.endpoint in msgs[0]
