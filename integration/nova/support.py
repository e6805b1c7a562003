"""Process and network helpers for the Nova end-to-end tests.

Everything here that waits on a socket runs on *real* OS threads and sockets
(eventlet.patcher.original): the test process is monkey patched by Nova, and
a helper that lived on the eventlet hub would stall whenever the code under
test blocks the hub (a plain grpcio call does, see
shared/notes/nova-integration.md "Eventlet").
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

from eventlet import patcher

_socket = patcher.original('socket')
_threading = patcher.original('threading')
_time = patcher.original('time')

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, '..', '..'))
ECRAE_BIN = os.environ.get('ECRAE_BIN', os.path.join(REPO, 'bin', 'ecrae'))


def free_port():
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    try:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
    finally:
        s.close()


def free_ports(n):
    """n distinct free ports: every socket stays bound until all are
    chosen (free_port() twice in a row may answer the same port)."""
    socks = []
    try:
        for _ in range(n):
            s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
            socks.append(s)
            s.bind(('127.0.0.1', 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# --------------------------------------------------------------------------
# The real ECRAE service, as a separate process.
# --------------------------------------------------------------------------

class EcraeService(object):
    """`bin/ecrae serve` on random free ports with its embedded NATS."""

    def __init__(self, binary=ECRAE_BIN, extra_args=(), https_ca=None,
                 client_args=()):
        # extra_args: more serve flags (TLS, roles); https_ca: /healthz is
        # then HTTPS, verified with this CA; client_args: flags every
        # `ecrae` client command of the test gets (--tls-*).
        self.binary = binary
        self.extra_args = list(extra_args)
        self.https_ca = https_ca
        self.client_args = list(client_args)
        self.tmpdir = tempfile.mkdtemp(prefix='ecrae-it-')
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.nats_port = free_port()
        self.db = os.path.join(self.tmpdir, 'ecrae.db')
        self.log_path = os.path.join(self.tmpdir, 'ecrae.log')
        self.proc = None

    @property
    def grpc_addr(self):
        return '127.0.0.1:%d' % self.grpc_port

    @property
    def nats_url(self):
        return 'nats://127.0.0.1:%d' % self.nats_port

    def start(self, timeout=20.0):
        cmd = [self.binary, 'serve',
               '--grpc-addr', self.grpc_addr,
               '--http-addr', '127.0.0.1:%d' % self.http_port,
               '--nats', 'embedded',
               '--nats-addr', '127.0.0.1:%d' % self.nats_port,
               '--db', self.db,
               # gRPC's GracefulStop waits for clients to hang up, and the
               # shim keeps its channel open: without this a SIGTERM takes
               # ~5 s whenever Nova's scheduler has called the service.
               '--shutdown-grace', '1s'] + self.extra_args
        self._log = open(self.log_path, 'ab')
        self.proc = subprocess.Popen(cmd, stdout=self._log,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.tmpdir)
        deadline = time.monotonic() + timeout
        handlers = [urllib.request.ProxyHandler({})]
        url = 'http://127.0.0.1:%d/healthz' % self.http_port
        if self.https_ca:
            import ssl
            url = 'https' + url[len('http'):]
            handlers.append(urllib.request.HTTPSHandler(
                context=ssl.create_default_context(cafile=self.https_ca)))
        opener = urllib.request.build_opener(*handlers)
        while True:
            if self.proc.poll() is not None:
                log, code = self.log(), self.proc.returncode
                self.stop()
                raise RuntimeError('ecrae serve exited with %s:\n%s' % (
                    code, log))
            try:
                with opener.open(url, timeout=1) as r:
                    if r.status == 200:
                        return self
            except Exception:
                pass
            if time.monotonic() > deadline:
                log = self.log()
                self.stop()
                raise RuntimeError('ecrae serve not healthy after %ss:\n%s' % (
                    timeout, log))
            time.sleep(0.1)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10.0):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self._log.close()
        # The KB file, the embedded NATS server's store and the log.
        if not os.environ.get('ECRAE_IT_KEEP'):
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def log(self):
        try:
            with open(self.log_path, 'rb') as f:
                return f.read().decode('utf-8', 'replace')[-4000:]
        except OSError:
            return ''

    def cli(self, *args, check=True):
        """Runs `bin/ecrae ARGS...` against this service; returns stdout."""
        p = subprocess.run([self.binary] + list(args), capture_output=True,
                           timeout=30, stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise RuntimeError('ecrae %s failed (%s):\n%s%s' % (
                ' '.join(args), p.returncode, p.stdout.decode(),
                p.stderr.decode()))
        return p.stdout.decode()

    def stub(self):
        """A PlacementService stub of the test's own (not the shim's)."""
        import grpc
        from ecrae.v1 import placement_pb2_grpc
        channel = grpc.insecure_channel(
            self.grpc_addr, options=[('grpc.enable_http_proxy', 0)])
        return placement_pb2_grpc.PlacementServiceStub(channel)

    def import_kb(self, yaml_text):
        path = os.path.join(self.tmpdir, 'kb.yaml')
        with open(path, 'w') as f:
            f.write(yaml_text)
        return self.cli('kb', 'import', path, '--server', self.grpc_addr,
                        '--replace', '--yes', *self.client_args)


# --------------------------------------------------------------------------
# A slow network: the only fake in these tests.
# --------------------------------------------------------------------------

class DelayProxy(object):
    """TCP proxy to a real gRPC upstream that makes every answer `delay`
    seconds late, while the connection itself stays healthy.

    It reads the upstream->client byte stream as HTTP/2 frames (9-byte
    header: length, type, flags, stream id) and holds back the first
    HEADERS or DATA frame of each stream for `delay` seconds; connection
    frames (SETTINGS, PING, WINDOW_UPDATE) before it pass at once, so gRPC
    sees a ready channel and a slow call, not a failed connect."""

    HTTP2_DATA, HTTP2_HEADERS = 0x0, 0x1

    def __init__(self, upstream_port, delay):
        self.upstream = ('127.0.0.1', upstream_port)
        self.delay = delay
        self.connections = 0
        self.delayed_answers = 0
        self._lsock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        self._lsock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        self._lsock.bind(('127.0.0.1', 0))
        self._lsock.listen(16)
        self.port = self._lsock.getsockname()[1]
        self._stop = False
        self._socks = []
        t = _threading.Thread(target=self._accept, daemon=True)
        t.start()

    @property
    def addr(self):
        return '127.0.0.1:%d' % self.port

    def _accept(self):
        while not self._stop:
            try:
                c, _ = self._lsock.accept()
            except OSError:
                return
            self.connections += 1
            try:
                u = _socket.create_connection(self.upstream, timeout=5)
                u.settimeout(None)
            except OSError:
                c.close()
                continue
            self._socks += [c, u]
            _threading.Thread(target=self._pump, args=(c, u),
                              daemon=True).start()
            _threading.Thread(target=self._pump_answers, args=(u, c),
                              daemon=True).start()

    def _pump(self, src, dst):
        try:
            while not self._stop:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._shutdown(src, dst)

    def _pump_answers(self, src, dst):
        buf = b''
        answered = set()
        try:
            while not self._stop:
                data = src.recv(65536)
                if not data:
                    break
                buf += data
                while len(buf) >= 9:
                    length = int.from_bytes(buf[0:3], 'big')
                    if len(buf) < 9 + length:
                        break
                    frame, buf = buf[:9 + length], buf[9 + length:]
                    ftype = frame[3]
                    stream = int.from_bytes(frame[5:9], 'big') & 0x7fffffff
                    if (ftype in (self.HTTP2_DATA, self.HTTP2_HEADERS) and
                            stream and stream not in answered):
                        answered.add(stream)
                        self.delayed_answers += 1
                        _time.sleep(self.delay)
                    dst.sendall(frame)
        except OSError:
            pass
        finally:
            self._shutdown(src, dst)

    @staticmethod
    def _shutdown(*socks):
        for s in socks:
            try:
                s.shutdown(_socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self._stop = True
        try:
            self._lsock.close()
        except OSError:
            pass
        for s in self._socks:
            try:
                s.close()
            except OSError:
                pass


# --------------------------------------------------------------------------
# A tiny NATS subscriber (core protocol over one raw socket).
# --------------------------------------------------------------------------

class NatsSubscriber(object):
    """CONNECT, SUB <subject>, then collects every MSG on a real thread.

    Debian has no Python NATS client and no `nats` CLI; the core protocol is
    text: INFO/CONNECT/SUB/PING/PONG/MSG.
    """

    def __init__(self, url, subject):
        hostport = url.split('://', 1)[-1].split(',')[0]
        host, port = hostport.rsplit(':', 1)
        self.subject = subject
        self.messages = []   # (subject, decoded JSON or raw bytes)
        self._cond = _threading.Condition()
        self._sock = _socket.create_connection((host, int(port)), timeout=5)
        self._buf = b''
        line = self._readline()
        if not line.startswith(b'INFO'):
            raise RuntimeError('not a NATS server: %r' % line)
        self._sock.sendall(
            b'CONNECT {"verbose":false,"pedantic":false,"name":"ecrae-it",'
            b'"lang":"python","version":"0","protocol":0}\r\n' +
            ('SUB %s 1\r\n' % subject).encode() + b'PING\r\n')
        while True:   # the PONG proves the SUB is registered
            line = self._readline()
            if line == b'PONG':
                break
            if line.startswith(b'-ERR'):
                raise RuntimeError('NATS: %r' % line)
        self._sock.settimeout(None)
        self._closed = False
        self._thread = _threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _fill(self):
        data = self._sock.recv(65536)
        if not data:
            raise EOFError('NATS connection closed')
        self._buf += data

    def _readline(self):
        while b'\r\n' not in self._buf:
            self._fill()
        line, self._buf = self._buf.split(b'\r\n', 1)
        return line

    def _readn(self, n):
        while len(self._buf) < n + 2:
            self._fill()
        data, self._buf = self._buf[:n], self._buf[n + 2:]
        return data

    def _run(self):
        try:
            while not self._closed:
                line = self._readline()
                if line.startswith(b'MSG '):
                    parts = line.split()
                    payload = self._readn(int(parts[-1]))
                    try:
                        body = json.loads(payload)
                    except ValueError:
                        body = payload
                    with self._cond:
                        self.messages.append((parts[1].decode(), body))
                        self._cond.notify_all()
                elif line == b'PING':
                    self._sock.sendall(b'PONG\r\n')
        except (OSError, EOFError):
            pass

    def wait_for(self, pred, timeout=10.0):
        """Returns the first (subject, body) satisfying pred(subject, body).
        Polls with the real clock in short green-friendly sleeps."""
        deadline = _time.monotonic() + timeout
        import eventlet   # green sleep: let Nova's services keep running
        while True:
            with self._cond:
                for subj, body in self.messages:
                    if pred(subj, body):
                        return subj, body
            if _time.monotonic() > deadline:
                return None
            eventlet.sleep(0.05)

    def close(self):
        self._closed = True
        try:
            self._sock.shutdown(_socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()


# --------------------------------------------------------------------------
# A clustered ECRAE: several `ecrae serve --cluster` replicas (issue 14).
# --------------------------------------------------------------------------

class ClusterReplica(object):
    """One `bin/ecrae serve --cluster` replica with its embedded, clustered
    NATS node, on its own free ports and data directory. Unlike
    EcraeService, kill() is a SIGKILL that keeps the data directory, so
    that start() brings the same replica back."""

    def __init__(self, name, tmpdir, ports, extra_args=(), env=None):
        self.name = name
        self.dir = os.path.join(tmpdir, name)
        os.makedirs(self.dir)
        (self.grpc_port, self.http_port, self.nats_port,
         self.route_port) = ports
        self.extra_args = list(extra_args)
        self.env = env
        self.proc = None
        self.starts = 0
        self._log = None

    grpc_addr = property(lambda self: '127.0.0.1:%d' % self.grpc_port)
    http_addr = property(lambda self: '127.0.0.1:%d' % self.http_port)
    nats_url = property(lambda self: 'nats://127.0.0.1:%d' % self.nats_port)
    route_url = property(lambda self: 'nats://127.0.0.1:%d' % self.route_port)
    log_path = property(lambda self: os.path.join(
        self.dir, 'serve-%d.log' % self.starts))

    def spawn(self, routes):
        """Starts the process (healthy or not: the first members of a
        cluster wait for the others to elect JetStream's leaders)."""
        self.starts += 1
        cmd = [ECRAE_BIN, 'serve', '--cluster', 'ecrae-it',
               '--node-name', self.name,
               '--nats-cluster-addr', '127.0.0.1:%d' % self.route_port,
               '--nats-routes', ','.join(routes),
               '--nats-addr', '127.0.0.1:%d' % self.nats_port,
               '--grpc-addr', self.grpc_addr,
               '--http-addr', self.http_addr,
               '--db', os.path.join(self.dir, 'ecrae.db'),
               '--shutdown-grace', '1s'] + self.extra_args
        self._log = open(self.log_path, 'ab')
        self.proc = subprocess.Popen(cmd, stdout=self._log,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.dir,
                                     env=self.env)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """kill -9: the replica and its NATS node vanish at once."""
        self.proc.kill()
        self.proc.wait()
        self._log.close()

    def stop(self, timeout=10.0):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None and not self._log.closed:
            self._log.close()

    def _get(self, path, timeout=2.0):
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open('http://%s%s' % (self.http_addr, path),
                         timeout=timeout) as r:
            return r.status, r.read().decode('utf-8', 'replace')

    def healthy(self):
        try:
            return self._get('/healthz')[0] == 200
        except Exception:
            return False

    def status(self):
        """This replica's /cluster document, or None when it does not
        answer."""
        try:
            code, body = self._get('/cluster')
            return json.loads(body) if code == 200 else None
        except Exception:
            return None

    def log(self, tail=4000):
        out = []
        for i in range(1, self.starts + 1):
            try:
                with open(os.path.join(self.dir, 'serve-%d.log' % i),
                          'rb') as f:
                    out.append('--- %s start %d ---\n%s' % (
                        self.name, i, f.read().decode('utf-8', 'replace')))
            except OSError:
                pass
        return '\n'.join(out)[-tail:]

    def cli(self, *args, timeout=30, server=True):
        """`bin/ecrae ARGS... --server <this replica>` (without --server
        when server is false): (rc, out, err)."""
        p = subprocess.run([ECRAE_BIN] + list(args) +
                           (['--server', self.grpc_addr] if server else []),
                           capture_output=True, timeout=timeout,
                           stdin=subprocess.DEVNULL, env=self.env)
        return p.returncode, p.stdout.decode(), p.stderr.decode()


class Cluster(object):
    """n ClusterReplicas that route to each other (names r0, r1, ...)."""

    def __init__(self, n=3, extra_args=(), env=None):
        self.tmpdir = tempfile.mkdtemp(prefix='ecrae-it-cluster-')
        ports = free_ports(4 * n)
        self.replicas = [ClusterReplica('r%d' % i, self.tmpdir,
                                        ports[4 * i:4 * i + 4], extra_args,
                                        env) for i in range(n)]
        self.routes = [r.route_url for r in self.replicas]

    def start(self, timeout=60.0):
        for r in self.replicas:
            r.spawn(self.routes)
        self.wait_until(lambda: all(r.healthy() for r in self.replicas),
                        timeout, 'every replica healthy')
        return self

    def restart(self, replica, timeout=60.0):
        replica.spawn(self.routes)
        self.wait_until(replica.healthy, timeout,
                        '%s healthy after its restart' % replica.name)

    def wait_until(self, pred, timeout, what):
        """Polls pred() (green sleeps: Nova's services keep running);
        fails with every replica's log when it stays false."""
        import eventlet
        deadline = time.monotonic() + timeout
        while True:
            value = pred()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError('timed out after %ss waiting for %s\n%s'
                                     % (timeout, what, self.logs()))
            eventlet.sleep(0.1)

    def statuses(self, replicas=None):
        """Each replica's /cluster, or None if one does not answer."""
        out = [r.status() for r in (replicas or self.replicas)]
        return None if any(s is None for s in out) else out

    def leader(self, replicas=None):
        """The one replica every (answering) replica names as leader, or
        None."""
        sts = self.statuses(replicas)
        if not sts:
            return None
        names = {s['leader'] for s in sts}
        leading = [r for r, s in zip(replicas or self.replicas, sts)
                   if s['is_leader']]
        if len(names) == 1 and len(leading) == 1 and \
                leading[0].name in names:
            return leading[0]
        return None

    def nats_urls(self):
        return ','.join(r.nats_url for r in self.replicas)

    def grpc_addrs(self):
        return [r.grpc_addr for r in self.replicas]

    def http_addrs(self):
        return ','.join(r.http_addr for r in self.replicas)

    def logs(self):
        return '\n'.join(r.log() for r in self.replicas)

    def stop(self):
        for r in self.replicas:
            r.stop()
        if not os.environ.get('ECRAE_IT_KEEP'):
            shutil.rmtree(self.tmpdir, ignore_errors=True)
def request_hosts(request):
    """The hosts of a FilterHostsRequest or WeighHostsRequest in host order,
    as the service reads them: the references the shim packed in host_refs
    (as HostState messages with host, nodename and state_ref) among the full
    states of hosts (placement.proto, FilterHostsRequest.host_refs)."""
    from ecrae.v1 import placement_pb2
    from google.protobuf.internal import decoder
    if not request.host_refs:
        return list(request.hosts)
    data, full, out, at = request.host_refs, list(request.hosts), [], 0
    while at < len(data):
        digest = int.from_bytes(data[at:at + 8], 'little')
        at += 8
        if digest == 0:
            out.append(full.pop(0))
            continue
        names = []
        for _ in range(2):
            size, at = decoder._DecodeVarint(data, at)
            names.append(data[at:at + size].decode('utf-8'))
            at += size
        out.append(placement_pb2.HostState(host=names[0], nodename=names[1],
                                           state_ref=digest))
    return out
