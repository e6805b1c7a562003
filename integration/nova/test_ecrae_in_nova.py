"""ECRAE inside a real Nova: the shim's filter, weigher and NATS notifier.

Nova: its own in-process functional harness (real API, conductor, scheduler,
placement; three fake-driver compute hosts, see harness.py), configured with
self.flags() exactly as an operator writes nova.conf.
ECRAE: the real `bin/ecrae serve` as a separate process (one per test class),
with its embedded NATS server and a knowledge base imported with
`ecrae kb import --replace` that describes the three fake hosts.
The only fake on ECRAE's side is DelayProxy (support.py), a TCP proxy that
makes the real service answer late.
"""
import harness  # noqa: F401  (sys.path + nova monkey patching, first)

import logging
import os
import re
import unittest

import fixtures
import oslo_messaging

import nova.conf
from nova.conf import scheduler as scheduler_conf
from nova import rpc

import ecrae.v1
from ecrae.v1 import placement_pb2
import ecrae_nova
from ecrae_nova import client as ecrae_client
from ecrae_nova import notifier as ecrae_notifier
from ecrae_nova import scheduler as ecrae_scheduler

import entrypoints
import support
from harness import NovaThreeHostsTestCase

CONF = nova.conf.CONF

# What `pip install nova-shim/` would do for the "nats" driver (see
# entrypoints.py); done at import, before any test looks drivers up.
entrypoints.register_shim_entry_points()

NOVA_DEFAULT_FILTERS = list(next(
    o.default for o in scheduler_conf.filter_scheduler_opts
    if o.name == 'enabled_filters'))

# Nova's default weighers alone put a boot on host1, the host with the most
# free RAM (harness.HOSTS); host3 is a small aarch64 host that this KB makes
# by far the most efficient, so ECRAE ranks it first.
NOVA_DEFAULT_PICK = 'host1'
ECRAE_FAVOURITE = 'host3'

# A knowledge base describing the fake hosts (kbstore YAML import format).
# Power curves: watts at idle, 10 %, ... 100 % load. The numbers are made up
# for the test; only their order matters.
KB_YAML = """\
schema_version: 1
architectures:
  - name: it-xeon-big
    isa: x86_64
    cpu: integration-test Xeon, 64 threads
    sockets: 2
    cores: 64
    threads: 64
    core_mhz: 2400
    memory_mb: 262144
    disk_gb: 4000
    power_watts: [220, 280, 330, 380, 430, 480, 530, 580, 630, 680, 730]
    estimate: true
    source: made up for the integration tests
  - name: it-xeon-small
    isa: x86_64
    cpu: integration-test Xeon, 32 threads
    sockets: 1
    cores: 32
    threads: 32
    core_mhz: 2400
    memory_mb: 131072
    disk_gb: 2000
    power_watts: [120, 150, 175, 200, 225, 250, 275, 300, 325, 350, 375]
    estimate: true
    source: made up for the integration tests
  - name: it-ampere
    isa: aarch64
    cpu: integration-test Ampere, 32 cores
    sockets: 1
    cores: 32
    threads: 32
    core_mhz: 3000
    memory_mb: 65536
    disk_gb: 1000
    power_watts: [30, 38, 45, 52, 59, 66, 73, 80, 87, 94, 101]
    estimate: true
    source: made up for the integration tests
  - name: it-power9
    isa: ppc64le
    cpu: integration-test POWER9 (no host has it)
    sockets: 1
    cores: 32
    threads: 128
    core_mhz: 3000
    memory_mb: 131072
    disk_gb: 1000
    power_watts: [150, 190, 220, 250, 280, 310, 340, 370, 400, 430, 460]
    estimate: true
    source: made up for the integration tests
tags:
  - name: default
    description: any architecture, ranked by energy
    mode: hint
    candidates:
      - {architecture: it-ampere, performance_factor: 1.0}
      - {architecture: it-xeon-small, performance_factor: 1.0}
      - {architecture: it-xeon-big, performance_factor: 1.0}
  - name: it-arm-only
    description: pinned to the Ampere model
    mode: exact
    candidates:
      - {architecture: it-ampere, performance_factor: 1.0}
  - name: it-xeon-small-only
    description: pinned to the small Xeon model
    mode: exact
    candidates:
      - {architecture: it-xeon-small, performance_factor: 1.0}
  - name: it-xeon-small-hint
    description: prefers the small Xeon; others only when it cannot take it
    mode: hint
    candidates:
      - {architecture: it-xeon-small, performance_factor: 1.0}
  - name: it-power-only
    description: pinned to an architecture no host has
    mode: exact
    candidates:
      - {architecture: it-power9, performance_factor: 1.0}
flavors: []
hosts:
  - {name: host1, architecture: it-xeon-big}
  - {name: host2, architecture: it-xeon-small}
  - {name: host3, architecture: it-ampere}
"""

SHIM_TIMEOUT = 0.2          # [ecrae] timeout, seconds
SLOW_SERVICE_DELAY = 2.0    # DelayProxy holds every answer back this long


class _TeeVersionedNotifier(object):
    """Stand-in for nova.rpc.NOTIFIER: every versioned notification goes to
    the harness's FakeVersionedNotifier AND through a real
    oslo_messaging.Notifier.

    Why a tee: the harness (RPCFixture + NotificationFixture) replaces Nova's
    notifier with a fake that only records, and its own helpers (and the
    "leaked eventlet" guard) rely on that fake, so it must stay. The second
    branch is what a deployment runs: nova.rpc.init() builds
    oslo_messaging.Notifier(transport, serializer=<Nova's>,
    topics=[notifications] versioned_notifications_topics) and the Notifier
    loads the drivers named by [oslo_messaging_notifications] driver (here
    "nats") through stevedore's "oslo.messaging.notify.drivers" entry
    points. So the real ecrae_nova.notifier.NatsDriver gets the exact
    message dict (message_id, publisher_id, event_type, priority, payload,
    timestamp) it would get in production.
    """

    _PRIORITIES = ('audit', 'debug', 'info', 'warn', 'warning', 'error',
                   'critical', 'sample')

    def __init__(self, fake, real):
        self._fake = fake
        self._real = real
        for p in self._PRIORITIES:
            setattr(self, p, self._make(p))

    def _make(self, priority):
        def notify(ctxt, event_type, payload):
            fake = getattr(self._fake, priority, None)
            if fake is not None:
                # Raises for a notification leaked from an earlier test:
                # then nothing goes to NATS either.
                fake(ctxt, event_type, payload)
            getattr(self._real, priority)(ctxt, event_type, payload)
        return notify

    def prepare(self, publisher_id=None):
        return _TeeVersionedNotifier(
            self._fake.prepare(publisher_id=publisher_id),
            self._real.prepare(publisher_id=publisher_id))

    def is_enabled(self):
        return True

    def __getattr__(self, name):
        return getattr(self._fake, name)


class _Spy(object):
    """Records every PlacementService call the shim makes (the real call,
    unchanged): (method, request as sent, response or None, exception or
    None). A call the service answers FAILED_PRECONDITION (it lost a state
    the request refers to) records its second request."""

    def __init__(self):
        self.calls = []
        self._orig = ecrae_client.call

    def __call__(self, conf, method, build):
        sent = []

        def recorded(refs):
            sent.append(build(refs))
            return sent[-1]
        try:
            resp = self._orig(conf, method, recorded)
        except Exception as exc:
            self.calls.append((method, sent[-1] if sent else None, None, exc))
            raise
        self.calls.append((method, sent[-1], resp, None))
        return resp

    def of(self, method):
        return [c for c in self.calls if c[0] == method]


class EcraeNovaTestCase(NovaThreeHostsTestCase):
    """Nova configured for ECRAE, against one `ecrae serve` per class."""

    ecrae = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # The code under test is the repository's, not an installed copy.
        for mod in (ecrae_nova, ecrae.v1):
            if not os.path.abspath(mod.__file__).startswith(
                    harness.NOVA_SHIM + os.sep):
                raise RuntimeError('%s imported from %s, not from %s' % (
                    mod.__name__, mod.__file__, harness.NOVA_SHIM))
        if not os.path.exists(support.ECRAE_BIN):
            raise RuntimeError(
                '%s not found: build it first (cd %s && go build -o '
                'bin/ecrae ./cmd/ecrae), or set ECRAE_BIN'
                % (support.ECRAE_BIN, support.REPO))
        cls.ecrae = support.EcraeService().start()
        try:
            cls.ecrae.import_kb(KB_YAML)
        except Exception:
            cls.ecrae.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.ecrae is not None:
            cls.ecrae.stop()
        super().tearDownClass()

    def setUp(self):
        self.spy = _Spy()
        super().setUp()
        self.useFixture(fixtures.MockPatchObject(ecrae_client, 'call',
                                                 self.spy))
        ecrae_scheduler.FAILURE_WARNING.reset()
        self.addCleanup(ecrae_scheduler.FAILURE_WARNING.reset)
        # Nova's harness logs everything at debug, where the filter asks for
        # full verdicts to log its rejections; production runs at info,
        # where it asks for the flags alone. Test what production runs.
        shim_log = logging.getLogger('ecrae_nova')
        self.addCleanup(shim_log.setLevel, shim_log.level)
        shim_log.setLevel(logging.INFO)
        self._make_live_migration_cast_async()

    def ecrae_endpoint(self):
        return self.ecrae.grpc_addr

    def _configure_nova(self):
        # nova.conf, as an operator would write it (DESIGN.md "nova.conf").
        self.flags(available_filters=['nova.scheduler.filters.all_filters',
                                      'ecrae_nova.EcraeFilter'],
                   enabled_filters=NOVA_DEFAULT_FILTERS + ['EcraeFilter'],
                   weight_classes=['nova.scheduler.weights.all_weighers',
                                   'ecrae_nova.EcraeWeigher'],
                   group='filter_scheduler')
        # A large multiplier: Nova min-max normalises each weigher to [0, 1],
        # so with 100 ECRAE's ranking outweighs RAM/CPU/disk spreading.
        self.flags(endpoint=self.ecrae_endpoint(), timeout=SHIM_TIMEOUT,
                   weight_multiplier=100.0, group='ecrae')
        self.flags(notification_format='versioned', group='notifications')
        self.flags(driver=['nats'], group='oslo_messaging_notifications')
        self.flags(url=self.ecrae.nats_url, group='ecrae_nats')

        # NATS: listen before anything is emitted.
        self.nats = support.NatsSubscriber(
            self.ecrae.nats_url, 'nova.versioned_notifications.>')
        self.addCleanup(self.nats.close)

        # Notifications: see _TeeVersionedNotifier.
        real = oslo_messaging.Notifier(
            rpc.NOTIFICATION_TRANSPORT,
            serializer=self.notifier.fake_versioned_notifier._serializer,
            topics=CONF.notifications.versioned_notifications_topics)
        drivers = [ext.obj for ext in real._driver_mgr]
        self.assertEqual(['NatsDriver'],
                         [type(d).__name__ for d in drivers])
        self.assertIsInstance(drivers[0], ecrae_notifier.NatsDriver)
        self.nats_driver = drivers[0]
        self.addCleanup(self.nats_driver.close)
        self.stub_out('nova.rpc.NOTIFIER', _TeeVersionedNotifier(
            self.notifier.fake_versioned_notifier, real))

    # -- helpers -----------------------------------------------------------

    def _flavor(self, tag=None, name=None):
        extra = {'ecrae:tag': tag} if tag else None
        return self._create_flavor(name=name, memory_mb=1024, vcpu=1, disk=1,
                                   ephemeral=0, extra_spec=extra)

    def _ecrae_ranking(self, server_uuid):
        """ECRAE's scores from the WeighHosts call of this boot: host ->
        score, as the service answered them to the shim (in host order)."""
        for method, req, resp, exc in self.spy.of('WeighHosts'):
            if req.instance.instance_uuid == server_uuid:
                self.assertIsNone(exc, 'WeighHosts failed: %r' % exc)
                hosts = support.request_hosts(
                    placement_pb2.WeighHostsRequest.FromString(
                        req.SerializeToString()))
                self.assertEqual(len(hosts), len(resp.score_values))
                return {h.host: s for h, s in zip(hosts, resp.score_values)}
        self.fail('no WeighHosts call for %s (calls: %s)' % (
            server_uuid, [(c[0], c[1].instance.instance_uuid)
                          for c in self.spy.calls]))

    def _verdicts(self, server_uuid):
        """Per FilterHosts call of this server: host -> passed, as the
        service answered the shim."""
        out = []
        for method, req, resp, exc in self.spy.of('FilterHosts'):
            if req.instance.instance_uuid == server_uuid:
                self.assertIsNone(exc, 'FilterHosts failed: %r' % exc)
                hosts = support.request_hosts(self._request(req))
                self.assertEqual(len(hosts), len(resp.passed))
                out.append({h.host: ok for h, ok in zip(hosts, resp.passed)})
        return out

    def _rejections(self, server_uuid):
        """The last FilterHosts call of this server asked again with full
        verdicts (the shim asks only for flags unless it logs at debug):
        host -> the filter stage that rejected it, '' when it passed."""
        calls = [c for c in self.spy.of('FilterHosts')
                 if c[1].instance.instance_uuid == server_uuid]
        self.assertTrue(calls, 'no FilterHosts call for %s' % server_uuid)
        req = self._request(calls[-1][1])
        req.passed_only = False
        resp = ecrae_client.run_blocking(
            self.ecrae.stub().FilterHosts, req, timeout=5)
        return {v.host: v.filter for v in resp.verdicts}

    @staticmethod
    def _request(encoded):
        return placement_pb2.FilterHostsRequest.FromString(
            encoded.SerializeToString())

    def _notification(self, event_type, instance_uuid, timeout=10.0):
        subject = 'nova.versioned_notifications.info.' + event_type

        def match(subj, body):
            return (subj == subject and isinstance(body, dict) and
                    body.get('payload', {}).get('nova_object.data', {})
                    .get('uuid') == instance_uuid)
        got = self.nats.wait_for(match, timeout)
        if got is None:
            self.fail('%s for %s not seen on NATS; seen: %s' % (
                subject, instance_uuid,
                sorted({s for s, _ in self.nats.messages})))
        return got[1]


class EcraeInNovaTest(EcraeNovaTestCase):

    # 1. The boot lands where ECRAE says, not where Nova's weighers would.
    def test_boot_goes_to_ecrae_top_host_not_nova_default(self):
        server = self._boot(flavor_id=self._flavor())
        ranking = self._ecrae_ranking(server['id'])
        self.assertEqual({'host1', 'host2', 'host3'}, set(ranking))
        top = max(ranking, key=ranking.get)
        self.assertEqual(ECRAE_FAVOURITE, top, ranking)
        self.assertEqual(top, server['OS-EXT-SRV-ATTR:host'])

        # The service says so on its own too: WhatIf on the hosts of its KB.
        whatif = ecrae_client.run_blocking(
            self.ecrae.stub().WhatIf, placement_pb2.WhatIfRequest(instances=[
                placement_pb2.InstanceRequest(
                    name='probe', flavor=placement_pb2.Flavor(
                        vcpus=1, memory_mb=1024, root_gb=1))]), timeout=5)
        self.assertEqual(top, whatif.placements[0].host, whatif)

        # The same request with the EcraeWeigher switched off (multiplier 0,
        # filter still on): Nova's own weighers pick another host.
        self.flags(weight_multiplier=0.0, group='ecrae')
        other = self._boot(flavor_id=self._flavor())
        self.assertEqual(NOVA_DEFAULT_PICK, other['OS-EXT-SRV-ATTR:host'])
        self.assertNotEqual(top, other['OS-EXT-SRV-ATTR:host'])

    # 2a. An exact tag (flavor extra spec) pins the architecture.
    def test_exact_tag_from_flavor_extra_spec_pins_architecture(self):
        # Pinned to the small Xeon: neither Nova's pick (host1) nor ECRAE's
        # favourite for untagged work (host3).
        server = self._boot(flavor_id=self._flavor(tag='it-xeon-small-only'))
        self.assertEqual('host2', server['OS-EXT-SRV-ATTR:host'])
        verdicts = self._verdicts(server['id'])[-1]
        self.assertEqual({'host2'},
                         {h for h, ok in verdicts.items() if ok})
        self.assertEqual('candidates', self._rejections(server['id'])['host1'])

    # 2b. The same through a scheduler hint.
    def test_exact_tag_from_scheduler_hint_pins_architecture(self):
        server = self._boot(flavor_id=self._flavor(),
                            hints={'ecrae_tag': 'it-arm-only'})
        self.assertEqual('host3', server['OS-EXT-SRV-ATTR:host'])
        verdicts = self._verdicts(server['id'])[-1]
        self.assertEqual({'host3'},
                         {h for h, ok in verdicts.items() if ok})

    # 2c. No host has the pinned architecture: Nova's NoValidHost.
    def test_exact_tag_no_host_has_is_no_valid_host(self):
        server = self._boot(flavor_id=self._flavor(tag='it-power-only'),
                            expected_state='ERROR')
        server = self.api.get_server(server['id'])
        self.assertIn('No valid host', server['fault']['message'])
        verdicts = self._verdicts(server['id'])[-1]
        self.assertFalse(any(verdicts.values()))

    # 4. A live migration to a host ECRAE's filter rejects is refused.
    def test_live_migration_to_rejected_host_is_refused(self):
        server = self._boot(flavor_id=self._flavor(tag='it-arm-only'))
        self.assertEqual('host3', server['OS-EXT-SRV-ATTR:host'])
        self.spy.calls.clear()
        server = self._live_migrate_to(server, 'host1',
                                       migration_status='error')
        self.assertEqual('host3', server['OS-EXT-SRV-ATTR:host'])
        # The scheduler ran the filters on the requested host only, and
        # ECRAE said no.
        verdicts = self._verdicts(server['id'])
        self.assertTrue(verdicts, 'no FilterHosts call for the migration')
        self.assertEqual(['host1'], list(verdicts[-1]))
        self.assertFalse(verdicts[-1]['host1'])
        event = self._wait_for_action_fail_completion(
            server, 'live-migration', 'conductor_live_migrate_instance')
        self.assertIn('No valid host', str(event.get('traceback')) +
                      str(event.get('details')))

    # 4b. Hint mode: Nova's call for a live migration to a named host holds
    # that host alone, so "no candidate in the call" says nothing; the shim
    # marks the move and the service judges the hint against its view.
    def test_live_migration_does_not_relax_a_hint(self):
        server = self._boot(flavor_id=self._flavor(tag='it-xeon-small-hint'))
        self.assertEqual('host2', server['OS-EXT-SRV-ATTR:host'])
        self.spy.calls.clear()
        server = self._live_migrate_to(server, 'host1',
                                       migration_status='error')
        self.assertEqual('host2', server['OS-EXT-SRV-ATTR:host'])
        calls = [c for c in self.spy.of('FilterHosts')
                 if c[1].instance.instance_uuid == server['id']]
        self.assertTrue(calls, 'no FilterHosts call for the migration')
        self.assertTrue(self._request(calls[-1][1]).instance.move)
        verdicts = self._verdicts(server['id'])
        self.assertEqual(['host1'], list(verdicts[-1]))
        self.assertFalse(verdicts[-1]['host1'])
        self.assertEqual('candidates',
                         self._rejections(server['id'])['host1'])

    # 5. Create, live migration and delete arrive on NATS via "nats".
    def test_notifications_reach_nats(self):
        server = self._boot(flavor_id=self._flavor())
        src = server['OS-EXT-SRV-ATTR:host']
        body = self._notification('instance.create.end', server['id'])
        self.assertEqual(src, body['payload']['nova_object.data']['host'])
        self.assertEqual('instance.create.end', body['event_type'])
        self.assertEqual('INFO', body['priority'])
        for key in ('message_id', 'publisher_id', 'timestamp'):
            self.assertIn(key, body)

        target = 'host2' if src != 'host2' else 'host1'
        server = self._live_migrate_to(server, target)
        self.assertEqual(target, server['OS-EXT-SRV-ATTR:host'])
        body = self._notification(
            'instance.live_migration_post_dest.end', server['id'])
        self.assertEqual(target, body['payload']['nova_object.data']['host'])
        self.assertEqual('nova-compute:%s' % target, body['publisher_id'])

        self._delete_server(server)
        self._notification('instance.delete.end', server['id'])
        self.assertGreater(self.nats_driver.published, 0)
        self.assertEqual(0, self.nats_driver.dropped)


class EcraeFailOpenTest(EcraeNovaTestCase):

    # 3a. The service is down: the boot still becomes ACTIVE.
    def test_service_stopped_boot_fails_open(self):
        # A service of this test's own, so that stopping it leaves the
        # class's one alone.
        own = support.EcraeService().start()
        self.addCleanup(own.stop)
        own.import_kb(KB_YAML)
        self.flags(endpoint=own.grpc_addr, group='ecrae')

        first = self._boot(flavor_id=self._flavor())
        self.assertEqual(ECRAE_FAVOURITE, first['OS-EXT-SRV-ATTR:host'])

        own.stop()
        self.spy.calls.clear()
        server = self._boot(flavor_id=self._flavor())
        # Nothing from ECRAE: Nova's own weighers decide.
        self.assertEqual(NOVA_DEFAULT_PICK, server['OS-EXT-SRV-ATTR:host'])
        failed = [c for c in self.spy.calls if c[3] is not None]
        self.assertEqual({'FilterHosts', 'WeighHosts'},
                         {c[0] for c in failed})
        self.assertIn('failing open: every host passes',
                      self.stdlog.logger.output)

    # 3b. The service answers after the deadline: not waited for.
    def test_slow_service_does_not_hold_the_scheduler(self):
        proxy = support.DelayProxy(self.ecrae.grpc_port, SLOW_SERVICE_DELAY)
        self.addCleanup(proxy.close)
        self.flags(endpoint=proxy.addr, group='ecrae')

        server = self._boot(flavor_id=self._flavor())
        self.assertEqual(NOVA_DEFAULT_PICK, server['OS-EXT-SRV-ATTR:host'])
        # The shim reached the real service through the proxy, which held
        # its answer back.
        self.assertGreaterEqual(proxy.connections, 1)
        self.assertGreaterEqual(proxy.delayed_answers, 1)
        failed = [c for c in self.spy.calls if c[3] is not None]
        self.assertEqual({'FilterHosts', 'WeighHosts'},
                         {c[0] for c in failed})
        for c in failed:
            self.assertIn('DEADLINE_EXCEEDED', str(c[3].code()))
        log = self.stdlog.logger.output
        m = re.search(r'ECRAE (FilterHosts|WeighHosts) to \S+ failed after '
                      r'([0-9.]+)s \(DEADLINE_EXCEEDED', log)
        self.assertIsNotNone(m, log[-3000:])
        # Gave up long before the slow answer could have come (generous:
        # the deadline is 10x shorter than the delay).
        self.assertLess(float(m.group(2)), SLOW_SERVICE_DELAY)


if __name__ == '__main__':
    unittest.main()
