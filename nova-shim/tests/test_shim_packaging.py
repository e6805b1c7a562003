"""`pip install ./nova-shim` into a venv made with --system-site-packages,
offline, and what Nova / oslo.messaging then find."""

import os
import shutil
import subprocess
import sys

import pytest

import shimtest

CHECK = r'''
import importlib.metadata as md, json
from nova.scheduler import filters, weights
nats = [e.value for e in md.entry_points(group='oslo.messaging.notify.drivers')
        if e.name == 'nats']
conf = [e.value for e in md.entry_points(group='oslo.config.opts')
        if e.name == 'ecrae_nova']
f = filters.HostFilterHandler().get_matching_classes(['ecrae_nova.EcraeFilter'])
w = weights.HostWeightHandler().get_matching_classes(['ecrae_nova.EcraeWeigher'])
from stevedore import driver
from oslo_config import cfg
d = driver.DriverManager('oslo.messaging.notify.drivers', 'nats',
                         invoke_on_load=True, invoke_args=(cfg.CONF,),
                         invoke_kwds={'topics': ['t'], 'transport': None})
import ecrae.v1.placement_pb2 as pb
print(json.dumps({'nats': nats, 'opts': conf,
                  'filter': [c.__module__ + '.' + c.__name__ for c in f],
                  'weigher': [c.__module__ + '.' + c.__name__ for c in w],
                  'driver': type(d.driver).__name__, 'pb': pb.__file__}))
'''


def test_pip_install_offline_into_system_site_venv(tmp_path):
    try:
        import ensurepip  # noqa: F401  (python3-venv)
    except ImportError:
        pytest.skip('python3-venv is not installed')
    src = tmp_path / 'src'   # a copy: pip builds in the source tree
    shutil.copytree(shimtest.SHIM_DIR, src, ignore=shutil.ignore_patterns(
        'tests', 'bench', 'build', '*.egg-info', '__pycache__'))
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--system-site-packages',
                    str(venv)], check=True, timeout=120)
    py = str(venv / 'bin' / 'python')
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    out = subprocess.run([py, '-m', 'pip', 'install', '--no-index',
                          '--no-build-isolation', '--no-deps', str(src)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    out = subprocess.run([py, '-c', CHECK], capture_output=True, text=True,
                         env=env, cwd=str(tmp_path), timeout=120)
    assert out.returncode == 0, out.stderr
    import json
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res['nats'] == ['ecrae_nova.notifier:NatsDriver']
    assert res['opts'] == ['ecrae_nova.opts:list_opts']
    assert res['filter'] == ['ecrae_nova.scheduler.EcraeFilter']
    assert res['weigher'] == ['ecrae_nova.scheduler.EcraeWeigher']
    assert res['driver'] == 'NatsDriver'
    assert res['pb'].startswith(str(venv))
