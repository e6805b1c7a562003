"""Step 1 smoke test: Nova's own in-process functional harness runs here.

Three fake compute hosts, a real API/conductor/scheduler/placement: boot a
server to ACTIVE, live-migrate it to a named host, delete it. No ECRAE.
"""
import harness  # noqa: F401  (sys.path + nova monkey patching, first)

from nova import utils

from harness import HOST_ARCH
from harness import NovaThreeHostsTestCase


class NovaHarnessSmokeTest(NovaThreeHostsTestCase):

    def test_hosts_report_their_arch(self):
        with utils.temporary_mutation(self.api, microversion='2.87'):
            hvs = self.api.api_get('/os-hypervisors/detail').body[
                'hypervisors']
        arch = {h['service']['host']: h['cpu_info']['arch'] for h in hvs}
        self.assertEqual(HOST_ARCH, arch)

    def test_boot_live_migrate_delete(self):
        server = self._boot()
        # Nova's default weighers alone: RAMWeigher spreads to the host with
        # the most free RAM, host1 (see harness.HOSTS).
        self.assertEqual('host1', server['OS-EXT-SRV-ATTR:host'])
        server = self._live_migrate_to(server, 'host3')
        self.assertEqual('host3', server['OS-EXT-SRV-ATTR:host'])
        self._delete_server(server)
