"""New boots while rebalancing empties hosts, with Nova configured as
nova-shim/README.md says for "ECRAE decides" (EcraeFilter last,
weight_classes = EcraeWeigher only, host_subset_size = 1).

The same harness as test_rebalance_live_migration.py (real in-process Nova
with three fake-driver computes, Nova's API and Placement served on
127.0.0.1, the real `bin/ecrae serve` with its live view fed by the real
`nats` notification driver), plus the shim in Nova's scheduler. Servers are
put on chosen hosts (forced availability zone "nova:HOST", which bypasses
the scheduler) so that the plan has something to consolidate.

1. test_boot_during_plan_avoids_draining_host: a boot made while a plan is
   executing does not go to a host the plan is emptying, even when ECRAE
   would rank it first. The fake driver's live migration is held until the
   boot is done, so the plan is deterministically mid-execution. While it
   is held, the service is asked why: its filter refuses that host as
   being emptied by the plan.
   NEEDS the service side of the "draining hosts" contract
   (hostview.Host.Draining, set by the rebalance executor, refused by the
   shared filter chain: branches h-rules and h-rebalance). Until that code
   is in this tree the test is skipped; it enables itself when
   hostview/types.go has the Draining field (see DRAINING_SUPPORTED), or
   with ECRAE_IT_DRAINING=1.
2. test_emptied_host_not_refilled: after the plan succeeded, an ordinary
   (untagged) boot does not go back to a host the plan just emptied.

Run from the repository root with Debian's Python, after `make build`:
    /usr/bin/python3 -m pytest -q integration/openstack
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(HERE, '..', 'nova')))

import harness  # noqa: E402,F401  (sys.path + Nova's eventlet patching first)

import json  # noqa: E402
import re  # noqa: E402
import threading  # noqa: E402  (green: Nova's harness monkey-patched it)
import unittest  # noqa: E402

from nova.virt import fake as fake_virt  # noqa: E402

import fixtures  # noqa: E402
import grpc  # noqa: E402

from ecrae.v1 import placement_pb2  # noqa: E402
from ecrae.v1 import placement_pb2_grpc  # noqa: E402
from ecrae_nova import client as ecrae_client  # noqa: E402

import support  # noqa: E402
from test_ecrae_in_nova import _Spy  # noqa: E402
from test_ecrae_in_nova import KB_YAML  # noqa: E402
from test_ecrae_in_nova import NOVA_DEFAULT_FILTERS  # noqa: E402
# The module, not its test class: a test class imported by name here would
# be collected and run a second time.
import test_rebalance_live_migration as rebalance_it  # noqa: E402


def _draining_supported():
    """True when this tree has the service side of the draining contract:
    the field hostview.Host.Draining (h-rules) that the rebalance executor
    sets (h-rebalance). Read from the source bin/ecrae is built from."""
    path = os.path.join(support.REPO, 'hostview', 'types.go')
    try:
        with open(path) as f:
            return re.search(r'^\s*Draining\s+string\b', f.read(),
                             re.M) is not None
    except OSError:
        return False


# ECRAE_IT_DRAINING=1 runs test 1 regardless (to see it fail without the
# service side: the boot then lands on the host being emptied).
DRAINING_SUPPORTED = (os.environ.get('ECRAE_IT_DRAINING') == '1' or
                      _draining_supported())

# 2 vCPUs, 8 GB: small enough that the plan can pack them.
FLAVOR = dict(vcpu=2, memory_mb=8192, disk=1)
# Where the servers start: every host busy, host1 (the big, power-hungry
# Xeon) lightly, so that consolidating has a host to free.
LAYOUT = ['host1', 'host2', 'host2', 'host3']


def _tag_preferring(model):
    """KB tag (YAML) that ranks `model` far above the others: a boot with it
    goes to a host of that model unless a filter refuses it."""
    others = [m for m in ('it-xeon-big', 'it-xeon-small', 'it-ampere')
              if m != model]
    return ('  - name: it-prefers\n'
            '    description: %s far ahead\n'
            '    mode: hint\n'
            '    candidates:\n'
            '      - {architecture: %s, performance_factor: 100.0}\n'
            % (model, model) + ''.join(
                '      - {architecture: %s, performance_factor: 1.0}\n' % m
                for m in others))


def _stub(addr):
    """A PlacementService stub of the test's own (not the shim's)."""
    channel = grpc.insecure_channel(
        addr, options=[('grpc.enable_http_proxy', 0)])
    return placement_pb2_grpc.PlacementServiceStub(channel)


MODEL_OF = dict(re.findall(r'\{name: (host\d), architecture: ([\w-]+)\}',
                           KB_YAML))


class RebalanceAndBootsTest(rebalance_it.RebalanceInNovaTest):

    # The parent's end-to-end test runs in its own module, not again here.
    test_plan_on_live_view_and_execute_through_nova = None

    def _configure_nova(self):
        super()._configure_nova()
        # nova-shim/README.md, "ECRAE decides".
        self.flags(available_filters=['nova.scheduler.filters.all_filters',
                                      'ecrae_nova.EcraeFilter'],
                   enabled_filters=NOVA_DEFAULT_FILTERS + ['EcraeFilter'],
                   weight_classes=['ecrae_nova.EcraeWeigher'],
                   host_subset_size=1,
                   shuffle_best_same_weighed_hosts=True,
                   group='filter_scheduler')

    def _start(self, extra_tags=''):
        ecrae = rebalance_it.Ecrae(self.nats_port)
        self.addCleanup(ecrae.stop)
        ecrae.start(self._serve_apis())
        # The shim talks to this service; fail closed so that a boot the
        # service did not judge cannot pass for one it did.
        self.flags(endpoint=ecrae.grpc, timeout=5.0, fail_open=False,
                   group='ecrae')
        self._wait(ecrae, lambda: self._view(ecrae) is not None,
                   'ecrae serve to answer')
        self._import_kb(ecrae, extra_tags)
        rc, out, err = ecrae.cli('rebalance', 'show')
        if rc != 0 and 'RebalanceService' in err and 'Unimplemented' in err:
            self.skipTest('this ecrae serve has no RebalanceService')
        return ecrae

    def _import_kb(self, ecrae, extra_tags):
        kb = KB_YAML.replace('flavors: []\n', extra_tags + 'flavors: []\n')
        path = os.path.join(ecrae.tmp, 'kb.yaml')
        with open(path, 'w') as f:
            f.write(kb)
        rc, out, err = ecrae.cli('kb', 'import', path, '--replace', '--yes')
        self.assertEqual(0, rc, out + err)

    def _place_and_plan(self, ecrae):
        """Servers on LAYOUT's hosts, a plan from the live view; returns
        (servers, plan)."""
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
        self._wait(ecrae, lambda: self._view(ecrae) and all(
            self._view(ecrae).get(u) == h for u, h in at.items()),
            'the live view to see every server where Nova put it')
        rc, out, err = ecrae.cli('rebalance', 'plan', '--json')
        self.assertEqual(0, rc, out + err)
        plan = json.loads(out)
        self.assertTrue(plan.get('hosts_freed'),
                        'the plan frees no host: %s' % out)
        self.assertTrue(plan['steps'], out)
        return servers, plan

    def _plan_status(self, ecrae, plan_id):
        rc, out, err = ecrae.cli('rebalance', 'show', plan_id, '--json')
        self.assertEqual(0, rc, out + err)
        return json.loads(out)

    def _execute(self, ecrae, plan_id):
        rc, out, err = ecrae.cli('rebalance', 'execute', plan_id, '--yes',
                                 '--wait=false')
        self.assertEqual(0, rc, out + err)

    def _wait_plan_ended(self, ecrae, plan_id):
        def ended():
            shown = self._plan_status(ecrae, plan_id)
            if shown['status'] != 'executing':
                return shown
        shown = self._wait(ecrae, ended, 'plan %s to end' % plan_id,
                           timeout=120)
        self.assertEqual('succeeded', shown['status'], shown)
        return shown

    @unittest.skipUnless(
        DRAINING_SUPPORTED,
        'needs hostview.Host.Draining and its executor/filter wiring '
        '(contracts: branches h-rules + h-rebalance); enables itself once '
        'hostview/types.go has the field')
    def test_boot_during_plan_avoids_draining_host(self):
        ecrae = self._start()
        servers, plan = self._place_and_plan(ecrae)
        draining = set(plan['hosts_freed'])
        # A boot that ECRAE ranks onto the first host being emptied: its
        # model is the tag's favourite by a factor 100.
        target = sorted(draining)[0]
        self._import_kb(ecrae, _tag_preferring(MODEL_OF[target]))

        # Hold every live migration in the fake driver until released, so
        # the plan stays mid-execution while the test boots.
        release = threading.Event()
        self.addCleanup(release.set)
        held = []
        orig = fake_virt.FakeDriver.live_migration

        def live_migration(driver, context, instance, *args, **kwargs):
            held.append(instance.uuid)
            release.wait(60)
            return orig(driver, context, instance, *args, **kwargs)
        self.stub_out('nova.virt.fake.FakeDriver.live_migration',
                      live_migration)

        self._execute(ecrae, plan['id'])
        self._wait(ecrae, lambda: held and self._plan_status(
            ecrae, plan['id'])['status'] == 'executing',
            'the plan to be executing with a migration held')

        flavor = self._create_flavor(
            name='it-prefers', extra_spec={'ecrae:tag': 'it-prefers'},
            **FLAVOR)
        spy = _Spy()
        self.useFixture(fixtures.MockPatchObject(ecrae_client, 'call', spy))
        new = self._boot(flavor_id=flavor, name='during-plan')
        self.assertNotIn(new['OS-EXT-SRV-ATTR:host'], draining,
                         'a boot during plan %s went to %s, a host the plan '
                         'is emptying (%s)' % (plan['id'],
                                               new['OS-EXT-SRV-ATTR:host'],
                                               sorted(draining)))
        # Why, asked of the service while the plan is still held, for the
        # hosts Nova's own filters passed to EcraeFilter on that boot: its
        # filter refused the target as being emptied by this plan. (That
        # ECRAE ranks the target first otherwise is seen without the
        # service side: with ECRAE_IT_DRAINING=1 on such a tree this boot
        # lands on the target; the service scores no host it refuses, so it
        # cannot be asked here.)
        calls = [c for c in spy.of('FilterHosts')
                 if c[1].instance.instance_uuid == new['id']]
        self.assertTrue(calls, 'no FilterHosts call for %s' % new['id'])
        sent = placement_pb2.FilterHostsRequest.FromString(
            calls[-1][1].SerializeToString())
        self.assertIn(target, [h.host for h in support.request_hosts(sent)])
        verdicts = ecrae_client.run_blocking(
            _stub(ecrae.grpc).FilterHosts, placement_pb2.FilterHostsRequest(
                instance=sent.instance, hosts=sent.hosts,
                host_refs=sent.host_refs), timeout=10)
        refused = {v.host: v for v in verdicts.verdicts if not v.passed}
        self.assertIn(target, refused, verdicts)
        self.assertIn(plan['id'], refused[target].reason, refused[target])

        release.set()
        self._wait_plan_ended(ecrae, plan['id'])

    def test_emptied_host_not_refilled(self):
        ecrae = self._start()
        servers, plan = self._place_and_plan(ecrae)
        self._execute(ecrae, plan['id'])
        self._wait_plan_ended(ecrae, plan['id'])
        freed = set(plan['hosts_freed'])
        for s in servers:
            self.assertNotIn(self._host_of(s), freed)
        # Nova's RAM/CPU/disk spreaders favour the emptiest hosts, such as
        # the one just freed; ECRAE charges an empty host its idle power
        # and keeps these on the hosts already running.
        flavor = self._create_flavor(name='it-plain', **FLAVOR)
        for i in range(3):
            new = self._boot(flavor_id=flavor, name='after-%d' % i)
            self.assertNotIn(new['OS-EXT-SRV-ATTR:host'], freed,
                             'boot %d refilled a host plan %s emptied'
                             % (i, plan['id']))
