"""EcraeFilter and EcraeWeigher: each Nova filter or weigher pass becomes one
FilterHosts or WeighHosts call to the ECRAE service. No scoring here."""

import threading
import time

import grpc
from oslo_log import log as logging

import nova.conf
from nova.scheduler import filters
from nova.scheduler import utils as scheduler_utils
from nova.scheduler import weights

from ecrae_nova import _ratelimit
from ecrae_nova import client
from ecrae_nova import opts
from ecrae_nova import translate

LOG = logging.getLogger(__name__)
CONF = nova.conf.CONF
opts.register_opts(CONF)

# One warning per minute per process for all failed calls, filter or weigher.
FAILURE_WARNING = _ratelimit.RateLimitedWarning(LOG, interval=60.0)
# A request the service refuses as invalid (an unknown ecrae:tag, mostly)
# is the flavor's or the image's fault, not ECRAE's: one warning a minute
# per reason, naming the flavor and the instance to fix.
INVALID_WARNINGS = _ratelimit.RateLimitedWarnings(LOG, interval=60.0)


# Passes failed open that the service did not see, by (method, reason),
# sent with the method's next call (ShimFailOpens) and forgotten once a
# call carrying them is answered: the service counts them in
# ecrae_placement_fail_open_total.
_UNREPORTED = {}
_UNREPORTED_LOCK = threading.Lock()
_REASONS = ('unreachable', 'shim')
_UINT32_MAX = 2 ** 32 - 1


def _note_fail_open(method, reason):
    with _UNREPORTED_LOCK:
        _UNREPORTED[(method, reason)] = _UNREPORTED.get((method, reason),
                                                        0) + 1


def _unreported(method):
    if not _UNREPORTED:   # every pass but those after an outage
        return (0, 0)
    with _UNREPORTED_LOCK:
        return tuple(min(_UNREPORTED.get((method, r), 0), _UINT32_MAX)
                     for r in _REASONS)


def _reported(method, counts):
    if not any(counts):
        return
    with _UNREPORTED_LOCK:
        for reason, n in zip(_REASONS, counts):
            left = _UNREPORTED.get((method, reason), 0) - n
            if left > 0:
                _UNREPORTED[(method, reason)] = left
            else:
                _UNREPORTED.pop((method, reason), None)


class ServiceError(Exception):
    """The service answered, but not with one result per host."""


def _describe(exc):
    if isinstance(exc, grpc.RpcError) and hasattr(exc, 'code'):
        try:
            what = '%s: %s' % (exc.code().name, exc.details())
            # Past [ecrae] max_message_mb here or --grpc-max-message there.
            if (exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and
                    'larger than max' in (exc.details() or '')):
                what = 'message too large, ' + what
            return what
        except Exception:
            pass
    return '%s: %s' % (type(exc).__name__, exc)


def _invalid(exc):
    """The details of an InvalidArgument from the service, else None."""
    if isinstance(exc, grpc.RpcError) and hasattr(exc, 'code'):
        try:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                return exc.details() or 'invalid argument'
        except Exception:
            pass
    return None


def _call(method, build, n_hosts, outcome, spec_obj=None):
    """One RPC of the request build(refs) makes; None (after a rate-limited
    warning) when translating or calling failed."""
    start = time.monotonic()
    counts = _unreported(method)

    def reporting(refs):
        if any(counts):
            return translate.report_fail_opens(build(refs), method, *counts)
        return build(refs)
    try:
        resp = client.call(CONF, method, reporting)
    except Exception as exc:
        if not isinstance(exc, grpc.RpcError):
            _note_fail_open(method, 'shim')
        elif (hasattr(exc, 'code') and
              exc.code() == grpc.StatusCode.UNAVAILABLE):
            _note_fail_open(method, 'unreachable')
        why = _invalid(exc)
        if why is not None:
            flavor = getattr(getattr(spec_obj, 'flavor', None), 'name', '?')
            instance = getattr(spec_obj, 'instance_uuid', '?')
            hint = ''
            if 'unknown tag' in why:
                hint = (" (set the flavor's ecrae:tag to a tag of the "
                        "knowledge base: ecrae kb show, ecrae kb flavors sync)")
            INVALID_WARNINGS.warning(
                why, 'ECRAE refused %s for flavor %r of instance %s: %s%s; '
                '%s for %d host(s)', method, flavor, instance, why, hint,
                outcome, n_hosts)
            return None
        FAILURE_WARNING.warning(
            'ECRAE %s to %s failed after %.3fs (%s); %s for %d host(s)',
            method, ','.join(client.endpoints(CONF)),
            time.monotonic() - start,
            _describe(exc), outcome, n_hosts)
        return None
    _reported(method, counts)
    return resp


def _check_order(results, hosts, what):
    if len(results) != len(hosts):
        raise ServiceError('%d %s for %d hosts'
                           % (len(results), what, len(hosts)))
    for r, h in zip(results, hosts):
        if r.host and r.host != h.host:
            raise ServiceError('%s for host %r at the place of %r'
                               % (what, r.host, h.host))


def _check_count(values, hosts, what):
    if len(values) != len(hosts):
        raise ServiceError('%d %s for %d hosts'
                           % (len(values), what, len(hosts)))


def _failed(method, exc, n_hosts, outcome):
    _note_fail_open(method, 'shim')
    FAILURE_WARNING.warning(
        'ECRAE %s to %s answered unusably (%s); %s for %d host(s)',
        method, ','.join(client.endpoints(CONF)), exc, outcome, n_hosts)


class EcraeFilter(filters.BaseHostFilter):
    """Passes the hosts the ECRAE service accepts for the request.

    The whole pass is one FilterHosts call. Like any BaseHostFilter with
    RUN_ON_REBUILD = False, a rebuild passes every host (without a call).
    """

    RUN_ON_REBUILD = False

    def filter_all(self, filter_obj_list, spec_obj):
        hosts = list(filter_obj_list)
        if not hosts:
            return hosts
        if (not self.RUN_ON_REBUILD and
                scheduler_utils.request_is_rebuild(spec_obj)):
            return hosts
        return self._filter(hosts, spec_obj)

    def host_passes(self, host_state, spec_obj):
        return bool(self._filter([host_state], spec_obj))

    def _filter(self, hosts, spec_obj):
        fail_open = CONF.ecrae.fail_open
        outcome = ('failing open: every host passes' if fail_open else
                   'failing closed (fail_open = false): every host rejected')
        # The rejections' reasons are only worth their cost when logged.
        verdicts = LOG.isEnabledFor(logging.DEBUG)
        resp = _call('FilterHosts', lambda refs: translate.filter_request(
            spec_obj, hosts, verdicts, refs), len(hosts), outcome, spec_obj)
        if resp is None:
            return hosts if fail_open else []
        # Full verdicts come when asked for, and from a service older than
        # passed_only (which ignores it): both forms are read.
        full = len(resp.verdicts) > 0
        try:
            if full:
                _check_order(resp.verdicts, hosts, 'verdicts')
            else:
                _check_count(resp.passed, hosts, 'flags')
        except ServiceError as exc:
            _failed('FilterHosts', exc, len(hosts), outcome)
            return hosts if fail_open else []
        if not full:
            return [h for h, ok in zip(hosts, resp.passed) if ok]
        passed = []
        for host, verdict in zip(hosts, resp.verdicts):
            if verdict.passed:
                passed.append(host)
            else:
                LOG.debug('EcraeFilter rejected (%s, %s) [%s]: %s (tag %r '
                          'from %s)', host.host, host.nodename,
                          verdict.filter, verdict.reason, resp.tag,
                          resp.tag_source or '-')
        return passed


class EcraeWeigher(weights.BaseHostWeigher):
    """Weighs hosts by the ECRAE service's score (higher is better).

    The whole pass is one WeighHosts call; raw scores are returned in host
    order and Nova normalises them. Any failure weighs every host 0.
    """

    def __init__(self):
        super().__init__()
        self._multiplier = CONF.ecrae.weight_multiplier

    def weight_multiplier(self, host_state):
        # Nova asks once per host after every pass. A host in no aggregate
        # gets the option read at the start of the pass: what
        # get_weight_multiplier returns, without its per-host aggregate scan
        # and option lookup.
        if not host_state.aggregates:
            return self._multiplier
        return scheduler_utils.get_weight_multiplier(
            host_state, 'ecrae_weight_multiplier',
            CONF.ecrae.weight_multiplier)

    def _weigh_object(self, host_state, weight_properties):
        return self._weigh([host_state], weight_properties)[0]

    def weigh_objects(self, weighed_obj_list, weight_properties):
        hosts = [w.obj for w in weighed_obj_list]
        self._multiplier = CONF.ecrae.weight_multiplier
        if not hosts:
            return []
        if scheduler_utils.request_is_rebuild(weight_properties):
            return [0.0] * len(hosts)
        return self._weigh(hosts, weight_properties)

    def _weigh(self, hosts, spec_obj):
        outcome = 'every host weighs 0'
        zeros = [0.0] * len(hosts)
        resp = _call('WeighHosts', lambda refs: translate.weigh_request(
            spec_obj, hosts, refs), len(hosts), outcome, spec_obj)
        if resp is None:
            return zeros
        # A service older than scores_only answers HostScore messages.
        try:
            if resp.scores:
                _check_order(resp.scores, hosts, 'scores')
                return [s.score for s in resp.scores]
            _check_count(resp.score_values, hosts, 'scores')
        except ServiceError as exc:
            _failed('WeighHosts', exc, len(hosts), outcome)
            return zeros
        return list(resp.score_values)
