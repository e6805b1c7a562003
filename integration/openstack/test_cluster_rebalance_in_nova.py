"""The leader of a clustered ECRAE is killed while it executes a rebalance
plan through a real Nova (issue 14 point 6): another replica takes the plan
over and finishes it, no instance is migrated twice.

Nova: its own in-process functional harness (integration/nova/harness.py,
three fake-driver computes), its API (noauth2) and Placement served on
127.0.0.1 as in test_rebalance_live_migration.py; versioned notifications
through the real ``nats`` driver to the cluster's three NATS nodes; the
shim's EcraeFilter in the scheduler with ``[ecrae] endpoints`` naming the
three replicas and fail_open = false, so every live migration the plan asks
for is judged by ECRAE's own filter (a migration it did not judge fails).
ECRAE: three real `bin/ecrae serve --cluster` processes (support.Cluster)
with a clouds.yaml entry for those endpoints, --lease-ttl 2s.

Not real: the fake driver's live migration is instantaneous, too fast to
kill the leader mid-plan, so the test holds one migration (a stub around
FakeDriver.live_migration that waits for an event, the same as
test_rebalance_and_boots.py) until the leader is dead.

Run from the repository root with Debian's Python, after `make build`:
    /usr/bin/python3 -m pytest -q -s integration/openstack/test_cluster_rebalance_in_nova.py
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(HERE, '..', 'nova')))

import harness  # noqa: E402,F401  (sys.path + Nova's eventlet patching first)

import collections  # noqa: E402
import json  # noqa: E402
import threading  # noqa: E402  (green: Nova's harness monkey-patched it)
import time  # noqa: E402
import unittest  # noqa: E402

import oslo_messaging  # noqa: E402

import nova.conf  # noqa: E402
from nova import rpc  # noqa: E402
from nova.virt import fake as fake_virt  # noqa: E402

from ecrae_nova import client as ecrae_client  # noqa: E402

import support  # noqa: E402
from test_ecrae_in_nova import KB_YAML  # noqa: E402
from test_ecrae_in_nova import NOVA_DEFAULT_FILTERS  # noqa: E402
from test_ecrae_in_nova import _TeeVersionedNotifier  # noqa: E402
from harness import NovaThreeHostsTestCase  # noqa: E402
# The module, not its test class (which would be collected again here).
import test_rebalance_live_migration as rebalance_it  # noqa: E402

CONF = nova.conf.CONF
# 2 vCPUs, 8 GB. Four servers on the big Xeon, one on the small one, one on
# the (aarch64) Ampere: consolidating empties host1 into host2 (same ISA),
# one live migration per server of host1.
FLAVOR = dict(vcpu=2, memory_mb=8192, disk=1)
LAYOUT = ['host1', 'host1', 'host1', 'host1', 'host2', 'host3']
# The leader is killed while this step (0-based, in execution order) is in
# flight, the ones before it done.
HELD_STEP = 1


class ClusterRebalanceInNovaTest(NovaThreeHostsTestCase):

    _serve_apis = rebalance_it.RebalanceInNovaTest._serve_apis

    def setUp(self):
        if not os.path.exists(support.ECRAE_BIN):
            self.fail('%s not found: run make build first' % support.ECRAE_BIN)
        # Ports first: Nova's notifier and the shim are configured with them
        # while Nova starts; the replicas start once Nova's API is served.
        self.cluster = support.Cluster(
            3, extra_args=['--lease-ttl', '2s', '--view-checkpoint', '200ms',
                           '--os-cloud', 'harness', '--resync-interval', '0'])
        super().setUp()
        self.addCleanup(self.cluster.stop)
        self._make_live_migration_cast_async()
        self.addCleanup(ecrae_client._down.clear)
        self.addCleanup(ecrae_client.close_channels)

    def _configure_nova(self):
        self.flags(ram=-1, cores=-1, instances=-1, group='quota')
        self.flags(available_filters=['nova.scheduler.filters.all_filters',
                                      'ecrae_nova.EcraeFilter'],
                   enabled_filters=NOVA_DEFAULT_FILTERS + ['EcraeFilter'],
                   group='filter_scheduler')
        self.flags(endpoints=self.cluster.grpc_addrs(), timeout=5.0,
                   fail_open=False, group='ecrae')
        self.flags(notification_format='versioned', group='notifications')
        self.flags(driver=['nats'], group='oslo_messaging_notifications')
        self.flags(url=self.cluster.nats_urls(), group='ecrae_nats')
        real = oslo_messaging.Notifier(
            rpc.NOTIFICATION_TRANSPORT,
            serializer=self.notifier.fake_versioned_notifier._serializer,
            topics=CONF.notifications.versioned_notifications_topics)
        drivers = [ext.obj for ext in real._driver_mgr]
        self.assertEqual(['NatsDriver'], [type(d).__name__ for d in drivers])
        self.addCleanup(drivers[0].close)
        self.stub_out('nova.rpc.NOTIFIER', _TeeVersionedNotifier(
            self.notifier.fake_versioned_notifier, real))

    # -- helpers -----------------------------------------------------------

    def _start_cluster(self):
        env = dict(os.environ, OS_CLIENT_CONFIG_FILE=self._serve_apis(),
                   NO_PROXY='*', no_proxy='*')
        for k in ('OS_CLOUD', 'OS_AUTH_URL', 'OS_AUTH_TYPE'):
            env.pop(k, None)
        for r in self.cluster.replicas:
            r.env = env
        self.cluster.start()
        leader = self.cluster.wait_until(self.cluster.leader, 60, 'a leader')
        seeded = self.cluster.wait_until(self._same_kb, 60,
                                         'the replicated KB seeded')
        path = os.path.join(self.cluster.tmpdir, 'kb.yaml')
        with open(path, 'w') as f:
            f.write(KB_YAML)
        rc, out, err = leader.cli('kb', 'import', path, '--replace', '--yes')
        self.assertEqual(0, rc, out + err)
        self.cluster.wait_until(lambda: self._same_kb() > seeded, 30,
                                'the imported KB on every replica')
        return leader

    def _same_kb(self):
        sts = self.cluster.statuses()
        if sts and len({s['kb_revision'] for s in sts}) == 1:
            return sts[0]['kb_revision']
        return 0

    def _view(self, replica):
        rc, out, _ = replica.cli('hosts', '--json', '--instances')
        if rc != 0:
            return None
        return {i['uuid']: h['host'] for h in json.loads(out).get('hosts', [])
                for i in h.get('instance_list', [])}

    def _plan(self, replica, plan_id):
        rc, out, err = replica.cli('rebalance', 'show', plan_id, '--json')
        return json.loads(out) if rc == 0 else None

    def _migrations(self):
        """instance uuid -> [status of each of its migrations]."""
        out = collections.defaultdict(list)
        for m in self.api.api_get('/os-migrations').body['migrations']:
            out[m['instance_uuid']].append(m['status'])
        return out

    # -- the test ----------------------------------------------------------

    def test_leader_killed_during_plan_execution(self):
        leader = self._start_cluster()
        flavor = self._create_flavor(**FLAVOR)
        servers = []
        for i, host in enumerate(LAYOUT):
            body = self._build_server(
                name='rb-%d' % i, image_uuid=self.image_id,
                flavor_id=flavor, networks='none', az='nova:' + host)
            servers.append(self._wait_for_status(
                self.api.post_server({'server': body}), 'ACTIVE'))
        at = {s['id']: self._host_of(s) for s in servers}
        self.assertEqual(LAYOUT, [at[s['id']] for s in servers])
        for r in self.cluster.replicas:
            self.cluster.wait_until(
                lambda: (self._view(r) or {}) == at, 60,
                '%s\'s live view to see every server where Nova put it'
                % r.name)

        # Hold the live migration of step HELD_STEP in the fake driver.
        release = threading.Event()
        self.addCleanup(release.set)
        started = []
        orig = fake_virt.FakeDriver.live_migration

        def live_migration(driver, context, instance, *args, **kwargs):
            started.append(instance.uuid)
            if len(started) == HELD_STEP + 1:
                release.wait(120)
            return orig(driver, context, instance, *args, **kwargs)
        self.stub_out('nova.virt.fake.FakeDriver.live_migration',
                      live_migration)

        rc, out, err = leader.cli('rebalance', 'plan', '--json')
        self.assertEqual(0, rc, out + err)
        plan = json.loads(out)
        steps = plan['steps']
        self.assertGreater(len(steps), HELD_STEP + 1, out)
        self.assertEqual(['host1'], plan.get('hosts_freed'), out)
        target = dict(at)
        for st in steps:
            self.assertEqual(target[st['instance_id']], st['from_host'])
            target[st['instance_id']] = st['to_host']
        rc, out, err = leader.cli('rebalance', 'execute', plan['id'], '--yes',
                                  '--wait=false')
        self.assertEqual(0, rc, out + err)

        # Mid-plan, as another replica sees it: steps before HELD_STEP
        # done, HELD_STEP running (its migration held in Nova).
        others = [r for r in self.cluster.replicas if r is not leader]

        def mid_plan():
            shown = self._plan(others[0], plan['id'])
            return (len(started) == HELD_STEP + 1 and shown and
                    shown['status'] == 'executing' and
                    [s['status'] for s in shown['steps'][:HELD_STEP + 1]] ==
                    ['done'] * HELD_STEP + ['running'] and shown)
        self.cluster.wait_until(mid_plan, 60, 'the plan executing with step '
                                '%d held' % (HELD_STEP + 1))
        killed_at = time.monotonic()
        leader.kill()

        new = self.cluster.wait_until(lambda: self.cluster.leader(others), 60,
                                      'a new leader')
        took_lead = time.monotonic() - killed_at
        # The plan's status as the replica that neither led nor leads sees
        # it (the replicated plan store).
        follower = next(r for r in others if r is not new)
        # Nova finishes the migration the dead leader started; the new
        # leader confirms it from Nova, runs the rest, and the plan ends.
        release.set()

        def ended():
            shown = self._plan(follower, plan['id'])
            return shown and shown['status'] != 'executing' and shown
        shown = self.cluster.wait_until(ended, 90, 'the plan to end')
        print('\nplan %s: %d steps in %d wave(s); %s killed with step %d in '
              'flight, %s led %.1fs later (--lease-ttl 2s; polled, not '
              'asserted), the plan ended %.1fs after the kill; status %s '
              'from %s: %s'
              % (plan['id'], len(steps), int(plan.get('waves', 0)),
                 leader.name, HELD_STEP + 1, new.name, took_lead,
                 time.monotonic() - killed_at, shown['status'],
                 follower.name, [(s['status'], s.get('confirmed_by', ''))
                                 for s in shown['steps']]))
        self.assertEqual('succeeded', shown['status'], shown)
        self.assertIn('after takeover',
                      shown['steps'][HELD_STEP].get('confirmed_by', ''))

        # Nova's own record: every server ACTIVE where the plan put it,
        # host1 empty; each moved server migrated exactly once (completed),
        # the others never; every migration went through ECRAE's filter
        # (fail_open = false: one it did not judge would have failed).
        final = {}
        for s in servers:
            got = self.api.get_server(s['id'])
            self.assertEqual('ACTIVE', got['status'])
            final[s['id']] = got['OS-EXT-SRV-ATTR:host']
        self.assertEqual(target, final)
        self.assertNotIn('host1', final.values())
        migrations = self._migrations()
        moved = {st['instance_id'] for st in steps}
        self.assertEqual({u: ['completed'] for u in moved},
                         dict(migrations))
        self.assertEqual(len(steps), len(started))
        self.assertEqual(len(moved), len(set(started)))
        # The survivors' live views agree with Nova.
        for r in others:
            self.cluster.wait_until(lambda: self._view(r) == final, 60,
                                    '%s\'s live view to agree with Nova'
                                    % r.name)


if __name__ == '__main__':
    unittest.main()
