"""The live host view bootstrapped and resynced from the REAL Nova and
Placement APIs.

Nova: its own in-process functional harness (integration/nova/harness.py:
real API, conductor, scheduler and placement, three fake-driver computes:
host1 x86_64 64 vCPUs / 256 GB, host2 x86_64 32 / 128 GB, host3 aarch64
32 / 64 GB). Both WSGI apps are served on 127.0.0.1, random ports, with
eventlet.wsgi while the test runs:
  - Nova's API loaded with [api] auth_strategy = noauth2 (a real Nova auth
    strategy: X-Auth-Token "user:project", admin when the user is admin);
  - Placement's app from the harness's fixture (its NoAuth middleware takes
    the same token).
ECRAE: the real `bin/ecrae serve`, a separate process, pointed at them with
a clouds.yaml entry (auth_type: none, compute_endpoint_override,
placement_endpoint_override, token "admin:admin"), through gophercloud v2.
Nova sends it no notifications here (no "nats" driver): what `ecrae hosts`
shows comes from the bootstrap and the periodic resync alone.

Run from the repository root with Debian's Python, after `make build`:
    /usr/bin/python3 -m pytest -q integration/openstack
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(HERE, '..', 'nova')))

import harness  # noqa: E402,F401  (sys.path + Nova's eventlet patching first)

import json  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402

import eventlet  # noqa: E402
import eventlet.wsgi  # noqa: E402
import wsgi_intercept  # noqa: E402

from nova.api import wsgi as nova_wsgi  # noqa: E402

import support  # noqa: E402
from harness import NovaThreeHostsTestCase  # noqa: E402

LOG = logging.getLogger(__name__)
TOKEN = 'admin:admin'
RESYNC = '1s'


def _serve(app, name):
    """Serves a WSGI app on 127.0.0.1:<random> in a green thread."""
    sock = eventlet.listen(('127.0.0.1', 0))
    gt = eventlet.spawn(eventlet.wsgi.server, sock, app,
                        log=logging.getLogger('ecrae-it.' + name),
                        log_output=False)
    return sock, gt


class EcraeWithCloud(object):
    """`bin/ecrae serve` with --os-cloud, on free ports, its own data dir."""

    def __init__(self, clouds_yaml, cloud):
        self.tmp = tempfile.mkdtemp(prefix='ecrae-it-os-')
        self.grpc = '127.0.0.1:%d' % support.free_port()
        self.http = '127.0.0.1:%d' % support.free_port()
        self.log_path = os.path.join(self.tmp, 'ecrae.log')
        env = dict(os.environ, OS_CLIENT_CONFIG_FILE=clouds_yaml,
                   NO_PROXY='*', no_proxy='*')
        for k in ('OS_CLOUD', 'OS_AUTH_URL', 'OS_AUTH_TYPE'):
            env.pop(k, None)
        self._log = open(self.log_path, 'ab')
        self.proc = subprocess.Popen(
            [support.ECRAE_BIN, 'serve', '--grpc-addr', self.grpc,
             '--http-addr', self.http, '--nats-addr',
             '127.0.0.1:%d' % support.free_port(),
             '--db', os.path.join(self.tmp, 'ecrae.db'),
             '--os-cloud', cloud, '--resync-interval', RESYNC,
             '--shutdown-grace', '1s'],
            stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=self.tmp, env=env)

    def log(self):
        with open(self.log_path, 'rb') as f:
            return f.read().decode('utf-8', 'replace')[-6000:]

    def hosts(self):
        p = subprocess.run([support.ECRAE_BIN, 'hosts', '--json',
                            '--instances', '--server', self.grpc],
                           capture_output=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            return None
        return json.loads(p.stdout)

    def metrics(self):
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open('http://%s/metrics' % self.http, timeout=5) as r:
            return r.read().decode()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class HostViewBootstrapTest(NovaThreeHostsTestCase):

    def _serve_apis(self):
        # Nova's API with the noauth2 strategy, a second app beside the
        # harness's own (whose fake keystone reads other headers).
        self.flags(auth_strategy='noauth2', group='api')
        nova_app = nova_wsgi.Loader().load_app('osapi_compute')
        # Placement: the app the harness's fixture registered with
        # wsgi-intercept for its fake host.
        fixture = self.placement.fixture
        host = urllib.parse.urlsplit(fixture.endpoint).hostname
        placement_app = wsgi_intercept._wsgi_intercept[(host, 80)][0]()
        urls = {}
        for name, app in (('nova', nova_app), ('placement', placement_app)):
            sock, gt = _serve(app, name)
            urls[name] = 'http://127.0.0.1:%d' % sock.getsockname()[1]

            def stop(gt=gt, sock=sock):
                gt.kill()
                sock.close()
            self.addCleanup(stop)
        return urls

    def _clouds_yaml(self, urls):
        path = os.path.join(tempfile.mkdtemp(prefix='ecrae-it-clouds-'),
                            'clouds.yaml')
        with open(path, 'w') as f:
            f.write('clouds:\n'
                    '  harness:\n'
                    '    auth_type: none\n'
                    '    auth:\n'
                    '      token: "%s"\n'
                    '    compute_endpoint_override: %s/v2.1\n'
                    '    placement_endpoint_override: %s\n'
                    % (TOKEN, urls['nova'], urls['placement']))
        return path

    def _wait_hosts(self, ecrae, pred, what, timeout=30.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if ecrae.proc.poll() is not None:
                self.fail('ecrae serve exited:\n%s' % ecrae.log())
            last = ecrae.hosts()
            if last is not None and pred(last):
                return last
            time.sleep(0.2)   # green: the API servers keep serving
        self.fail('timed out waiting for %s; last ecrae hosts:\n%s\nlog:\n%s'
                  % (what, json.dumps(last, indent=1), ecrae.log()))

    @staticmethod
    def _by_host(view):
        return {h['host']: h for h in view.get('hosts', [])}

    @staticmethod
    def _where(view, uuid):
        for h in view.get('hosts', []):
            for i in h.get('instance_list', []):
                if i['uuid'] == uuid:
                    return h['host']
        return None

    def test_bootstrap_and_resync_from_nova_and_placement(self):
        if not os.path.exists(support.ECRAE_BIN):
            self.fail('%s not found: run make build first' % support.ECRAE_BIN)
        tagged = self._create_flavor(memory_mb=2048, vcpu=2, disk=1,
                                     extra_spec={'ecrae:tag': 'web'})
        a = self._boot(flavor_id=tagged, name='bootstrap-a')
        b = self._boot(flavor_id=tagged, name='bootstrap-b')
        b = self._live_migrate_to(b, 'host3')

        urls = self._serve_apis()
        ecrae = EcraeWithCloud(self._clouds_yaml(urls), 'harness')
        self.addCleanup(ecrae.stop)

        # Bootstrap: every compute with Placement's capacity and Nova's
        # cpu_info, every server on its host.
        view = self._wait_hosts(
            ecrae, lambda v: len(v.get('hosts', [])) == 3 and all(
                h.get('capacity_source') == 'placement'
                for h in v['hosts']) and v.get('instances') == 2,
            'the bootstrap')
        hosts = self._by_host(view)
        self.assertEqual({'host1', 'host2', 'host3'}, set(hosts))
        for name, cap in harness.HOSTS.items():
            h = hosts[name]
            self.assertEqual(harness.HOST_ARCH[name], h['isa'], name)
            self.assertEqual(cap['vcpus'], h['vcpus_total'], name)
            # Placement's MEMORY_MB inventory: total less the reserved 512.
            self.assertEqual(cap['memory_mb'] - 512, int(h['memory_mb_total']),
                             name)
            self.assertEqual('up', h['service_state'], name)
            self.assertTrue(h.get('uuid'), name)
            self.assertFalse(h.get('stale', False), name)
        for server in (a, b):
            nova_host = self._host_of(server)
            self.assertEqual(nova_host, self._where(view, server['id']))
            inst = [i for i in hosts[nova_host]['instance_list']
                    if i['uuid'] == server['id']][0]
            self.assertEqual(2, inst['vcpus'])
            self.assertEqual('web', inst['tag'])
            self.assertEqual('running', inst['power_state'])
        self.assertEqual(2, hosts['host3']['vcpus_used'])
        self.assertIn('no Keystone', view['sources'])
        self.assertIn('resync with Nova and Placement every %s' % RESYNC,
                      view['sources'])

        # Drift: Nova moves a server and deletes the other, and tells ECRAE
        # nothing (no notification driver): the resync finds and fixes it.
        target = 'host2' if self._host_of(a) != 'host2' else 'host1'
        a = self._live_migrate_to(a, target)
        self._delete_server(b)
        view = self._wait_hosts(
            ecrae, lambda v: self._where(v, a['id']) == target and
            v.get('instances') == 1, 'the resync to see the move')
        self.assertEqual(0, self._by_host(view)['host3'].get('instances', 0))
        metrics = ecrae.metrics()
        for kind in ('instance_moved', 'instance_removed'):
            line = [ln for ln in metrics.splitlines()
                    if ln.startswith('ecrae_resync_drift_total{kind="%s"}'
                                     % kind)]
            self.assertTrue(line and float(line[0].split()[-1]) >= 1,
                            '%s not counted:\n%s' % (kind, line))
        self.assertIn('ecrae_resync_total{result="ok"}', metrics)
        self.assertIn('resync corrected the host view', ecrae.log())
