"""The gRPC side of the shim: lazily opened channels cached per process and
endpoint, failover between the replicas of ``[ecrae] endpoints``, and calls
that do not block eventlet's hub."""

import logging
import os
import socket
import sys
import threading
import time
import zlib

import grpc

from ecrae.v1 import placement_pb2
from ecrae_nova import translate

# Reconnect quickly once the service is back (gRPC's default backoff grows to
# 120 s, which would keep the shim failing open long after a restart), and
# never route the scheduler's calls through an HTTP proxy from the env.
CHANNEL_OPTIONS = (
    ('grpc.initial_reconnect_backoff_ms', 100),
    ('grpc.min_reconnect_backoff_ms', 100),
    ('grpc.max_reconnect_backoff_ms', 2000),
    ('grpc.enable_http_proxy', 0),
)


def channel_options(conf):
    """CHANNEL_OPTIONS and the ``[ecrae] max_message_mb`` limit, both ways
    (gRPC's own default, 4 MiB, holds about 3,000 hosts)."""
    limit = conf.ecrae.max_message_mb * 1024 * 1024
    return CHANNEL_OPTIONS + (('grpc.max_receive_message_length', limit),
                              ('grpc.max_send_message_length', limit))


def _serialize(request):
    # Messages and translate.EncodedRequest (already in wire form) alike.
    return request.SerializeToString()


class _Stub(object):
    """PlacementService's calls on one channel. Unlike the generated stub,
    it takes requests that translate encoded already, and keeps what the
    service behind the channel holds of the host states (``refs``)."""

    def __init__(self, channel):
        self.refs = translate.StateRefs()
        for method, response in (('FilterHosts', 'FilterHostsResponse'),
                                 ('WeighHosts', 'WeighHostsResponse')):
            setattr(self, method, channel.unary_unary(
                '/ecrae.v1.PlacementService/' + method,
                request_serializer=_serialize,
                response_deserializer=getattr(placement_pb2,
                                              response).FromString))


_lock = threading.Lock()
_stubs = {}     # (pid, endpoint, tls, limit) -> PlacementServiceStub
_channels = {}  # same keys -> grpc.Channel


def _read(path):
    if not path:
        return None
    with open(path, 'rb') as f:
        return f.read()


def _tls_key(conf):
    g = conf.ecrae
    if not g.tls_enabled:
        return None
    return (g.ca_file, g.cert_file, g.key_file)


def endpoints(conf):
    """``[ecrae] endpoints``, or ``[ecrae] endpoint`` alone when unset."""
    eps = [e.strip() for e in (conf.ecrae.endpoints or []) if e.strip()]
    return eps or [conf.ecrae.endpoint]


def preferred(n):
    """Index of the replica this process prefers among n: stable for the
    process (host name and pid), spread across the schedulers' workers."""
    key = ('%s:%d' % (socket.gethostname(), os.getpid())).encode()
    return zlib.crc32(key) % n


_down = {}  # (pid, endpoint) -> time.monotonic() until which it goes last


def candidates(conf):
    """The endpoints in the order this process tries them: its preferred
    replica and the ones after it, those that failed within the last
    ``down_seconds`` last."""
    eps = endpoints(conf)
    if len(eps) == 1:
        return eps
    start = preferred(len(eps))
    order = eps[start:] + eps[:start]
    now, pid = time.monotonic(), os.getpid()
    return ([e for e in order if _down.get((pid, e), 0) <= now] +
            [e for e in order if _down.get((pid, e), 0) > now])


def get_stub(conf, endpoint=None):
    """The PlacementService stub for this process and endpoint (default:
    ``[ecrae] endpoint``).

    Channels are opened on first use, never at import or when Nova
    instantiates the filter (that happens before nova-scheduler forks its
    workers), and a forked worker opens its own."""
    if endpoint is None:
        endpoint = conf.ecrae.endpoint
    tls = _tls_key(conf)
    key = (os.getpid(), endpoint, tls, conf.ecrae.max_message_mb)
    stub = _stubs.get(key)
    if stub is not None:
        return stub
    with _lock:
        stub = _stubs.get(key)
        if stub is None:
            if tls is None:
                channel = grpc.insecure_channel(
                    endpoint, options=channel_options(conf))
            else:
                creds = grpc.ssl_channel_credentials(
                    root_certificates=_read(tls[0]),
                    private_key=_read(tls[2]),
                    certificate_chain=_read(tls[1]))
                channel = grpc.secure_channel(
                    endpoint, creds, options=channel_options(conf))
            stub = _Stub(channel)
            # Channels inherited from a parent process stay referenced (and
            # unused): closing them after a fork is not safe.
            _channels[key] = channel
            _stubs[key] = stub
    return stub


def close_channels():
    """Close this process's channels (tests, shutdown); the next call
    opens a new one."""
    pid = os.getpid()
    with _lock:
        for key in [k for k in _stubs if k[0] == pid]:
            _stubs.pop(key)
            _channels.pop(key).close()


def eventlet_patched():
    """True when eventlet has monkey-patched this process (nova-scheduler
    does): a blocking gRPC call would then freeze every green thread."""
    patcher = sys.modules.get('eventlet.patcher')
    if patcher is None:
        return False
    try:
        return any(patcher.is_monkey_patched(m)
                   for m in ('thread', 'socket', 'select', 'time'))
    except Exception:
        return False


def run_blocking(fn, *args, **kwargs):
    """fn(*args, **kwargs) in eventlet's native thread pool when eventlet is
    in charge of the process, directly otherwise."""
    if eventlet_patched():
        from eventlet import tpool
        return tpool.execute(fn, *args, **kwargs)
    return fn(*args, **kwargs)


LOG = logging.getLogger(__name__)

# What another replica may answer better: this one is down, stopping (its
# graceful stop refuses new calls), or did not answer in its share of the
# deadline. Any other error would be the same everywhere.
_FAILOVER = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def call(conf, method, build):
    """Call PlacementService.<method>(build(refs)) within the ``[ecrae]
    timeout`` deadline, ``refs`` being the channel's StateRefs, on the
    first replica of candidates() that answers: one that is down or
    stopping is left for the next in what remains of the deadline (each
    but the last gets half of it), and tried last for ``down_seconds``.
    Raises grpc.RpcError (or whatever went wrong) when none answers."""
    deadline = time.monotonic() + conf.ecrae.timeout

    def left():
        return max(0.0, deadline - time.monotonic())
    eps = candidates(conf)
    for i, endpoint in enumerate(eps):
        last = i == len(eps) - 1
        try:
            return _call_one(conf, endpoint, method, build,
                             lambda: left() if last else left() / 2)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, 'code') else None
            if last or code not in _FAILOVER or left() <= 0:
                raise
            _down[(os.getpid(), endpoint)] = (time.monotonic() +
                                              conf.ecrae.down_seconds)
            LOG.info('ECRAE replica %s failed (%s): trying %s', endpoint,
                     code.name, eps[i + 1])


def _call_one(conf, endpoint, method, build, budget):
    """One replica's answer. When the service no longer holds a state the
    request refers to, the request is built again with full states and
    sent once more, within the budget."""
    stub = get_stub(conf, endpoint)
    rpc = getattr(stub, method)
    request = build(stub.refs)
    try:
        resp = run_blocking(rpc, request, timeout=budget())
    except grpc.RpcError as exc:
        if (not request.references or not hasattr(exc, 'code') or
                exc.code() != grpc.StatusCode.FAILED_PRECONDITION):
            raise
        stub.refs.forget()
        request = build(stub.refs)
        resp = run_blocking(rpc, request, timeout=budget())
    if request.packed and not resp.refs_packed:
        # A service older than host_refs (a downgrade behind this channel)
        # answered for the full states alone: the same references again,
        # one message each.
        stub.refs.packed = False
        request = build(stub.refs)
        resp = run_blocking(rpc, request, timeout=budget())
    # Only a service that says it keeps the states gets references: an
    # older one would read each as an empty host.
    if resp.states_held:
        request.acknowledge()
    # ...and packed references only one that says it reads them.
    stub.refs.packed = resp.refs_packed
    return resp
