"""Make the shim's entry points visible without installing the shim.

The tests import ecrae_nova straight from the repository's nova-shim/
directory (sys.path, see harness.py), so no installed distribution declares
its entry points, and oslo.messaging (through stevedore) finds notification
drivers only by entry point: group "oslo.messaging.notify.drivers", name
"nats". This writes the metadata `pip install nova-shim/` would write, a
.dist-info with entry_points.txt, into a directory under /tmp put on
sys.path.
The entry points are read from nova-shim/pyproject.toml, so the test
exercises what the package really declares.
"""
import hashlib
import os
import shutil
import sys
import tempfile

import tomllib  # Python 3.11, Debian bookworm's

HERE = os.path.dirname(os.path.abspath(__file__))
PYPROJECT = os.path.normpath(
    os.path.join(HERE, '..', '..', 'nova-shim', 'pyproject.toml'))

_dir = None


def shim_entry_points():
    """{group: {name: 'module:attr'}} from nova-shim/pyproject.toml."""
    with open(PYPROJECT, 'rb') as f:
        project = tomllib.load(f)['project']
    return project, project.get('entry-points', {})


def _render(project, groups):
    metadata = ('Metadata-Version: 2.1\nName: %s\nVersion: %s\n'
                % (project['name'], project['version']))
    eps = ''
    for group, entries in groups.items():
        eps += '[%s]\n' % group
        for ep_name, target in entries.items():
            eps += '%s = %s\n' % (ep_name, target)
        eps += '\n'
    return metadata, eps


def register_shim_entry_points():
    """Idempotent; returns the directory put on sys.path.

    The directory is named after its content and reused across runs, so
    stevedore's on-disk cache (keyed on sys.path and mtimes) stays valid.
    Not under the test's TMPDIR: Nova's fixtures delete that per test."""
    global _dir
    if _dir is not None:
        return _dir
    project, groups = shim_entry_points()
    if 'nats' not in groups.get('oslo.messaging.notify.drivers', {}):
        raise RuntimeError('%s declares no oslo.messaging.notify.drivers '
                           'entry point "nats"' % PYPROJECT)
    metadata, eps = _render(project, groups)
    digest = hashlib.sha256((metadata + eps).encode()).hexdigest()[:16]
    base = os.environ.get('ECRAE_IT_TMP', '/tmp')
    d = os.path.join(base, 'ecrae-it-entrypoints-%d-%s' % (os.getuid(),
                                                           digest))
    if not os.path.isdir(d):
        tmp = tempfile.mkdtemp(prefix='.ecrae-it-entrypoints-', dir=base)
        info = os.path.join(tmp, '%s-%s.dist-info' % (
            project['name'].replace('-', '_'), project['version']))
        os.mkdir(info)
        with open(os.path.join(info, 'METADATA'), 'w') as f:
            f.write(metadata)
        with open(os.path.join(info, 'entry_points.txt'), 'w') as f:
            f.write(eps)
        try:
            os.rename(tmp, d)   # atomic; a concurrent run may have won
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.path.append(d)
    # stevedore remembers each namespace's entry points for the life of the
    # process (ExtensionManager.ENTRY_POINT_CACHE); forget the groups we add
    # in case something looked them up before (Nova's RPCFixture loads the
    # "test" notification driver in every test's setUp).
    from stevedore import extension
    for group in groups:
        extension.ExtensionManager.ENTRY_POINT_CACHE.pop(group, None)
    _dir = d
    return d
