"""Shared harness for the Nova end-to-end tests of ECRAE.

Import this module first in every test module: it sets sys.path explicitly
(the shim package and its generated stubs come from the repository's
nova-shim/ directory, never from an installed copy) and imports Nova's
functional helpers, which apply eventlet's monkey patching before anything
else is imported.

Run with Debian's /usr/bin/python3 only (see integration/README.md).
"""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, '..', '..'))
NOVA_SHIM = os.path.join(REPO, 'nova-shim')
for _p in (NOVA_SHIM, HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)

# Monkey patches (eventlet) on import; must come before grpc, socket users...
from nova.tests.functional import integrated_helpers  # noqa: E402

from unittest import mock  # noqa: E402

from oslo_log import log as logging  # noqa: E402
from oslo_serialization import jsonutils  # noqa: E402

from nova.conductor import rpcapi as conductor_rpcapi  # noqa: E402
from nova import utils  # noqa: E402
from nova.virt import fake as fake_virt  # noqa: E402

LOG = logging.getLogger(__name__)

API_PASTE_INI = os.path.join(HERE, 'api-paste.ini')

# The three fake compute hosts. Capacities differ on purpose: Nova's default
# RAMWeigher spreads to the host with the most free RAM (host1), so a boot
# landing elsewhere shows that another weigher decided.
HOSTS = {
    'host1': {'vcpus': 64, 'memory_mb': 262144, 'local_gb': 4000},
    'host2': {'vcpus': 32, 'memory_mb': 131072, 'local_gb': 2000},
    'host3': {'vcpus': 32, 'memory_mb': 65536, 'local_gb': 1000},
}
# The ISA each fake hypervisor reports in cpu_info (the fake driver says
# x86_64 for every host; a real aarch64 host would say aarch64).
HOST_ARCH = {'host1': 'x86_64', 'host2': 'x86_64', 'host3': 'aarch64'}

# A Glance image with no architecture property (the harness's default image
# says x86_64, which would keep every boot off host3).
NOARCH_IMAGE = {
    'name': 'ecrae-it-any-arch',
    'status': 'active',
    'container_format': 'bare',
    'disk_format': 'raw',
    'size': '1048576',
    'min_ram': 0,
    'min_disk': 0,
    'visibility': 'public',
    'is_public': True,
    'protected': False,
}


class NovaThreeHostsTestCase(integrated_helpers._IntegratedTestBase):
    """A real in-process Nova with three fake compute hosts."""

    ADMIN_API = True
    microversion = '2.93'
    compute_driver = 'fake.FakeDriver'
    # The fleet: host -> capacity, host -> ISA. A subclass may bring its own.
    fleet = HOSTS
    fleet_arch = HOST_ARCH

    def _setup_services(self):
        # Nova's stock api-paste.ini (not shipped by python3-nova).
        self.flags(api_paste_config=API_PASTE_INI, group='wsgi')
        self.image_id = self.glance.create(None, dict(
            NOARCH_IMAGE, properties={}))['id']
        self.flags(compute_driver=self.compute_driver)
        self._configure_nova()
        super()._setup_services()

    def _clear_attrs(self):
        # Nova's cleanup deletes every public instance attribute; under pytest
        # that includes the bound test method pytest set on the instance and
        # deletes itself afterwards (AttributeError). Keep that one.
        keep = self._testMethodName
        for key in [k for k in self.__dict__ if k[0] != '_']:
            if key not in ('id', keep):
                del self.__dict__[key]

    def _configure_nova(self):
        """Hook for subclasses: set nova.conf options with self.flags()."""

    def _setup_compute_service(self):
        first = None
        for host, cap in self.fleet.items():
            # The fake driver reads its capacity from class attributes when
            # it is built and on every resource update: patch them while the
            # service starts, then pin them on the instance for later updates.
            with mock.patch.multiple(fake_virt.FakeDriver, **cap):
                svc = self._start_compute(host)
            for k, v in cap.items():
                setattr(svc.driver, k, v)
            self._customize_resources(svc.driver, self.fleet_arch[host])
            first = first or svc
        # Refresh the compute nodes with the capacities and cpu_info above.
        self._run_periodics()
        return first

    @staticmethod
    def _customize_resources(driver, arch):
        """What the fake hypervisor reports, made closer to a real one:
        - cpu_info arch: the host's ISA (the fake says x86_64 everywhere);
        - disk_available_least: the free disk (the fake says 0, which Nova's
          HostState turns into free_disk_mb = 0; Nova itself no longer
          filters on it, placement does, but ECRAE reads it)."""
        orig = driver.get_available_resource

        def get_available_resource(nodename):
            res = orig(nodename)
            if res.get('cpu_info'):
                info = jsonutils.loads(res['cpu_info'])
                info['arch'] = arch
                res['cpu_info'] = jsonutils.dumps(info)
            if 'local_gb' in res:
                res['disk_available_least'] = (
                    res['local_gb'] - res.get('local_gb_used', 0))
            return res
        driver.get_available_resource = get_available_resource

    def _make_live_migration_cast_async(self):
        """Give the API -> conductor live-migration RPC back its real,
        asynchronous semantics.

        _IntegratedTestBase turns every RPC cast into a call
        (CastAsCallFixture), so a conductor failure such as NoValidHost
        would bubble up as a 500 from os-migrateLive. In a real Nova the
        cast returns at once, the API answers 202, and the conductor
        records the failure on the migration (status 'error') and on the
        instance action. This runs the (still synchronous) call in its own
        green thread, which is what a cast amounts to."""
        orig = conductor_rpcapi.ComputeTaskAPI.live_migrate_instance

        def live_migrate_instance(api, *args, **kwargs):
            def run():
                try:
                    orig(api, *args, **kwargs)
                except Exception as exc:
                    LOG.info('conductor live_migrate_instance failed: %r '
                             '(a cast: the API answered already)', exc)
            utils.spawn_n(run)

        self.stub_out(
            'nova.conductor.rpcapi.ComputeTaskAPI.live_migrate_instance',
            live_migrate_instance)

    # -- helpers -----------------------------------------------------------

    def _boot(self, flavor_id=None, hints=None, expected_state='ACTIVE',
              name=None):
        body = self._build_server(name=name, image_uuid=self.image_id,
                                  flavor_id=flavor_id, networks='none')
        req = {'server': body}
        if hints:
            req['os:scheduler_hints'] = hints
        server = self.api.post_server(req)
        return self._wait_for_status(server, expected_state)

    def _live_migrate_to(self, server, host, migration_status='completed',
                         server_status='ACTIVE'):
        self.api.post_server_action(
            server['id'],
            {'os-migrateLive': {'host': host, 'block_migration': 'auto'}},
            check_response_status=[202])
        self._wait_until(
            lambda: self._migration_status(server) == migration_status,
            what=lambda: 'migration of %s to be %s (is %s)' % (
                server['id'], migration_status,
                self._migration_status(server)))
        return self._wait_for_status(server, server_status)

    def _migration_status(self, server):
        migrations = [m for m in self.api.api_get('/os-migrations').body[
            'migrations'] if m['instance_uuid'] == server['id']]
        if not migrations:
            return None
        return max(migrations, key=lambda m: m['id'])['status']

    def _wait_for_status(self, server, status, timeout=20.0):
        """Like _wait_for_state_change, polling every 0.1 s (not 0.5 s)."""
        last = {}

        def done():
            last['server'] = self.api.get_server(server['id'])
            if (last['server']['status'] == status and
                    last['server'].get('OS-EXT-STS:task_state') is None):
                return last['server']
        return self._wait_until(
            done, timeout, what=lambda: 'server %s to be %s (last seen: %s)'
            % (server['id'], status, last.get('server')))

    def _host_of(self, server):
        return self.api.get_server(server['id'])['OS-EXT-SRV-ATTR:host']

    def _wait_until(self, pred, timeout=10.0, interval=0.1, what='condition'):
        """Polls pred() until it is truthy; `what` may be a callable, called
        for the failure message only."""
        deadline = time.monotonic() + timeout
        while True:
            value = pred()
            if value:
                return value
            if time.monotonic() > deadline:
                self.fail('timed out waiting for %s' % (
                    what() if callable(what) else what))
            time.sleep(interval)
