"""EcraeFilter / EcraeWeigher driven by Nova's own handlers with real
HostStates and RequestSpecs, against FakePlacement (see shimtest.py)."""

import json
import logging
import os
import subprocess
import sys
import time

import grpc
import pytest

import nova.conf
from nova import objects
from nova.scheduler import filters as nova_filters
from nova.scheduler import weights as nova_weights

import shimtest
from ecrae_nova import client
from ecrae_nova import opts
from ecrae_nova import scheduler
from ecrae_nova import translate
from ecrae.v1 import placement_pb2

CONF = nova.conf.CONF
HERE = os.path.dirname(os.path.abspath(__file__))


def run_filter(hosts, spec, index=0):
    handler = nova_filters.HostFilterHandler()
    classes = handler.get_matching_classes(['ecrae_nova.EcraeFilter'])
    return handler.get_filtered_objects([c() for c in classes], hosts, spec,
                                        index=index)


def run_weigher(hosts, spec):
    handler = nova_weights.HostWeightHandler()
    classes = handler.get_matching_classes(['ecrae_nova.EcraeWeigher'])
    return handler.get_weighed_objects([c() for c in classes], hosts, spec)


def names(hosts):
    return [h.host for h in hosts]


# -- loading and options -----------------------------------------------------

def test_import_is_cheap_and_classes_load():
    code = ('import sys, ecrae_nova\n'
            'heavy = [m for m in ("grpc", "nova", "nova.scheduler") '
            'if m in sys.modules]\n'
            'assert not heavy, heavy\n'
            'from nova.scheduler import filters, weights\n'
            'f = filters.HostFilterHandler().get_matching_classes('
            '["ecrae_nova.EcraeFilter"])\n'
            'w = weights.HostWeightHandler().get_matching_classes(['
            '"nova.scheduler.weights.all_weighers", '
            '"ecrae_nova.EcraeWeigher"])\n'
            'assert f == [ecrae_nova.EcraeFilter], f\n'
            'assert ecrae_nova.EcraeWeigher in w\n'
            'from ecrae_nova import client\n'
            'assert client._stubs == {}\n'
            'print("ok")\n')
    env = dict(os.environ, PYTHONPATH=shimtest.SHIM_DIR)
    out = subprocess.run([sys.executable, '-c', code], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'ok'


def test_options_registered_on_nova_conf():
    g = CONF.ecrae
    assert g.endpoint == '127.0.0.1:50051'
    assert g.endpoints == [] and g.down_seconds == 5.0
    assert g.timeout == 0.2
    assert g.weight_multiplier == 1.0
    assert g.fail_open is True
    assert g.tls_enabled is False
    assert g.max_message_mb == 64   # as ecrae serve --grpc-max-message
    assert g.ca_file is None and g.cert_file is None and g.key_file is None
    assert CONF.ecrae_nats.url == 'nats://127.0.0.1:4222'
    listed = {getattr(grp, 'name', grp): [o.name for o in o_]
              for grp, o_ in opts.list_opts()}
    assert set(listed['ecrae']) == {'endpoint', 'endpoints', 'down_seconds',
                                    'timeout', 'weight_multiplier',
                                    'fail_open', 'max_message_mb',
                                    'tls_enabled', 'ca_file', 'cert_file',
                                    'key_file'}
    assert 'subject_prefix' in listed['ecrae_nats']


# -- the happy path: one call per pass, translation, order ---------------------

def test_filter_one_call_per_pass_and_translation(fake_service):
    aggs = {2: [shimtest.aggregate('green', ecrae_weight_multiplier='2')]}
    hosts = shimtest.host_states(5, aggregates=aggs)
    fake_service.reject = {'host2', 'host4'}
    spec = shimtest.request_spec(extra_specs={'ecrae:tag': 'web'},
                                 hints={'ecrae_tag': ['batch'],
                                        'group': ['a', 'b']})

    passed = run_filter(hosts, spec)

    assert names(passed) == ['host1', 'host3', 'host5']
    assert fake_service.methods() == ['FilterHosts']
    req = fake_service.calls[0][1]
    assert [h.host for h in req.hosts] == names(hosts)
    inst = req.instance
    assert inst.tag == ''   # the service resolves the tag itself
    assert inst.flavor.name == 'm1.small'
    assert (inst.flavor.vcpus, inst.flavor.memory_mb, inst.flavor.root_gb,
            inst.flavor.ephemeral_gb, inst.flavor.swap_mb) == (
        2, 2048, 20, 5, 512)
    assert dict(inst.flavor.extra_specs) == {'ecrae:tag': 'web'}
    assert list(inst.scheduler_hints['ecrae_tag'].values) == ['batch']
    assert list(inst.scheduler_hints['group'].values) == ['a', 'b']
    assert inst.image_properties['hw_architecture'] == 'aarch64'
    assert inst.image_properties['hw_disk_bus'] == 'virtio'
    assert inst.project_id == 'project-a'
    assert inst.num_instances == 1
    assert inst.instance_uuid == spec.instance_uuid

    h2, hs2 = req.hosts[1], hosts[1]
    assert (h2.host, h2.nodename, h2.uuid) == ('host2', 'node2', hs2.uuid)
    assert h2.free_ram_mb == hs2.free_ram_mb
    assert h2.total_usable_ram_mb == 65536
    assert h2.free_disk_mb == hs2.free_disk_mb
    assert h2.total_usable_disk_gb == 1000
    assert (h2.vcpus_total, h2.vcpus_used) == (16, 2)
    assert (h2.cpu_allocation_ratio, h2.ram_allocation_ratio,
            h2.disk_allocation_ratio) == (16.0, 1.5, 1.0)
    assert h2.hypervisor_type == 'QEMU'
    assert json.loads(h2.cpu_info)['arch'] == 'x86_64'
    assert h2.metrics['cpu.percent'] == pytest.approx(27.0)
    assert h2.metrics['cpu.frequency'] == 2402.0
    assert [(a.name, dict(a.metadata)) for a in h2.aggregates] == [
        ('green', {'ecrae_weight_multiplier': '2'})]
    assert len(req.hosts[0].aggregates) == 0
    assert h2.num_instances == 2


def test_filter_asks_for_flags_unless_debug_logging(fake_service, caplog):
    hosts = shimtest.host_states(3)
    fake_service.reject = {'host2'}
    spec = shimtest.request_spec()
    assert names(run_filter(hosts, spec)) == ['host1', 'host3']
    req = fake_service.calls[-1][1]
    assert req.passed_only is True

    # With its debug log on, the filter asks for full verdicts and logs why
    # each rejected host was rejected.
    caplog.set_level(logging.DEBUG, logger='ecrae_nova')
    assert names(run_filter(hosts, spec)) == ['host1', 'host3']
    assert fake_service.calls[-1][1].passed_only is False
    why = [r.getMessage() for r in caplog.records
           if r.getMessage().startswith('EcraeFilter rejected')]
    assert why == ["EcraeFilter rejected (host2, node2) [fake]: rejected by "
                   "the test (tag 'web' from flavor)"]


def test_filter_runs_once_per_instance_index(fake_service):
    hosts = shimtest.host_states(3)
    spec = shimtest.request_spec()
    spec.num_instances = 2
    run_filter(hosts, spec, index=0)
    run_filter(hosts, spec, index=1)
    assert fake_service.methods() == ['FilterHosts', 'FilterHosts']
    assert fake_service.calls[0][1].instance.num_instances == 2


def test_host_passes(fake_service):
    hosts = shimtest.host_states(2)
    fake_service.reject = {'host2'}
    f = scheduler.EcraeFilter()
    spec = shimtest.request_spec()
    assert f.host_passes(hosts[0], spec) is True
    assert f.host_passes(hosts[1], spec) is False
    assert [len(r.hosts) for _, r in fake_service.calls] == [1, 1]


def test_weigher_one_call_raw_weights_in_order(fake_service):
    hosts = shimtest.host_states(4)
    fake_service.scores = {'host1': 10.0, 'host2': 40.0, 'host3': 20.0,
                           'host4': 30.0}
    spec = shimtest.request_spec(hints={'ecrae_tag': ['web']})

    raw = scheduler.EcraeWeigher().weigh_objects(
        [nova_weights.HostWeightHandler.object_class(h, 0.0) for h in hosts],
        spec)
    assert raw == [10.0, 40.0, 20.0, 30.0]

    weighed = run_weigher(hosts, spec)
    assert [w.obj.host for w in weighed] == ['host2', 'host4', 'host3',
                                             'host1']
    assert [w.weight for w in weighed] == pytest.approx(
        [1.0, 2 / 3, 1 / 3, 0.0])
    assert fake_service.methods() == ['WeighHosts', 'WeighHosts']
    req = fake_service.calls[1][1]
    assert [h.host for h in shimtest.sent_hosts(req)] == names(hosts)
    assert list(req.instance.scheduler_hints['ecrae_tag'].values) == ['web']


def test_weigher_multiplier_from_conf_and_aggregate(fake_service, ecrae_conf):
    aggs = {1: [shimtest.aggregate('slow', ecrae_weight_multiplier='2.5')]}
    hosts = shimtest.host_states(3, aggregates=aggs)
    fake_service.scores = {'host1': 3.0, 'host2': 2.0, 'host3': 1.0}
    ecrae_conf(weight_multiplier=0.5)
    w = scheduler.EcraeWeigher()
    assert w.weight_multiplier(hosts[0]) == 2.5
    assert w.weight_multiplier(hosts[1]) == 0.5
    weighed = run_weigher(hosts, shimtest.request_spec())
    got = {x.obj.host: x.weight for x in weighed}
    assert got == pytest.approx({'host1': 2.5, 'host2': 0.25, 'host3': 0.0})


def test_weigher_reads_the_multiplier_on_every_pass(fake_service,
                                                    ecrae_conf):
    """One weigher instance lives as long as nova-scheduler: a changed
    option (a reloaded config) applies from the next pass on; a host in an
    aggregate keeps the aggregate's multiplier."""
    aggs = {1: [shimtest.aggregate('slow', ecrae_weight_multiplier='3')]}
    hosts = shimtest.host_states(3, aggregates=aggs)
    fake_service.scores = {'host1': 2.0, 'host2': 3.0, 'host3': 1.0}
    weigher = [scheduler.EcraeWeigher()]
    handler = nova_weights.HostWeightHandler()
    spec = shimtest.request_spec()
    # normalised: host1 0.5, host2 1, host3 0; host1 × 3 (its aggregate),
    # the others × the option (1.0, then -2.0).
    got = {x.obj.host: x.weight
           for x in handler.get_weighed_objects(weigher, hosts, spec)}
    assert got == pytest.approx({'host1': 1.5, 'host2': 1.0, 'host3': 0.0})
    ecrae_conf(weight_multiplier=-2.0)
    got = {x.obj.host: x.weight
           for x in handler.get_weighed_objects(weigher, hosts, spec)}
    assert got == pytest.approx({'host1': 1.5, 'host2': -2.0, 'host3': 0.0})
    assert fake_service.calls[-1][1].scores_only is True


def test_weight_multiplier_zero_switches_it_off(fake_service, ecrae_conf):
    ecrae_conf(weight_multiplier=0.0)
    weighed = run_weigher(shimtest.host_states(3), shimtest.request_spec())
    assert [w.weight for w in weighed] == [0.0, 0.0, 0.0]


def test_single_host_is_not_weighed(fake_service):
    run_weigher(shimtest.host_states(1), shimtest.request_spec())
    assert fake_service.calls == []   # Nova skips weighers for <= 1 host


# -- rebuild -----------------------------------------------------------------

def test_rebuild_makes_no_call(fake_service):
    hosts = shimtest.host_states(3)
    fake_service.reject = {'host1', 'host2', 'host3'}
    spec = shimtest.request_spec(rebuild=True)
    assert names(run_filter(hosts, spec)) == names(hosts)
    assert [w.weight for w in run_weigher(hosts, spec)] == [0.0] * 3
    assert fake_service.calls == []
    # ... while the same request without the rebuild marker is filtered.
    assert run_filter(hosts, shimtest.request_spec()) == []


# -- failures ------------------------------------------------------------------

def _check_fail_open(hosts, spec):
    assert names(run_filter(hosts, spec)) == names(hosts)
    weighed = run_weigher(hosts, spec)
    assert [w.weight for w in weighed] == [0.0] * len(hosts)


def test_fail_open_when_down(no_service, warnings_log):
    _check_fail_open(shimtest.host_states(3), shimtest.request_spec())
    assert len(warnings_log()) == 1
    assert 'UNAVAILABLE' in warnings_log()[0].getMessage()


def test_fail_open_when_slow(fake_service, ecrae_conf, warnings_log):
    hosts = shimtest.host_states(3)
    fake_service.delay = 1.0
    ecrae_conf(timeout=0.1)
    passed = run_filter(hosts, shimtest.request_spec())
    assert names(passed) == names(hosts)
    assert fake_service.methods() == ['FilterHosts']
    assert fake_service.done.wait(10)
    assert fake_service.cancelled == ['FilterHosts']
    assert 'DEADLINE_EXCEEDED' in warnings_log()[0].getMessage()

    weighed = run_weigher(hosts, shimtest.request_spec())
    assert [w.weight for w in weighed] == [0.0] * 3
    assert fake_service.done.wait(10)
    assert fake_service.cancelled == ['FilterHosts', 'WeighHosts']


def test_fail_open_on_error(fake_service, warnings_log):
    fake_service.error = grpc.StatusCode.INTERNAL
    _check_fail_open(shimtest.host_states(3), shimtest.request_spec())
    assert fake_service.methods() == ['FilterHosts', 'WeighHosts']
    assert 'INTERNAL: fake failure' in warnings_log()[0].getMessage()


def test_unknown_tag_names_flavor_and_instance(fake_service, warnings_log):
    # The service refuses a tag the KB does not know; the warning names what
    # the operator fixes (the flavor), the instance, and how. One a minute
    # per reason: the weigher's refusal of the same request is held back, a
    # different reason is not.
    fake_service.error = grpc.StatusCode.INVALID_ARGUMENT
    fake_service.error_message = ('instance.tag: unknown tag "webb" '
                                  '(from flavor extra spec ecrae:tag)')
    now = [5000.0]
    scheduler.INVALID_WARNINGS.reset()
    scheduler.INVALID_WARNINGS.clock = lambda: now[0]
    try:
        _check_fail_open(shimtest.host_states(3), shimtest.request_spec())
        logged = warnings_log()
        assert len(logged) == 1
        msg = logged[0].getMessage()
        assert "flavor 'm1.small' of instance" in msg
        assert 'unknown tag "webb"' in msg
        assert 'ecrae kb flavors sync' in msg
        fake_service.error_message = 'instance.flavor.vcpus: must be positive'
        run_filter(shimtest.host_states(3), shimtest.request_spec())
        assert len(warnings_log()) == 2
        assert 'must be positive' in warnings_log()[1].getMessage()
    finally:
        scheduler.INVALID_WARNINGS.clock = time.monotonic
        scheduler.INVALID_WARNINGS.reset()


def test_fail_open_on_wrong_result_count(fake_service, warnings_log):
    fake_service.drop_last = True
    fake_service.reject = {'host1'}
    _check_fail_open(shimtest.host_states(3), shimtest.request_spec())
    assert fake_service.methods() == ['FilterHosts', 'WeighHosts']
    assert '2 flags for 3 hosts' in warnings_log()[0].getMessage()


def test_answers_of_an_older_service_are_read(fake_service):
    """A service from before passed_only / scores_only / references answers
    full messages and never says it holds states: a rolling upgrade that
    updates the shim first still ranks, and keeps sending full states."""
    fake_service.legacy = True
    fake_service.reject = {'host2'}
    fake_service.scores = {'host1': 1.0, 'host3': 2.0}
    hosts = shimtest.host_states(3)
    for _ in range(2):
        passed = run_filter(hosts, shimtest.request_spec())
        assert names(passed) == ['host1', 'host3']
        weighed = run_weigher(passed, shimtest.request_spec())
        assert [w.obj.host for w in weighed] == ['host3', 'host1']
        assert [w.weight for w in weighed] == [1.0, 0.0]
    assert len(fake_service.calls) == 4
    for _, req in fake_service.calls:
        assert not any(h.state_ref for h in req.hosts)
        assert all(h.vcpus_total for h in req.hosts)


def test_fail_closed_rejects_all(no_service, ecrae_conf):
    ecrae_conf(fail_open=False)
    hosts = shimtest.host_states(3)
    assert run_filter(hosts, shimtest.request_spec()) == []
    weighed = run_weigher(hosts, shimtest.request_spec())
    assert [w.weight for w in weighed] == [0.0] * 3


def test_fail_closed_still_skips_rebuild(no_service, ecrae_conf):
    ecrae_conf(fail_open=False)
    hosts = shimtest.host_states(2)
    assert names(run_filter(hosts, shimtest.request_spec(rebuild=True))) == \
        names(hosts)


def test_warning_is_rate_limited(no_service, warnings_log):
    now = [1000.0]
    scheduler.FAILURE_WARNING.clock = lambda: now[0]
    try:
        hosts = shimtest.host_states(2)
        for _ in range(5):
            run_filter(hosts, shimtest.request_spec())
            run_weigher(hosts, shimtest.request_spec())
        assert len(warnings_log()) == 1
        now[0] += 61
        run_filter(hosts, shimtest.request_spec())
        logged = warnings_log()
        assert len(logged) == 2
        assert '9 similar warning(s) suppressed' in logged[1].getMessage()
    finally:
        scheduler.FAILURE_WARNING.clock = time.monotonic


# -- channels --------------------------------------------------------------------

def test_channel_cached_per_pid_and_endpoint(fake_service, ecrae_conf,
                                             monkeypatch):
    hosts = shimtest.host_states(2)
    run_filter(hosts, shimtest.request_spec())
    stub = client.get_stub(CONF)
    assert client.get_stub(CONF) is stub
    monkeypatch.setattr(client.os, 'getpid', lambda: -42)   # a forked worker
    child = client.get_stub(CONF)
    assert child is not stub
    assert client.get_stub(CONF) is child
    # the "child" still reaches the service through its own channel
    assert names(run_filter(hosts, shimtest.request_spec())) == names(hosts)
    assert fake_service.methods() == ['FilterHosts', 'FilterHosts']
    ecrae_conf(endpoint='127.0.0.1:1')
    assert client.get_stub(CONF) is not child


def test_no_channel_before_first_pass(ecrae_conf):
    ecrae_conf(endpoint='127.0.0.1:%d' % shimtest.free_port())
    before = dict(client._stubs)
    scheduler.EcraeFilter()
    scheduler.EcraeWeigher()
    assert client._stubs == before


# -- translation corner cases -------------------------------------------------

def test_translation_of_unset_and_odd_fields():
    from nova.tests.unit.scheduler import fakes
    from ecrae_nova import translate

    hs = fakes.FakeHostState('h', 'n', {
        'cpu_info': {'arch': 'aarch64'},
        'metrics': {'cpu.percent': 12, 'cpu.frequency': {'value': 1800},
                    'bogus': 'x'},
        'free_ram_mb': None, 'cpu_allocation_ratio': None})
    msg = translate.host_state(hs)
    assert json.loads(msg.cpu_info) == {'arch': 'aarch64'}
    assert dict(msg.metrics) == {'cpu.percent': 12.0, 'cpu.frequency': 1800.0}
    assert msg.free_ram_mb == 0 and msg.cpu_allocation_ratio == 0.0
    assert msg.uuid == '' and msg.hypervisor_type == ''

    spec = objects.RequestSpec(flavor=objects.Flavor(name='tiny', vcpus=1,
                                                     memory_mb=64))
    inst = translate.instance_request(spec)   # no image, hints, extra_specs
    assert inst.flavor.name == 'tiny' and inst.flavor.root_gb == 0
    assert dict(inst.flavor.extra_specs) == {}
    assert dict(inst.image_properties) == {}
    assert dict(inst.scheduler_hints) == {}
    assert inst.project_id == '' and inst.instance_uuid == ''

    spec = shimtest.request_spec(image_props={
        'hw_architecture': 'x86_64', 'hw_cpu_policy': 'dedicated',
        'hw_numa_nodes': 2, 'traits_required': ['CUSTOM_A', 'CUSTOM_B']})
    props = translate.instance_request(spec).image_properties
    assert props['hw_architecture'] == 'x86_64'
    assert props['hw_numa_nodes'] == '2'
    assert props['traits_required'] == 'CUSTOM_A,CUSTOM_B'


def test_translation_of_moves_and_server_groups():
    from ecrae_nova import translate

    boot = shimtest.request_spec()
    inst = translate.instance_request(boot)
    assert not inst.move and inst.group_policy == '' and not inst.group_hosts

    # A live migration, as the conductor's live_migrate task builds it: the
    # source in ignore_hosts, a requested destination (cell, maybe host).
    live = shimtest.request_spec()
    live.ignore_hosts = ['src']
    live.requested_destination = objects.Destination(host='dst')
    assert translate.instance_request(live).move

    # A cold migration ignores the source; its destination names a cell.
    cold = shimtest.request_spec()
    cold.ignore_hosts = ['src']
    cold.requested_destination = objects.Destination()
    assert translate.instance_request(cold).move

    # A boot a request filter gave a destination without a host (aggregates,
    # a cell) is still a boot; one to a named host is judged as a move.
    boot.requested_destination = objects.Destination(aggregates=['a'])
    assert not translate.instance_request(boot).move
    boot.requested_destination = objects.Destination(host='h1')
    assert translate.instance_request(boot).move

    grouped = shimtest.request_spec()
    grouped.instance_group = objects.InstanceGroup(
        policy='anti-affinity', hosts=['h1', 'h2'])
    inst = translate.instance_request(grouped)
    assert inst.group_policy == 'anti-affinity'
    assert list(inst.group_hosts) == ['h1', 'h2']


# -- eventlet -------------------------------------------------------------------

EVENTLET_SCRIPT = r'''
import eventlet
eventlet.monkey_patch()
import json, sys
sys.path.insert(0, sys.argv[2])
import shimtest
import nova.conf
from eventlet import tpool
from nova.scheduler import filters
from ecrae_nova import client

executed = []
real_execute = tpool.execute
def spy(fn, *args, **kwargs):
    executed.append(getattr(fn, '__name__', repr(fn)))
    return real_execute(fn, *args, **kwargs)
tpool.execute = spy

nova.conf.CONF.set_override('endpoint', '127.0.0.1:' + sys.argv[1], 'ecrae')
nova.conf.CONF.set_override('timeout', 10.0, 'ecrae')
ticks = [0]
def ticker():
    while True:
        eventlet.sleep(0.01)
        ticks[0] += 1
eventlet.spawn(ticker)
eventlet.sleep(0)
handler = filters.HostFilterHandler()
cls = handler.get_matching_classes(['ecrae_nova.EcraeFilter'])
passed = handler.get_filtered_objects([c() for c in cls],
                                      shimtest.host_states(3),
                                      shimtest.request_spec())
print(json.dumps({'patched': client.eventlet_patched(),
                  'tpool_calls': len(executed), 'ticks': ticks[0],
                  'passed': [h.host for h in passed]}))
'''


def test_under_eventlet_the_call_goes_through_tpool(fake_service):
    fake_service.reject = {'host2'}
    fake_service.delay = 0.5   # long enough for the hub to tick meanwhile
    out = subprocess.run(
        [sys.executable, '-c', EVENTLET_SCRIPT, str(fake_service.port), HERE],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res['patched'] is True
    assert res['tpool_calls'] == 1
    assert res['passed'] == ['host1', 'host3']
    # the hub kept running during the 0.5 s call (a blocking call gives 0)
    assert res['ticks'] >= 5
    assert fake_service.methods() == ['FilterHosts']


def test_without_eventlet_no_tpool():
    assert client.eventlet_patched() is False


def _decoded(request, kind=placement_pb2.FilterHostsRequest):
    return kind.FromString(request.SerializeToString())


def _without_digests(hosts):
    out = []
    for h in hosts:
        h = placement_pb2.HostState.FromString(h.SerializeToString())
        h.ClearField('state_digest')
        out.append(h)
    return out


def test_encoded_request_is_the_message_and_tracks_changes():
    """The wire-form request equals the one built field by field (plus each
    state's digest), and a host Nova changed (a consumed instance, a compute
    report) is encoded again, not reused."""
    hosts = shimtest.host_states(3)
    spec = shimtest.request_spec(extra_specs={'ecrae:tag': 'web'})
    want = placement_pb2.WeighHostsRequest(
        instance=translate.instance_request(spec),
        hosts=[translate.host_state(h) for h in hosts],
        scores_only=True)
    got = _decoded(translate.weigh_request(spec, hosts),
                   placement_pb2.WeighHostsRequest)
    assert all(h.state_digest for h in got.hosts)
    assert len({h.state_digest for h in got.hosts}) == 3
    del got.hosts[:]
    del want.hosts[:]
    assert got == want
    got = _decoded(translate.weigh_request(spec, hosts),
                   placement_pb2.WeighHostsRequest)
    assert _without_digests(got.hosts) == [translate.host_state(h)
                                           for h in hosts]
    # Unchanged hosts are sent as the very bytes made the first time.
    first = translate.filter_request(spec, hosts).SerializeToString()
    digests = [h.state_digest for h in _decoded(
        translate.filter_request(spec, hosts)).hosts]
    for h in hosts:
        field = translate._entry(h)[1]
        assert translate._entry(h)[1] is field and field in first

    # consume_from_request moves the resources and `updated`.
    hosts[1].consume_from_request(spec)
    again = _decoded(translate.filter_request(spec, hosts))
    assert again.hosts[1].vcpus_used == hosts[1].vcpus_used
    assert again.hosts[1].free_ram_mb == hosts[1].free_ram_mb
    assert again.hosts[1].state_digest != digests[1]
    assert [again.hosts[i].state_digest for i in (0, 2)] == [digests[0],
                                                           digests[2]]

    # New metrics from a compute report are picked up too.
    hosts[2].metrics = objects.MonitorMetricList.from_json(
        shimtest.metrics_json(0.77, 2400))  # stored as a fraction
    again = _decoded(translate.filter_request(spec, hosts))
    assert again.hosts[2].metrics['cpu.percent'] == 77
    assert again.hosts[2].state_digest != digests[2]


def test_hosts_the_service_holds_go_as_references():
    hosts = shimtest.host_states(3)
    spec = shimtest.request_spec()
    refs = translate.StateRefs()
    first = translate.filter_request(spec, hosts, refs=refs)
    assert first.references == 0
    # Not acknowledged (the call failed, say): full states again.
    assert translate.filter_request(spec, hosts, refs=refs).references == 0
    first.acknowledge()
    full = _decoded(first).hosts
    again = translate.weigh_request(spec, hosts, refs=refs)
    assert again.references == 3
    sent = _decoded(again, placement_pb2.WeighHostsRequest).hosts
    assert [(h.host, h.nodename, h.state_ref) for h in sent] == [
        (h.host, h.nodename, h.state_digest) for h in full]
    assert all(h.ByteSize() < 25 for h in sent)
    # A changed host goes in full with its new digest; the others by
    # reference.
    hosts[0].consume_from_request(spec)
    mixed = _decoded(translate.filter_request(spec, hosts, refs=refs)).hosts
    assert mixed[0].vcpus_used == hosts[0].vcpus_used and mixed[0].state_digest
    assert [h.state_ref for h in mixed[1:]] == [h.state_digest
                                                for h in full[1:]]
    # Another channel (another endpoint) holds nothing yet; after forget()
    # this one neither.
    assert translate.filter_request(
        spec, hosts, refs=translate.StateRefs()).references == 0
    refs.forget()
    assert translate.filter_request(spec, hosts, refs=refs).references == 0


def test_references_packed_for_a_service_that_reads_them():
    """With refs.packed, every reference of a call goes in host_refs (digest,
    host, nodename) and a changed host in hosts, with a zero digest in its
    place: the same hosts, in the same order, as the unpacked form."""
    hosts = shimtest.host_states(3)
    spec = shimtest.request_spec()
    refs = translate.StateRefs()
    translate.filter_request(spec, hosts, refs=refs).acknowledge()
    plain = translate.weigh_request(spec, hosts, refs=refs)
    refs.packed = True
    packed = translate.weigh_request(spec, hosts, refs=refs)
    assert (packed.references, packed.packed) == (3, True)
    got = _decoded(packed, placement_pb2.WeighHostsRequest)
    want = _decoded(plain, placement_pb2.WeighHostsRequest)
    assert len(got.hosts) == 0 and got.scores_only
    # 8-byte digest, then two varint-length names: "host1" and "node1".
    assert len(got.host_refs) == 3 * (8 + 1 + 5 + 1 + 5)
    assert shimtest.unpack_refs(got.host_refs, got.hosts) == list(want.hosts)
    hosts[1].consume_from_request(spec)
    mixed = _decoded(translate.filter_request(spec, hosts, refs=refs))
    assert mixed.host_refs[20:28] == bytes(8)  # after host1's 20 bytes
    assert [h.host for h in mixed.hosts] == ['host2']
    assert [(h.host, h.state_ref != 0) for h in
            shimtest.unpack_refs(mixed.host_refs, mixed.hosts)] == [
        ('host1', True), ('host2', False), ('host3', True)]
    # No reference at all: the plain form, which any service reads.
    refs.forget()
    assert not refs.packed
    refs.packed = True
    first = translate.filter_request(spec, hosts, refs=refs)
    assert (first.references, first.packed) == (0, False)
    assert not _decoded(first).host_refs


def test_packed_references_once_the_service_says_so(fake_service):
    hosts = shimtest.host_states(4)
    spec = shimtest.request_spec()
    fake_service.scores = {'host1': 1.0, 'host2': 4.0, 'host3': 3.0,
                           'host4': 2.0}
    for _ in range(3):
        weighed = run_weigher(hosts, spec)
        assert names([w.obj for w in weighed]) == ['host2', 'host3', 'host4',
                                                   'host1']
    first, second, third = [r for _, r in fake_service.calls]
    assert not first.host_refs and len(first.hosts) == 4
    for later in (second, third):
        assert later.host_refs and len(later.hosts) == 0
        assert [h.state_ref for h in shimtest.sent_hosts(later)] == [
            h.state_digest for h in first.hosts]


def test_service_older_than_packed_references(fake_service, warnings_log):
    """A service that does not read host_refs (one older than them, say
    after a downgrade behind the same channel) answers without refs_packed:
    the same pass is sent again with one message per reference, and the
    shim packs no more."""
    hosts = shimtest.host_states(3)
    spec = shimtest.request_spec()
    fake_service.scores = {'host1': 1.0, 'host2': 3.0, 'host3': 2.0}
    run_weigher(hosts, spec)
    fake_service.packed = False
    for _ in range(2):
        weighed = run_weigher(hosts, spec)
        assert names([w.obj for w in weighed]) == ['host2', 'host3', 'host1']
    calls = [r for _, r in fake_service.calls]
    assert [bool(r.host_refs) for r in calls] == [False, True, False, False]
    assert [sum(1 for h in r.hosts if h.state_ref) for r in calls] == [
        0, 0, 3, 3]
    assert warnings_log() == []


def test_pass_after_pass_sends_references(fake_service):
    hosts = shimtest.host_states(4)
    fake_service.reject = {'host2'}
    spec = shimtest.request_spec()
    assert names(run_filter(hosts, spec)) == ['host1', 'host3', 'host4']
    assert names(run_filter(hosts, spec)) == ['host1', 'host3', 'host4']
    first, second = [r for _, r in fake_service.calls]
    assert [h.state_ref for h in first.hosts] == [0, 0, 0, 0]
    assert [h.state_ref for h in shimtest.sent_hosts(second)] == [
        h.state_digest for h in first.hosts]
    # The weigher's pass on the passed hosts refers to them as well.
    fake_service.scores = {'host1': 1.0, 'host3': 3.0, 'host4': 2.0}
    weighed = run_weigher(run_filter(hosts, spec), spec)
    assert names([w.obj for w in weighed]) == ['host3', 'host4', 'host1']
    assert all(h.state_ref for h in
               shimtest.sent_hosts(fake_service.calls[-1][1]))


def test_service_that_lost_the_states_gets_them_again(fake_service,
                                                      warnings_log):
    """A restarted service answers FAILED_PRECONDITION to references: the
    same pass sends full states, succeeds, and warns of nothing."""
    hosts = shimtest.host_states(3)
    spec = shimtest.request_spec()
    fake_service.scores = {'host1': 1.0, 'host2': 3.0, 'host3': 2.0}
    run_weigher(hosts, spec)
    fake_service.states.clear()
    weighed = run_weigher(hosts, spec)
    assert names([w.obj for w in weighed]) == ['host2', 'host3', 'host1']
    calls = [r for _, r in fake_service.calls]
    assert len(calls) == 3
    assert all(h.state_ref for h in shimtest.sent_hosts(calls[1]))
    assert not any(h.state_ref for h in shimtest.sent_hosts(calls[2]))
    assert warnings_log() == []
    # ...and refers to them again on the next pass.
    run_weigher(hosts, spec)
    assert all(h.state_ref for h in
               shimtest.sent_hosts(fake_service.calls[-1][1]))


def test_fail_opens_reported_in_wire_form_and_as_messages():
    """The passes a shim failed open on its own ride in the next request,
    appended to a request in wire form or set on a message."""
    hosts = shimtest.host_states(2)
    spec = shimtest.request_spec(extra_specs={'ecrae:tag': 'web-frontend'})
    wire = translate.report_fail_opens(
        translate.filter_request(spec, hosts), 'FilterHosts', 3, 1)
    got = placement_pb2.FilterHostsRequest.FromString(
        wire.SerializeToString())
    assert (got.shim_fail_opens.unreachable, got.shim_fail_opens.shim) == (
        3, 1)
    assert len(got.hosts) == 2 and got.passed_only   # the rest as before
    msg = translate.report_fail_opens(
        placement_pb2.WeighHostsRequest(scores_only=True), 'WeighHosts', 0, 2)
    assert msg.scores_only and msg.shim_fail_opens.shim == 2
