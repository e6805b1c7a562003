"""The "nats" notification driver against the real Debian nats-server, read
back with a raw-socket subscriber."""

import json
import logging
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest
from oslo_config import cfg

import shimtest
from ecrae_nova import notifier
from ecrae_nova import opts

HERE = os.path.dirname(os.path.abspath(__file__))
NATS_SERVER = next((p for p in ('/usr/bin/nats-server', '/usr/sbin/nats-server',
                                shutil.which('nats-server')) if p and
                    os.path.exists(p)), None)
pytestmark = pytest.mark.skipif(NATS_SERVER is None,
                                reason='nats-server not installed '
                                       '(apt-get install nats-server)')


def wait_port(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(('127.0.0.1', port), 0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError('nothing listens on %d' % port)


class NatsServer(object):
    def __init__(self, port=None, config=None, store_dir=None):
        self.port = port or shimtest.free_port()
        self.config = config
        self.store_dir = store_dir    # JetStream on, stored there
        self.proc = None

    def start(self):
        args = [NATS_SERVER, '-a', '127.0.0.1', '-p', str(self.port)]
        if self.config:
            args += ['-c', self.config]
        if self.store_dir:
            args += ['-js', '-sd', self.store_dir]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port)
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def nats():
    servers = []

    def make(**kw):
        s = NatsServer(**kw)
        servers.append(s)
        return s
    yield make
    for s in servers:
        s.stop()


class Subscriber(object):
    """SUB subject → MSG frames, over a raw socket. A reader thread answers
    the server's PINGs and queues (subject, decoded JSON payload)."""

    def __init__(self, port, subject='>'):
        self.sock = socket.create_connection(('127.0.0.1', port), 5)
        self.sock.settimeout(None)
        self.buf = b''
        self.msgs = queue.Queue()
        assert self._line().startswith(b'INFO ')
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n'
                          b'SUB ' + subject.encode() + b' 1\r\nPING\r\n')
        while self._line() != b'PONG':   # the SUB is active after the PONG
            pass
        threading.Thread(target=self._read, daemon=True).start()

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def _line(self):
        while b'\r\n' not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def _read(self):
        try:
            while True:
                line = self._line()
                if line == b'PING':
                    self.sock.sendall(b'PONG\r\n')
                elif line.startswith(b'MSG '):
                    parts = line.split()
                    size = int(parts[-1])
                    while len(self.buf) < size + 2:
                        self._fill()
                    payload, self.buf = self.buf[:size], self.buf[size + 2:]
                    self.msgs.put((parts[1].decode(), json.loads(payload)))
        except (OSError, EOFError):
            pass

    def next(self, timeout=10.0):
        return self.msgs.get(timeout=timeout)

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def make_driver(port, topics=('versioned_notifications',), **overrides):
    """A driver; plain publishes (ack_timeout 0) unless overridden: these
    servers have no JetStream stream to acknowledge them."""
    overrides.setdefault('ack_timeout', 0)
    conf = cfg.ConfigOpts()
    opts.register_nats_opts(conf)
    conf.set_override('url', 'nats://127.0.0.1:%d' % port, 'ecrae_nats')
    for name, value in overrides.items():
        conf.set_override(name, value, 'ecrae_nats')
    return notifier.NatsDriver(conf, list(topics), transport=None)


def message(event_type='instance.create.end', n=0, priority='INFO'):
    return {'message_id': 'id-%d' % n, 'publisher_id': 'nova-compute:host1',
            'event_type': event_type, 'priority': priority,
            'payload': {'nova_object.name': 'InstanceCreatePayload',
                        'nova_object.data': {'host': 'host1', 'n': n}},
            'timestamp': '2024-01-01 00:00:00.000000'}


@pytest.fixture
def drivers():
    made = []

    def track(d):
        made.append(d)
        return d
    yield track
    for d in made:
        d.close()


def test_subject_for():
    s = notifier.subject_for
    assert s('nova', 'versioned_notifications', 'INFO',
             'instance.create.end') == \
        'nova.versioned_notifications.info.instance.create.end'
    assert s('', 'notifications', 'error', 'compute.exception') == \
        'notifications.error.compute.exception'
    assert s('nova', 't', 'info', 'bad event*>') == 'nova.t.info.bad_event__'


def test_parse_servers():
    assert notifier.parse_servers('nats://u:p%40ss@h1:4223, tls://h2') == [
        ('nats', 'h1', 4223, 'u', 'p@ss'), ('tls', 'h2', 4222, None, None)]


def test_publishes_json_on_the_subject(nats, drivers):
    server = nats().start()
    sub = Subscriber(server.port, 'nova.>')
    drv = drivers(make_driver(server.port))
    msg = message()
    drv.notify({}, msg, 'INFO', None)
    drv.notify({}, message('instance.delete.end', 1), 'WARN', -1)
    assert sub.next() == (
        'nova.versioned_notifications.info.instance.create.end', msg)
    subject, body = sub.next()
    assert subject == 'nova.versioned_notifications.warn.instance.delete.end'
    assert body['payload']['nova_object.data']['n'] == 1
    assert drv.flush(5)
    assert (drv.published, drv.dropped, drv.reconnects) == (2, 0, 0)
    sub.close()


def test_one_message_per_topic(nats, drivers):
    server = nats().start()
    sub = Subscriber(server.port)
    drv = drivers(make_driver(server.port,
                              topics=['versioned_notifications', 'extra']))
    drv.notify({}, message('flavor.create'), 'INFO', None)
    got = sorted([sub.next()[0], sub.next()[0]])
    assert got == ['nova.extra.info.flavor.create',
                   'nova.versioned_notifications.info.flavor.create']


def test_subject_prefix_option(nats, drivers):
    server = nats().start()
    sub = Subscriber(server.port, 'region1.>')
    drv = drivers(make_driver(server.port, subject_prefix='region1.nova'))
    drv.notify({}, message('service.create'), 'INFO', None)
    assert sub.next()[0] == \
        'region1.nova.versioned_notifications.info.service.create'


def test_server_down_buffers_then_delivers(nats, drivers, caplog):
    caplog.set_level(logging.WARNING, logger='ecrae_nova')
    server = nats()    # a port, nothing started yet
    drv = drivers(make_driver(server.port))
    for i in range(5):
        t = time.monotonic()
        drv.notify({}, message(n=i), 'INFO', None)
        assert time.monotonic() - t < 0.5   # [ecrae_nats] timeout
        time.sleep(0.05)
    assert drv.buffered() == 5
    assert drv.published == 0
    assert any('cannot publish' in r.getMessage() for r in caplog.records)

    # Hold the sender back until the subscriber is listening (it cannot
    # subscribe before the server runs, and the driver may connect first).
    with drv.publisher._lock:
        server.start()
        sub = Subscriber(server.port)
    got = [sub.next()[1]['payload']['nova_object.data']['n'] for _ in range(5)]
    assert got == [0, 1, 2, 3, 4]
    assert drv.flush(5)
    assert (drv.published, drv.dropped, drv.buffered()) == (5, 0, 0)


def test_overflow_drops_the_oldest(nats, drivers, caplog):
    caplog.set_level(logging.WARNING, logger='ecrae_nova')
    server = nats()
    drv = drivers(make_driver(server.port, buffer_size=3))
    for i in range(7):
        drv.notify({}, message(n=i), 'INFO', None)
    assert drv.dropped == 4
    assert drv.buffered() == 3
    drops = [r.getMessage() for r in caplog.records if 'dropped' in
             r.getMessage()]
    assert len(drops) == 1            # rate-limited: one warning
    assert 'dropped the 1 oldest' in drops[0]

    with drv.publisher._lock:
        server.start()
        sub = Subscriber(server.port)
    got = [sub.next()[1]['payload']['nova_object.data']['n'] for _ in range(3)]
    assert got == [4, 5, 6]
    assert drv.flush(5)
    assert (drv.published, drv.dropped) == (3, 4)


def test_reconnects_after_server_restart(nats, drivers):
    server = nats().start()
    sub = Subscriber(server.port)
    drv = drivers(make_driver(server.port))
    drv.notify({}, message(n=1), 'INFO', None)
    assert sub.next()[1]['message_id'] == 'id-1'
    sub.close()
    server.stop()
    deadline = time.monotonic() + 10
    while drv.publisher.connected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not drv.publisher.connected
    drv.notify({}, message(n=2), 'INFO', None)
    with drv.publisher._lock:
        server.start()
        sub = Subscriber(server.port)
    assert sub.next()[1]['message_id'] == 'id-2'
    assert drv.flush(5)
    assert drv.reconnects == 1
    assert drv.published == 2


def test_answers_server_pings(nats, drivers, tmp_path):
    # The server PINGs every 100 ms and drops a client after 2 unanswered.
    config = tmp_path / 'nats.conf'
    config.write_text('ping_interval: "100ms"\nping_max: 2\n')
    server = nats(config=str(config)).start()
    sub = Subscriber(server.port)
    drv = drivers(make_driver(server.port))
    drv.notify({}, message(n=1), 'INFO', None)
    assert sub.next()[1]['message_id'] == 'id-1'
    time.sleep(1.0)                    # ~10 server PINGs
    drv.notify({}, message(n=2), 'INFO', None)
    assert sub.next()[1]['message_id'] == 'id-2'
    assert drv.flush(5)
    assert drv.publisher.connections == 1 and drv.reconnects == 0


def test_token_auth(nats, drivers, tmp_path):
    config = tmp_path / 'nats.conf'
    config.write_text('authorization { token: "s3cret" }\n')
    server = nats(config=str(config)).start()
    bad = drivers(make_driver(server.port, token='wrong'))
    bad.notify({}, message(n=0), 'INFO', None)
    good = drivers(make_driver(server.port, token='s3cret'))
    good.notify({}, message(n=1), 'INFO', None)
    assert good.flush(10) and good.published == 1
    assert bad.published == 0 and bad.buffered() == 1
    assert 'Authorization Violation' in (bad.publisher.last_error or '')


def test_forked_child_gets_its_own_sender(nats, drivers):
    server = nats().start()
    sub = Subscriber(server.port)
    drv = drivers(make_driver(server.port))   # created before the fork
    drv.notify({}, message(n=1), 'INFO', None)
    assert sub.next()[1]['message_id'] == 'id-1'
    # The subscriber may see id-1 before the sender thread has counted it:
    # flush waits for that, so the child inherits published == 1 (without
    # it the child counted 1 of 2 and failed, seen on a loaded machine).
    assert drv.flush(10) and drv.published == 1
    parent_thread = drv.publisher._thread
    pid = os.fork()
    if pid == 0:   # child: the parent's sender thread does not exist here
        code = 1
        try:
            drv.notify({}, message(n=2), 'INFO', None)
            ok = drv.flush(10) and drv.publisher._thread is not parent_thread
            code = 0 if ok and drv.published == 2 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert sub.next()[1]['message_id'] == 'id-2'
    assert drv.publisher._thread is parent_thread and drv.published == 1


EVENTLET_SCRIPT = r'''
import eventlet
eventlet.monkey_patch()
import json, sys, threading
sys.path.insert(0, sys.argv[2])
import test_shim_notifier as test_notifier
drv = test_notifier.make_driver(int(sys.argv[1]))
ticks = [0]
def ticker():
    while True:
        eventlet.sleep(0.01)
        ticks[0] += 1
eventlet.spawn(ticker)
for i in range(20):
    drv.notify({}, test_notifier.message(n=i), 'INFO', None)
ok = drv.flush(10)
t = drv.publisher._thread
print(json.dumps({'flushed': ok, 'published': drv.published,
                  'green_threading': isinstance(t, threading.Thread),
                  'ticks': ticks[0]}))
'''


def test_under_eventlet_sender_is_a_native_thread(nats):
    server = nats().start()
    sub = Subscriber(server.port)
    out = subprocess.run(
        [sys.executable, '-c', EVENTLET_SCRIPT, str(server.port), HERE],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res['flushed'] and res['published'] == 20
    # The thread class comes from eventlet.patcher.original('threading'),
    # not the green threading module the process sees.
    assert res['green_threading'] is False
    got = [sub.next()[1]['payload']['nova_object.data']['n']
           for _ in range(20)]
    assert got == list(range(20))


# --------------------------------------------------------------------------
# JetStream publishes (ack_timeout > 0, the default): acknowledged by the
# stream, sent again until they are.
# --------------------------------------------------------------------------

def js_request(port, subject, body=b''):
    """One JetStream API request over a raw socket; its JSON answer."""
    sock = socket.create_connection(('127.0.0.1', port), 5)
    buf = b''
    try:
        def line():
            nonlocal buf
            while b'\r\n' not in buf:
                data = sock.recv(65536)
                if not data:
                    raise EOFError
                buf += data
            out, buf = buf.split(b'\r\n', 1)
            return out
        assert line().startswith(b'INFO ')
        sock.sendall(b'CONNECT {"verbose":false}\r\nSUB _INBOX.js 1\r\n'
                     b'PUB %s _INBOX.js %d\r\n%s\r\nPING\r\n'
                     % (subject.encode(), len(body), body))
        while True:
            got = line()
            if got.startswith(b'MSG '):
                size = int(got.split()[-1])
                while len(buf) < size + 2:
                    buf += sock.recv(65536)
                return json.loads(buf[:size])
            if got == b'PING':
                sock.sendall(b'PONG\r\n')
    finally:
        sock.close()


def create_stream(port, subjects=('nova.>',)):
    got = js_request(port, '$JS.API.STREAM.CREATE.IT', json.dumps({
        'name': 'IT', 'subjects': list(subjects), 'storage': 'file',
        'duplicate_window': 120 * 10**9}).encode())
    assert 'error' not in got, got


def stream_messages(port):
    return js_request(port, '$JS.API.STREAM.INFO.IT')['state']['messages']


def test_jetstream_acknowledges_each_notification(nats, drivers, tmp_path):
    server = nats(store_dir=str(tmp_path)).start()
    create_stream(server.port)
    drv = drivers(make_driver(server.port, ack_timeout=2.0))
    for i in range(3):
        drv.notify({}, message(n=i), 'INFO', None)
    assert drv.flush(10)
    assert (drv.published, drv.publisher.resent, drv.buffered()) == (3, 0, 0)
    assert stream_messages(server.port) == 3
    # The same notification again (a resend whose first ack was lost):
    # the stream stores it once (Nats-Msg-Id), and acknowledges it.
    drv.notify({}, message(n=2), 'INFO', None)
    assert drv.flush(10) and drv.published == 4
    assert stream_messages(server.port) == 3


def test_unstored_notification_is_kept_and_sent_again(nats, drivers,
                                                      tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger='ecrae_nova')
    # JetStream without the stream (as while a clustered stream elects a
    # new leader): the server answers "no responders" and nothing is
    # stored. A plain publish would be gone; this one stays buffered.
    server = nats(store_dir=str(tmp_path)).start()
    drv = drivers(make_driver(server.port, ack_timeout=2.0))
    drv.notify({}, message(n=7), 'INFO', None)
    deadline = time.monotonic() + 10
    while drv.publisher.resent < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert drv.publisher.resent >= 2
    assert (drv.published, drv.buffered()) == (0, 1)
    assert 'did not store' in (drv.publisher.last_error or '')
    drv.notify({}, message(n=8), 'INFO', None)    # warnings come with notify
    warned = [r.getMessage() for r in caplog.records
              if 'not acknowledged' in r.getMessage()]
    assert len(warned) == 1 and 'kept and sent again' in warned[0], warned
    assert drv.buffered() == 2

    create_stream(server.port)
    assert drv.flush(15)
    assert (drv.published, drv.buffered(), drv.dropped) == (2, 0, 0)
    assert stream_messages(server.port) == 2


def test_unacknowledged_notifications_survive_a_server_restart(
        nats, drivers, tmp_path):
    server = nats(store_dir=str(tmp_path)).start()
    create_stream(server.port)
    drv = drivers(make_driver(server.port, ack_timeout=2.0))
    drv.notify({}, message(n=1), 'INFO', None)
    assert drv.flush(10) and drv.published == 1
    server.stop()
    for i in range(2, 5):
        drv.notify({}, message(n=i), 'INFO', None)
    server.start()     # the stream is on disk
    assert drv.flush(15)
    assert (drv.published, drv.dropped) == (4, 0)
    assert stream_messages(server.port) == 4
