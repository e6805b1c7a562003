"""oslo.messaging notification driver ``nats``: publishes each notification as
JSON on ``<subject_prefix>.<topic>.<priority>.<event_type>``.

Debian has no Python NATS client, so this speaks the NATS core text protocol
itself (INFO, CONNECT, PUB, PING/PONG), publish-only. One native OS thread per
driver (per process) owns the socket: it connects, reconnects with backoff,
answers PINGs, sends its own PINGs to notice a dead connection, and drains a
bounded buffer. ``notify()`` only appends to that buffer, so it never waits on
the network; when the buffer is full the oldest notification is dropped.

With ``ack_timeout`` (the default) each notification is a JetStream publish:
sent with a reply subject and a ``Nats-Msg-Id`` header, it counts as published
when the stream acknowledges it, and is sent again (same id: the stream stores
it once) when no acknowledgement came in time or the stream answered an error,
e.g. while the stream elects a new leader after a cluster member died. A plain
publish would be lost then: the members left take it, and no stream stores it.

Under eventlet (every Nova service) the sender thread, its socket, lock and
event come from ``eventlet.patcher.original(...)``: a real thread that never
runs on, or blocks, the hub. It never logs either; warnings are logged by
``notify()`` in the caller's (green) thread, rate-limited.
"""

import collections
import json
import os
import re
import sys
import threading
import time
from urllib import parse as urlparse

from oslo_log import log as logging
from oslo_messaging.notify import notifier
from oslo_serialization import jsonutils

from ecrae_nova import opts

LOG = logging.getLogger(__name__)

CLIENT_NAME = 'ecrae-nova-notifier'
WARNING_INTERVAL = 60.0       # seconds between two warnings of a kind
PING_INTERVAL = 10.0          # seconds between our PINGs
MAX_PINGS_OUT = 2             # unanswered PINGs before the link is dead
CONNECT_TIMEOUT = 2.0
IO_TIMEOUT = 5.0
BACKOFF_MIN, BACKOFF_MAX = 0.1, 2.0
BATCH_BYTES = 64 * 1024
MAX_UNACKED = 1000            # JetStream publishes awaiting their ack
_BAD_SUBJECT_CHARS = re.compile(r'[\s*>]')
_BAD_HEADER_CHARS = re.compile(r'[\x00-\x20\x7f]')
# Guards the (re)start of a sender; a caller-side lock (green under eventlet).
_START_LOCK = threading.Lock()


def _native(name):
    """The real (unpatched) module when eventlet has patched this process."""
    patcher = sys.modules.get('eventlet.patcher')
    if patcher is not None:
        try:
            patched = any(patcher.is_monkey_patched(m) for m in
                          ('thread', 'socket', 'select', 'time'))
        except Exception:
            patched = False
        if patched:
            return patcher.original(name)
    return __import__(name)


def subject_for(prefix, topic, priority, event_type):
    parts = (prefix, topic, (priority or '').lower(), event_type)
    return '.'.join(_BAD_SUBJECT_CHARS.sub('_', str(p)).strip('.')
                    for p in parts if p)


def parse_servers(url):
    """'nats://u:p@h:4222,tls://h2:4443' → [(scheme, host, port, user, pw)]."""
    servers = []
    for item in (url or '').split(','):
        item = item.strip()
        if not item:
            continue
        if '://' not in item:
            item = 'nats://' + item
        u = urlparse.urlsplit(item)
        servers.append((u.scheme or 'nats', u.hostname or '127.0.0.1',
                        u.port or 4222,
                        urlparse.unquote(u.username) if u.username else None,
                        urlparse.unquote(u.password) if u.password else None))
    return servers or [('nats', '127.0.0.1', 4222, None, None)]


class NatsPublisher(object):
    """A publish-only NATS connection with a bounded buffer, run by one native
    thread that is started on first use (and again in a forked child)."""

    def __init__(self, url, user=None, password=None, token=None,
                 tls_enabled=False, ca_file=None, cert_file=None,
                 key_file=None, timeout=0.5, buffer_size=10000,
                 ack_timeout=2.0):
        self.servers = parse_servers(url)
        self.user, self.password, self.token = user, password, token
        self.tls_enabled = tls_enabled
        self.ca_file, self.cert_file, self.key_file = (
            ca_file, cert_file, key_file)
        self.timeout = timeout
        self.buffer_size = buffer_size
        self.ack_timeout = ack_timeout   # 0: plain publishes, no acks
        self.published = 0        # sent (plain) or acknowledged (JetStream)
        self.resent = 0           # JetStream publishes sent again
        self.dropped = 0          # oldest dropped because the buffer was full
        self.oversize = 0         # larger than the server's max_payload
        self.connections = 0      # successful connects
        self.errors = 0           # failed connects and broken links
        self.last_error = None
        self.connected = False
        self._pid = None
        self._thread = None

    # -- caller side (any thread, green or not) ------------------------------

    @property
    def reconnects(self):
        return max(0, self.connections - 1)

    def buffered(self):
        """Notifications not published yet (awaiting their ack included)."""
        if self._pid != os.getpid():
            return 0
        return len(self._buf) + self._inflight + len(self._unacked)

    def publish(self, subject, payload, msg_id=None):
        """Queue one message; returns how many old ones it pushed out.
        msg_id: its Nats-Msg-Id (JetStream's duplicate detection)."""
        if self._pid != os.getpid():
            with _START_LOCK:
                if self._pid != os.getpid():
                    self._start()
        if not self._lock.acquire(timeout=self.timeout):
            self.dropped += 1
            return 1
        try:
            pushed = 0
            while len(self._buf) >= self.buffer_size:
                self._buf.popleft()
                pushed += 1
            self._buf.append((subject, payload, msg_id))
            self.dropped += pushed
        finally:
            self._lock.release()
        self._signal()
        return pushed

    def _signal(self):
        """Wake the sender: one byte on a non-blocking native socketpair."""
        if not self._signalled:
            self._signalled = True
            try:
                self._wake_w.send(b'x')
            except OSError:
                pass

    def flush(self, timeout=5.0):
        """Wait until everything queued was written (for tests and exit)."""
        if self._pid != os.getpid():
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._buf and not self._inflight and not self._unacked:
                return True
            time.sleep(0.005)
        return False

    def close(self, timeout=2.0):
        if self._pid != os.getpid() or self._thread is None:
            return
        self._stop.set()
        self._signalled = False
        self._signal()
        self._thread.join(timeout)
        self._thread = None
        for s in (self._wake_r, self._wake_w):
            s.close()

    def _start(self):
        """A fresh buffer, lock and sender thread: on first use, and in a
        forked child (the parent's thread does not exist there)."""
        threading = _native('threading')
        self._socket_mod = _native('socket')
        self._select = _native('select')
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = self._socket_mod.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._signalled = False
        self._buf = collections.deque()
        self._inflight = 0
        # JetStream publishes sent and not acknowledged yet: n -> (item,
        # time sent), n the last token of the reply subject; the sender
        # thread's alone.
        self._unacked = collections.OrderedDict()
        self._next_n = 0
        self._inbox = '_INBOX.%s' % os.urandom(8).hex()
        self._hold_until = 0.0     # no publishing before (after a NAK)
        self._nak_backoff = BACKOFF_MIN
        self._sock = None
        self.connected = False
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name=CLIENT_NAME,
                                        daemon=True)
        self._thread.start()

    # -- sender thread --------------------------------------------------------

    def _run(self):
        backoff = BACKOFF_MIN
        index = 0
        while not self._stop.is_set():
            if self._sock is None:
                server = self.servers[index % len(self.servers)]
                try:
                    self._connect(server)
                    backoff = BACKOFF_MIN
                except Exception as exc:
                    self._fail(exc)
                    index += 1
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
                    continue
            try:
                self._step()
            except Exception as exc:
                self._fail(exc)
        self._close_sock()

    def _fail(self, exc):
        self.errors += 1
        self.last_error = '%s: %s' % (type(exc).__name__, exc)
        self._close_sock()

    def _close_sock(self):
        sock, self._sock = self._sock, None
        self.connected = False
        # What the server may not have stored is sent again (same ids).
        self._resend_unacked(list(self._unacked))
        if sock is not None:
            try:
                sock.close()
            except Exception:
                pass

    def _readline(self):
        while b'\r\n' not in self._rbuf:
            data = self._sock.recv(65536)
            if not data:
                raise ConnectionError('connection closed by the server')
            self._rbuf += data
        line, self._rbuf = self._rbuf.split(b'\r\n', 1)
        return line.decode('utf-8', 'replace')

    def _connect(self, server):
        scheme, host, port, url_user, url_password = server
        sock = self._socket_mod.create_connection((host, port),
                                                  timeout=CONNECT_TIMEOUT)
        self._sock, self._rbuf = sock, b''
        sock.settimeout(IO_TIMEOUT)
        line = self._readline()
        if not line.startswith('INFO '):
            raise ConnectionError('expected INFO, got %r' % line[:80])
        info = json.loads(line[5:])
        self.max_payload = int(info.get('max_payload') or 1024 * 1024)
        tls = self.tls_enabled or scheme == 'tls' or info.get('tls_required')
        if tls:
            ssl = _native('ssl')
            ctx = ssl.create_default_context(cafile=self.ca_file or None)
            if self.cert_file:
                ctx.load_cert_chain(self.cert_file, self.key_file or None)
            self._sock = ctx.wrap_socket(sock, server_hostname=host)
        connect = {'verbose': False, 'pedantic': False, 'name': CLIENT_NAME,
                   'lang': 'python', 'version': '1.0', 'protocol': 0}
        if tls:
            connect['tls_required'] = True
        if self.ack_timeout:
            # A stream without a leader answers at once (503), not never.
            connect['headers'] = True
            connect['no_responders'] = True
        user = self.user or url_user
        password = self.password or url_password
        if self.token or (url_user and not url_password and not self.user):
            connect['auth_token'] = self.token or url_user
        elif user:
            connect['user'] = user
            connect['pass'] = password or ''
        sub = (b'SUB %s.* 1\r\n' % self._inbox.encode()
               if self.ack_timeout else b'')
        self._sock.sendall(b'CONNECT ' + json.dumps(connect).encode() +
                           b'\r\n' + sub + b'PING\r\n')
        while True:
            line = self._readline()
            if line == 'PONG':
                break
            if line == 'PING':
                self._sock.sendall(b'PONG\r\n')
            elif line.startswith('-ERR'):
                raise ConnectionError('NATS refused the connection: %s'
                                      % line[5:])
        self.connections += 1
        self.connected = True
        self._pings_out = 0
        self._next_ping = time.monotonic() + PING_INTERVAL

    def _step(self):
        """Wait for a notification, server data or the PING time; then send
        what is buffered, answer the server, PING it when due."""
        now = time.monotonic()
        wait = min(1.0, max(0.0, self._next_ping - now))
        if self._unacked:
            oldest = next(iter(self._unacked.values()))[1]
            wait = min(wait, max(0.0, oldest + self.ack_timeout - now))
        if self._buf and now < self._hold_until:
            wait = min(wait, self._hold_until - now)
        pending = getattr(self._sock, 'pending', None)
        if pending is not None and pending():
            wait = 0
        ready = self._select.select([self._sock, self._wake_r], [], [],
                                    wait)[0]
        if self._wake_r in ready:
            self._signalled = False
            try:
                while self._wake_r.recv(4096):
                    pass
            except OSError:
                pass
        self._send_buffered()
        self._read_available()
        now = time.monotonic()
        late = [n for n, (_, sent) in self._unacked.items()
                if now - sent >= self.ack_timeout]
        if late:
            self._resend_unacked(late)
        if now >= self._next_ping:
            if self._pings_out >= MAX_PINGS_OUT:
                raise ConnectionError('%d PINGs unanswered' % self._pings_out)
            self._sock.sendall(b'PING\r\n')
            self._pings_out += 1
            self._next_ping = now + PING_INTERVAL

    def _send_buffered(self):
        acks = bool(self.ack_timeout)
        if acks and time.monotonic() < self._hold_until:
            return
        while True:
            batch, size = [], 0
            with self._lock:
                room = MAX_UNACKED - len(self._unacked) if acks else len(
                    self._buf)
                while self._buf and size < BATCH_BYTES and len(batch) < room:
                    item = self._buf.popleft()
                    batch.append(item)
                    size += len(item[1])
                self._inflight = len(batch)
            if not batch:
                return
            frames = []
            sent = []
            now = time.monotonic()
            for item in batch:
                subject, payload, msg_id = item
                if len(payload) > self.max_payload:
                    self.oversize += 1
                    continue
                if not acks:
                    frames.append(b'PUB %s %d\r\n%s\r\n' % (
                        subject.encode(), len(payload), payload))
                    sent.append(None)
                    continue
                self._next_n += 1
                hdr = b'NATS/1.0\r\n'
                if msg_id:
                    hdr += b'Nats-Msg-Id: %s\r\n' % msg_id.encode()
                hdr += b'\r\n'
                frames.append(b'HPUB %s %s.%d %d %d\r\n%s%s\r\n' % (
                    subject.encode(), self._inbox.encode(), self._next_n,
                    len(hdr), len(hdr) + len(payload), hdr, payload))
                sent.append((self._next_n, item))
            try:
                self._sock.sendall(b''.join(frames))
            except Exception:
                self._requeue(batch)
                raise
            if acks:
                for n, item in sent:
                    self._unacked[n] = (item, now)
            else:
                self.published += len(sent)
            self._inflight = 0

    def _resend_unacked(self, ns):
        """Put the publishes ns (unacknowledged, in the order sent) back in
        front of the buffer, to be sent again."""
        items = [self._unacked.pop(n)[0] for n in ns if n in self._unacked]
        if items:
            self.resent += len(items)
            self._requeue(items)

    def _on_ack(self, subject, headers, payload):
        """A JetStream answer on the inbox: stored, or not (an error, or
        no stream leader right now): then sent again after a backoff."""
        try:
            n = int(subject.rsplit(b'.', 1)[1])
        except (IndexError, ValueError):
            return
        ok = False
        if not headers.startswith(b'NATS/1.0 503'):
            try:
                ack = json.loads(payload)
                ok = 'error' not in ack and 'seq' in ack
            except ValueError:
                ok = False
        if ok:
            if self._unacked.pop(n, None) is not None:
                self.published += 1
                self._nak_backoff = BACKOFF_MIN
            return
        if n in self._unacked:
            self.last_error = 'JetStream did not store a notification: %s' % (
                (headers.split(b'\r\n', 1)[0] + b' ' + payload)[:200]
                .decode('utf-8', 'replace'))
            self._resend_unacked([n])
            self._hold_until = time.monotonic() + self._nak_backoff
            self._nak_backoff = min(self._nak_backoff * 2, BACKOFF_MAX)

    def _requeue(self, batch):
        """Put an unsent batch back in front; the buffer bound still holds
        (the oldest go first)."""
        with self._lock:
            self._buf.extendleft(reversed(batch))
            while len(self._buf) > self.buffer_size:
                self._buf.popleft()
                self.dropped += 1
            self._inflight = 0

    def _read_available(self):
        pending = getattr(self._sock, 'pending', None)
        while ((pending is not None and pending()) or
               self._select.select([self._sock], [], [], 0)[0]):
            data = self._sock.recv(65536)
            if not data:
                raise ConnectionError('connection closed by the server')
            self._rbuf += data
            pending = getattr(self._sock, 'pending', None)
        while b'\r\n' in self._rbuf:
            line, rest = self._rbuf.split(b'\r\n', 1)
            if line.startswith((b'MSG ', b'HMSG ')):
                # MSG subject sid [reply] size / HMSG ... hdr_size size: the
                # body follows the line; wait until all of it is here.
                parts = line.split()
                size = int(parts[-1])
                if len(rest) < size + 2:
                    return
                body, self._rbuf = rest[:size], rest[size + 2:]
                hlen = int(parts[-2]) if line.startswith(b'H') else 0
                self._on_ack(parts[1], body[:hlen], body[hlen:])
                continue
            self._rbuf = rest
            if line == b'PING':
                self._sock.sendall(b'PONG\r\n')
            elif line == b'PONG':
                self._pings_out = 0
            elif line.startswith(b'-ERR'):
                self.errors += 1
                self.last_error = 'server: %s' % line[5:].decode(
                    'utf-8', 'replace')
            elif line.startswith(b'INFO '):
                try:
                    info = json.loads(line[5:])
                    self.max_payload = int(info.get('max_payload') or
                                           self.max_payload)
                except ValueError:
                    pass


def _msg_id(topic, message_id):
    """The Nats-Msg-Id of one notification on one topic (None without a
    message_id): a resend of it is stored once."""
    if not message_id:
        return None
    return _BAD_HEADER_CHARS.sub('_', '%s.%s' % (topic, message_id))[:200]


class NatsDriver(notifier.Driver):
    """oslo.messaging notification driver publishing to NATS (see module doc).

    Counters for tests and operators: ``published``, ``dropped``,
    ``reconnects`` (and ``buffered()``)."""

    def __init__(self, conf, topics, transport):
        super(NatsDriver, self).__init__(conf, topics, transport)
        opts.register_nats_opts(conf)
        g = conf.ecrae_nats
        self.subject_prefix = g.subject_prefix or ''
        self.publisher = NatsPublisher(
            g.url, user=g.user, password=g.password, token=g.token,
            tls_enabled=g.tls_enabled, ca_file=g.ca_file,
            cert_file=g.cert_file, key_file=g.key_file, timeout=g.timeout,
            buffer_size=g.buffer_size, ack_timeout=g.ack_timeout)
        self._next_warning = {'drop': 0.0, 'oversize': 0.0, 'link': 0.0,
                              'unacked': 0.0}
        self._reported_resent = 0
        self._unreported_drops = 0
        self._reported_oversize = 0
        self._seen_errors = 0

    published = property(lambda self: self.publisher.published)
    dropped = property(lambda self: self.publisher.dropped)
    reconnects = property(lambda self: self.publisher.reconnects)
    connections = property(lambda self: self.publisher.connections)

    def buffered(self):
        return self.publisher.buffered()

    def flush(self, timeout=5.0):
        return self.publisher.flush(timeout)

    def close(self, timeout=2.0):
        self.publisher.close(timeout)

    def notify(self, ctxt, message, priority, retry):
        payload = jsonutils.dumps(message).encode('utf-8')
        event_type = message.get('event_type', '')
        message_id = message.get('message_id')
        pushed = 0
        for topic in self.topics or ['notifications']:
            pushed += self.publisher.publish(
                subject_for(self.subject_prefix, topic, priority,
                            event_type), payload,
                _msg_id(topic, message_id))
        self._maybe_warn(pushed)

    def _maybe_warn(self, pushed):
        """Rate-limited warnings, one slot per kind, logged here (in the
        caller's thread) because the sender thread never logs."""
        p = self.publisher
        now = time.monotonic()
        self._unreported_drops += pushed
        if self._unreported_drops and now >= self._next_warning['drop']:
            self._next_warning['drop'] = now + WARNING_INTERVAL
            LOG.warning('NATS notifier: dropped the %d oldest notification(s) '
                        'since the last warning, buffer of %d full (%d '
                        'dropped in all); NATS %s, last error: %s',
                        self._unreported_drops, p.buffer_size, p.dropped,
                        'connected' if p.connected else 'unreachable',
                        p.last_error)
            self._unreported_drops = 0
        oversize = p.oversize - self._reported_oversize
        if oversize and now >= self._next_warning['oversize']:
            self._next_warning['oversize'] = now + WARNING_INTERVAL
            LOG.warning('NATS notifier: %d notification(s) larger than the '
                        'server max_payload were not sent', oversize)
            self._reported_oversize = p.oversize
        if (p.errors != self._seen_errors and not p.connected and
                now >= self._next_warning['link']):
            self._next_warning['link'] = now + WARNING_INTERVAL
            self._seen_errors = p.errors
            LOG.warning('NATS notifier: cannot publish to %s (%s); '
                        'buffering up to %d notifications (%d now)',
                        self.conf.ecrae_nats.url, p.last_error,
                        p.buffer_size, p.buffered())
        resent = p.resent - self._reported_resent
        if resent and now >= self._next_warning['unacked']:
            # A while is normal (a stream electing a leader); for long, the
            # stream is missing (ecrae serve never ran on this NATS?).
            self._next_warning['unacked'] = now + WARNING_INTERVAL
            self._reported_resent = p.resent
            LOG.warning('NATS notifier: %d notification(s) not acknowledged '
                        'by the stream since the last warning, kept and sent '
                        'again (%d buffered); last error: %s', resent,
                        p.buffered(), p.last_error)
