"""[ecrae] endpoints: the shim against two real `ecrae serve` processes
(bin/ecrae; skipped when not built). Each is a standalone service here:
failover is the shim's business, and any replica answers a pass alike."""

import logging
import os
import re
import time
import urllib.request

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
    scheduler._UNREPORTED.clear()
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


def _fail_opens(service, reason):
    """ecrae_placement_fail_open_total of FilterHosts for reason, as the
    service's /metrics says (0 when absent)."""
    url = 'http://127.0.0.1:%d/metrics' % service.ports[1]
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    m = re.search(r'^ecrae_placement_fail_open_total\{method="/ecrae.v1.'
                  r'PlacementService/FilterHosts",reason="%s"\} (\S+)$'
                  % reason, text, re.M)
    return float(m.group(1)) if m else 0.0


def test_passes_failed_open_while_unreachable_are_reported_later(
        two_services, warnings_log):
    """The service cannot count the passes that never reached it: the shim
    reports them with its next call that gets an answer, once."""
    (a, b), served = two_services
    a.stop()
    b.stop()
    for _ in range(2):
        assert len(_pass()) == 4   # fail-open, twice, nobody answering
    b.start()
    deadline = time.monotonic() + 30
    while not served:
        assert time.monotonic() < deadline, (b.proc.poll(), b.output()[-2000:])
        _pass()
    # Only b answered, and only after both outage passes (a pass of the
    # loop above that failed while b was starting adds to them).
    assert _fail_opens(b, 'unreachable') >= 2
    before = _fail_opens(b, 'unreachable')
    _pass()
    assert served[-1] == b.endpoint
    assert _fail_opens(b, 'unreachable') == before   # reported once
    assert scheduler._UNREPORTED == {}
