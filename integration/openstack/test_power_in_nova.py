"""Host power end to end: a rebalance in the REAL Nova frees a host, ECRAE's
power manager (--power-policy act) disables its nova-compute service through
Nova's API and powers it off at its BMC; a boot storm larger than what is
left wakes it (BMC on, service enabled again once the host reports), and the
boot retried after the NoValidHost lands on it.

Nova: the in-process harness of test_rebalance_live_migration.py (three
fake-driver computes, Nova's API and Placement served on 127.0.0.1,
versioned notifications through the real ``nats`` driver into ECRAE's
embedded NATS). BMCs: one pyghmi ``fakebmc`` process per host (Debian
python3-pyghmi), a real RMCP+ peer, checked with Debian's ipmitool. What
is not real: the fake compute keeps running while its BMC says off (the
harness cannot cut a fake host's power), so "reporting again" after a wake
is the resync seeing the service up (--resync-interval 2s).

Headroom hosts=0,ram=10%: a freed x86_64 host goes off while the x86_64
hosts left keep 10 % of their memory free. The storm then runs out of room.
Nova's Placement query leaves a disabled host out, so Nova answers
NoValidHost before any filter runs (the shim's FilterHosts never sees the
pass): the conductor's compute_task.build_instances.error notification,
on NATS, is what wakes the host at once.

Run from the repository root with Debian's Python, after `make build`:
    /usr/bin/python3 -m pytest -q integration/openstack/test_power_in_nova.py
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.normpath(os.path.join(HERE, '..', 'nova')))

import harness  # noqa: E402,F401  (sys.path + Nova's eventlet patching first)

import json  # noqa: E402
import logging  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import support  # noqa: E402
from harness import HOSTS  # noqa: E402
import test_rebalance_live_migration as rb  # noqa: E402
from test_ecrae_in_nova import KB_YAML  # noqa: E402

LOG = logging.getLogger(__name__)


class PowerEcrae(rb.Ecrae):
    """`bin/ecrae serve` with the power manager acting."""

    def start(self, clouds_yaml, extra=()):
        env = dict(os.environ, OS_CLIENT_CONFIG_FILE=clouds_yaml,
                   NO_PROXY='*', no_proxy='*')
        for k in ('OS_CLOUD', 'OS_AUTH_URL', 'OS_AUTH_TYPE'):
            env.pop(k, None)
        self._log = open(self.log_path, 'ab')
        self.proc = subprocess.Popen(
            [support.ECRAE_BIN, 'serve', '--grpc-addr', self.grpc,
             '--http-addr', self.http,
             '--nats-addr', '127.0.0.1:%d' % self.nats_port,
             '--db', os.path.join(self.tmp, 'ecrae.db'),
             '--os-cloud', 'harness', '--shutdown-grace', '1s',
             '--log-level', 'debug'] + list(extra),
            stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=self.tmp, env=env)


class FakeBMC(object):
    """pyghmi's fakebmc on a free loopback UDP port (admin/password)."""

    def __init__(self):
        self.port = support.free_port()
        self.proc = subprocess.Popen(
            ['fakebmc', '--port', str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL)

    def ipmitool(self, *args):
        p = subprocess.run(
            ['ipmitool', '-I', 'lanplus', '-H', '127.0.0.1', '-p',
             str(self.port), '-U', 'admin', '-P', 'password', '-N', '1',
             '-R', '2'] + list(args),
            capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
        return p.returncode, p.stdout.decode().strip()

    def power(self):
        rc, out = self.ipmitool('power', 'status')
        return out if rc == 0 else None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class PowerInNovaTest(rb.RebalanceInNovaTest):

    # The parent's own test runs in its module.
    test_plan_on_live_view_and_execute_through_nova = None

    def _bmcs(self):
        if not shutil.which('fakebmc') or not shutil.which('ipmitool'):
            self.skipTest('fakebmc or ipmitool not installed '
                          '(scripts/install-test-deps.sh)')
        bmcs = {}
        for host in HOSTS:
            b = FakeBMC()
            self.addCleanup(b.stop)
            bmcs[host] = b
        for host, b in bmcs.items():
            deadline = time.monotonic() + 30
            while b.power() is None:
                self.assertLess(time.monotonic(), deadline,
                                'fakebmc of %s does not answer' % host)
                time.sleep(0.2)
            # A compute host that runs is powered on.
            self.assertEqual(0, b.ipmitool('power', 'on')[0])
            self.assertEqual('Chassis Power is on', b.power())
        return bmcs

    def _history(self, ecrae):
        rc, out, err = ecrae.cli('power', 'history', '--json',
                                 '--limit', '1000', timeout=30)
        if rc != 0:
            return []
        return json.loads(out).get('events', [])

    def _service(self, host):
        for s in self.api.api_get(
                '/os-services?binary=nova-compute&host=%s' % host
        ).body['services']:
            return s

    def _assert_nothing_off_under_an_instance(self, bmcs, servers):
        for s in servers:
            got = self.api.get_server(s['id'])
            if got['status'] != 'ACTIVE':
                continue
            host = got['OS-EXT-SRV-ATTR:host']
            self.assertEqual('Chassis Power is on', bmcs[host].power(),
                             'server %s runs on %s, whose BMC says off'
                             % (s['id'], host))

    def _boot_any(self, flavor, name):
        """Boots one server and returns it ACTIVE or ERROR."""
        body = self._build_server(name=name, image_uuid=self.image_id,
                                  flavor_id=flavor, networks='none')
        server = self.api.post_server({'server': body})
        last = {}

        def done():
            last['s'] = self.api.get_server(server['id'])
            if last['s']['status'] in ('ACTIVE', 'ERROR') and \
                    last['s'].get('OS-EXT-STS:task_state') is None:
                return last['s']
        return self._wait_until(done, 30, what=lambda: 'server %s to '
                                'settle (last: %s)' % (name, last.get('s')))

    def test_freed_host_powered_off_then_woken_by_a_boot_storm(self):
        bmcs = self._bmcs()
        ecrae = PowerEcrae(self.nats_port)
        self.addCleanup(ecrae.stop)
        creds = os.path.join(ecrae.tmp, 'bmc.yaml')
        with open(creds, 'w') as f:
            f.write('default: {username: admin, password: password}\n')
        ecrae.start(self._serve_apis(), extra=[
            '--resync-interval', '2s', '--stale-after', '30m',
            '--power-policy', 'act', '--power-headroom', 'hosts=0,ram=10%',
            '--power-credentials', creds, '--power-interval', '500ms'])
        self._wait(ecrae, lambda: self._view(ecrae) is not None,
                   'ecrae serve to answer')
        path = os.path.join(ecrae.tmp, 'kb.yaml')
        with open(path, 'w') as f:
            f.write(KB_YAML)
        rc, out, err = ecrae.cli('kb', 'import', path, '--replace', '--yes')
        self.assertEqual(0, rc, out + err)
        for host, b in bmcs.items():
            rc, out, err = ecrae.cli('kb', 'host', 'set', host, '--power',
                                     'ipmi://127.0.0.1:%d' % b.port)
            self.assertEqual(0, rc, out + err)
        rc, out, err = ecrae.cli('power', 'status', '--json')
        self.assertEqual(0, rc, out + err)
        self.assertEqual({h: 'on' for h in HOSTS},
                         {h['host']: h['state']
                          for h in json.loads(out)['hosts']}, out)

        # Boot, let the view see it, plan and execute (as in
        # test_rebalance_live_migration).
        flavor = self._create_flavor(**rb.FLAVOR)
        servers = [self._boot(flavor_id=flavor, name='pw-%d' % i)
                   for i in range(rb.SERVERS)]
        nova_at = {s['id']: self._host_of(s) for s in servers}
        self._wait(ecrae, lambda: self._view(ecrae) and all(
            self._view(ecrae).get(u) == h for u, h in nova_at.items()),
            'the live view to see every server where Nova put it')
        rc, out, err = ecrae.cli('rebalance', 'plan', '--json')
        self.assertEqual(0, rc, out + err)
        plan = json.loads(out)
        self.assertTrue(plan.get('hosts_freed'), 'the plan frees no host')
        rc, out, err = ecrae.cli('rebalance', 'execute', plan['id'], '--yes',
                                 '--poll', '200ms', timeout=300)
        self.assertEqual(0, rc, '%s%s\nlog:\n%s' % (out, err, ecrae.log()))
        self.assertIn('plan %s succeeded' % plan['id'], out)

        # A freed x86_64 host goes off: service disabled first, then BMC.
        def powered_off():
            offs = [e['host'] for e in self._history(ecrae)
                    if e['action'] == 'off']
            return offs[0] if offs else None
        off = self._wait(ecrae, powered_off, 'a freed host powered off '
                         '(history: %s)' % self._history(ecrae), timeout=60)
        LOG.info('history: %s', json.dumps(self._history(ecrae), indent=1))
        self.assertIn(off, plan['hosts_freed'])
        self.assertEqual('x86_64', harness.HOST_ARCH[off])
        svc = self._service(off)
        self.assertEqual('disabled', svc['status'], svc)
        self.assertEqual('ecrae: powered off', svc['disabled_reason'], svc)
        self.assertEqual('Chassis Power is off', bmcs[off].power())
        self._assert_nothing_off_under_an_instance(bmcs, servers)

        # The storm: boot until Nova has no room left. Nova never offers
        # the powered-off host meanwhile.
        errored = []
        for i in range(40):
            s = self._boot_any(flavor, 'storm-%d' % i)
            servers.append(s)
            if s['status'] == 'ERROR':
                errored.append(s)
                break
            self.assertNotEqual(off, s['OS-EXT-SRV-ATTR:host'],
                                'Nova placed %s on the powered-off host'
                                % s['id'])
        self.assertTrue(errored, 'the storm never ran out of room')
        self.assertIn('No valid host', json.dumps(errored[0].get('fault')))

        # The headroom ran out: the host is woken, and its service enabled
        # once it reports.
        def enabled():
            return any(e['action'] == 'enabled' and e['host'] == off
                       for e in self._history(ecrae))
        self._wait(ecrae, enabled, 'the woken host to be enabled',
                   timeout=90)
        self.assertEqual('Chassis Power is on', bmcs[off].power())
        svc = self._service(off)
        self.assertEqual('enabled', svc['status'], svc)
        woke = [e for e in self._history(ecrae)
                if e['action'] == 'on' and e['host'] == off]
        self.assertEqual('no-room', woke[0]['by'], woke)

        # The boot Nova refused, retried, lands on the woken host.
        retry = self._boot(flavor_id=flavor, name='storm-retry')
        servers.append(retry)
        self.assertEqual(off, self._host_of(retry))
        self._assert_nothing_off_under_an_instance(bmcs, servers)
        rc, out, err = ecrae.cli('power', 'status', off)
        self.assertEqual(0, rc, out + err)
        self.assertIn(' on ', out)
