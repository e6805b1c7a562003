import logging
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shimtest  # noqa: E402  (puts nova-shim/ on sys.path, registers objects)

import nova.conf  # noqa: E402

from ecrae_nova import client  # noqa: E402
from ecrae_nova import scheduler  # noqa: E402

CONF = nova.conf.CONF


@pytest.fixture
def ecrae_conf():
    """Override [ecrae] options for one test: ecrae_conf(timeout=1.0, ...)."""
    touched = []

    def set_(**kw):
        for name, value in kw.items():
            CONF.set_override(name, value, group='ecrae')
            touched.append(name)
    yield set_
    for name in touched:
        CONF.clear_override(name, group='ecrae')


@pytest.fixture(autouse=True)
def fresh_warning():
    scheduler.FAILURE_WARNING.reset()
    yield
    scheduler.FAILURE_WARNING.reset()


@pytest.fixture
def fake_service(ecrae_conf):
    """A recording stand-in for the Go service; [ecrae] endpoint points at
    it, with a deadline generous enough for a loaded CI machine."""
    # A fresh channel per test: a port is reused across tests, and a channel
    # cached for it from an earlier, stopped server may be in backoff (the
    # call then fails fast as UNAVAILABLE, as seen on a loaded CI machine).
    client.close_channels()
    servicer = shimtest.FakePlacement()
    server, port = shimtest.start_fake_server(servicer)
    ecrae_conf(endpoint='127.0.0.1:%d' % port, timeout=5.0)
    servicer.port = port
    yield servicer
    server.stop(0)
    client.close_channels()


@pytest.fixture
def no_service(ecrae_conf):
    """[ecrae] endpoint on a port where nothing listens."""
    ecrae_conf(endpoint='127.0.0.1:%d' % shimtest.free_port(), timeout=1.0)


@pytest.fixture
def warnings_log(caplog):
    caplog.set_level(logging.WARNING, logger='ecrae_nova')

    def records():
        return [r for r in caplog.records
                if r.name.startswith('ecrae_nova') and
                r.levelno >= logging.WARNING]
    return records


# -- sharing a pytest session with suites that monkey-patch eventlet -----------
#
# Nova's functional test tree (imported by integration/ at collection time)
# applies eventlet's monkey patching to the whole process. These tests need an
# unpatched process (real threads for the stand-in gRPC servers, and the
# eventlet tests patch a subprocess on purpose), so when that happened they
# are deselected here and run as one item, in a clean pytest subprocess.

_SUBPROCESS_ENV = 'ECRAE_SHIM_TESTS_SUBPROCESS'
HERE = os.path.dirname(os.path.abspath(__file__))


class ShimTestsInSubprocess(pytest.Item):
    def __init__(self, *, nodeids, **kwargs):
        super().__init__(**kwargs)
        self.nodeids = nodeids
        self.output = ''

    def runtest(self):
        import subprocess
        env = dict(os.environ, **{_SUBPROCESS_ENV: '1'})
        proc = subprocess.run(
            [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
             '-rs'] + self.nodeids,
            cwd=str(self.config.rootpath), env=env, capture_output=True,
            text=True)
        self.output = proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise RuntimeError('nova-shim tests failed (exit %d)'
                               % proc.returncode)
        print(self.output.strip().splitlines()[-1])

    def repr_failure(self, excinfo):
        return '%s\n%s' % (excinfo.value, self.output[-20000:])

    def reportinfo(self):
        return self.path, None, self.name


def pytest_collection_modifyitems(session, config, items):
    from ecrae_nova import client
    if os.environ.get(_SUBPROCESS_ENV) or not client.eventlet_patched():
        return
    mine = [i for i in items if str(i.path).startswith(HERE + os.sep)]
    if not mine:
        return
    config.hook.pytest_deselected(items=mine)
    proxy = ShimTestsInSubprocess.from_parent(
        mine[0].parent, name='nova-shim tests (in a separate process: '
        'eventlet monkey-patched this one)',
        nodeids=[i.nodeid for i in mine])
    items[:] = [proxy] + [i for i in items if i not in mine]
