"""Nova objects → ecrae.v1 protobuf messages. Translation only: unset or None
fields become the proto default; no field is ever lazy-loaded (no DB access).
"""

import hashlib
import json

from google.protobuf.internal import encoder
from google.protobuf.internal import wire_format

from ecrae.v1 import placement_pb2


def _is_set(obj, name):
    """True when a Nova object's field is set (never triggers a lazy load)."""
    if obj is None:
        return False
    check = getattr(obj, 'obj_attr_is_set', None)
    if check is not None:
        try:
            return check(name)
        except Exception:  # not a field of this object version
            return False
    return getattr(obj, name, None) is not None


def _field(obj, name, default=None):
    if not _is_set(obj, name):
        return default
    value = getattr(obj, name, default)
    return default if value is None else value


def _int(value):
    try:
        return int(value) if value is not None else 0
    except (TypeError, ValueError):
        return 0


def _float(value):
    try:
        return float(value) if value is not None else 0.0
    except (TypeError, ValueError):
        return 0.0


def _str(value):
    """An image property value as a string, as Glance would hold it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return ','.join(sorted(str(v) for v in value))
    if isinstance(value, (list, tuple)):
        return ','.join(_str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, default=str)
    prim = getattr(value, 'obj_to_primitive', None)
    if prim is not None:
        try:
            return json.dumps(prim(), sort_keys=True, default=str)
        except Exception:
            pass
    return str(value)


def image_properties(spec_obj):
    """spec_obj.image.properties (an ImageMetaProps) → {name: str}, set
    fields only."""
    image = _field(spec_obj, 'image')
    props = _field(image, 'properties')
    if props is None:
        return {}
    if isinstance(props, dict):
        items = props.items()
    else:
        names = getattr(props, 'fields', None) or {}
        items = ((n, getattr(props, n)) for n in names if _is_set(props, n))
    return {str(k): _str(v) for k, v in items if v is not None}


def scheduler_hints(spec_obj):
    """{name: [str, ...]} → {name: HintValues}. Nova keeps hints as lists of
    strings; a bare value becomes a one-item list."""
    hints = _field(spec_obj, 'scheduler_hints') or {}
    out = {}
    for name, values in hints.items():
        if values is None:
            values = []
        elif isinstance(values, (str, bytes)) or not hasattr(values,
                                                               '__iter__'):
            values = [values]
        out[str(name)] = placement_pb2.HintValues(
            values=[v if isinstance(v, str) else str(v) for v in values])
    return out


def flavor(spec_obj):
    fl = _field(spec_obj, 'flavor')
    if fl is None:
        return placement_pb2.Flavor()
    specs = _field(fl, 'extra_specs') or {}
    return placement_pb2.Flavor(
        name=_field(fl, 'name', ''),
        vcpus=_int(_field(fl, 'vcpus')),
        memory_mb=_int(_field(fl, 'memory_mb')),
        root_gb=_int(_field(fl, 'root_gb')),
        ephemeral_gb=_int(_field(fl, 'ephemeral_gb')),
        swap_mb=_int(_field(fl, 'swap')),
        extra_specs={str(k): _str(v) for k, v in specs.items()
                     if v is not None})


def is_move(spec_obj):
    """True for a move, or a request whose call may hold only the host it
    names: Nova sets ``ignore_hosts`` (the source) for live migration,
    migrate/resize (unless to the same host) and evacuation, and
    ``requested_destination.host`` for a named target. The service then
    judges the rules against the whole cluster, not this call. A
    destination without a host (a cell, aggregates from Nova's request
    filters) is not enough: boots get one too."""
    if _field(spec_obj, 'ignore_hosts'):
        return True
    dest = _field(spec_obj, 'requested_destination')
    return bool(_field(dest, 'host'))


def _group(spec_obj):
    """(policy, hosts of its members) of RequestSpec.instance_group."""
    group = _field(spec_obj, 'instance_group')
    if group is None:
        return '', []
    return (str(_field(group, 'policy', '') or ''),
            [str(h) for h in (_field(group, 'hosts') or ())])


def instance_request(spec_obj):
    """RequestSpec → InstanceRequest. ``tag`` is left empty: the service
    reads flavor extra spec ``ecrae:tag``, then hint ``ecrae_tag``."""
    policy, group_hosts = _group(spec_obj)
    return placement_pb2.InstanceRequest(
        flavor=flavor(spec_obj),
        image_properties=image_properties(spec_obj),
        scheduler_hints=scheduler_hints(spec_obj),
        project_id=_field(spec_obj, 'project_id', ''),
        num_instances=_int(_field(spec_obj, 'num_instances')),
        instance_uuid=str(_field(spec_obj, 'instance_uuid', '')),
        move=is_move(spec_obj),
        group_policy=policy,
        group_hosts=group_hosts)


def _metrics(metrics):
    """HostState.metrics (MonitorMetricList or dict) → {name: float}. Values
    are Nova's own (what MetricsWeigher reads): cpu.*.percent in 0..100."""
    if not metrics:
        return {}
    out = {}
    objs = getattr(metrics, 'objects', None)
    if objs is not None and not isinstance(metrics, dict):
        # MonitorMetricList: the fast path, it is on every host of a pass.
        for m in objs:
            if m.obj_attr_is_set('name') and m.obj_attr_is_set('value'):
                value = m.value
                if value is not None:
                    out[m.name] = float(value)
        return out
    if isinstance(metrics, dict):
        items = metrics.items()
    else:
        items = ((getattr(m, 'name', None), m) for m in metrics)
    for name, m in items:
        if name is None:
            continue
        if isinstance(m, dict):
            value = m.get('value')
        elif hasattr(m, 'obj_attr_is_set') or hasattr(m, 'value'):
            value = _field(m, 'value')
        else:
            value = m
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        out[str(name)] = float(value)
    return out


def _aggregates(aggregates):
    out = []
    for agg in aggregates or ():
        meta = _field(agg, 'metadata') or {}
        out.append(placement_pb2.Aggregate(
            name=str(_field(agg, 'name', '')),
            metadata={str(k): _str(v) for k, v in meta.items()
                      if v is not None}))
    return out


def _cpu_info(value):
    if value is None:
        return ''
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(value)


def host_state(hs):
    """nova.scheduler.host_manager.HostState → HostState."""
    g = getattr
    return placement_pb2.HostState(
        host=g(hs, 'host', None) or '',
        nodename=g(hs, 'nodename', None) or '',
        uuid=str(g(hs, 'uuid', None) or ''),
        free_ram_mb=_int(g(hs, 'free_ram_mb', None)),
        total_usable_ram_mb=_int(g(hs, 'total_usable_ram_mb', None)),
        free_disk_mb=_int(g(hs, 'free_disk_mb', None)),
        total_usable_disk_gb=_int(g(hs, 'total_usable_disk_gb', None)),
        vcpus_total=_int(g(hs, 'vcpus_total', None)),
        vcpus_used=_int(g(hs, 'vcpus_used', None)),
        cpu_allocation_ratio=_float(g(hs, 'cpu_allocation_ratio', None)),
        ram_allocation_ratio=_float(g(hs, 'ram_allocation_ratio', None)),
        disk_allocation_ratio=_float(g(hs, 'disk_allocation_ratio', None)),
        hypervisor_type=g(hs, 'hypervisor_type', None) or '',
        cpu_info=_cpu_info(g(hs, 'cpu_info', None)),
        metrics=_metrics(g(hs, 'metrics', None)),
        aggregates=_aggregates(g(hs, 'aggregates', None)),
        num_instances=_int(g(hs, 'num_instances', None)),
        disk_mb_used=_int(g(hs, 'disk_mb_used', None)))


class StateRefs(object):
    """What the service behind one channel holds of the host states sent to
    it. A host sent in full (with its digest) in a call whose answer said
    `states_held` goes as a reference from then on; when the service answers
    that it does not hold one (it restarted, or evicted it), forget() makes
    every host go in full again."""

    def __init__(self):
        self.token = object()
        # The service reads packed references (its answers say
        # `refs_packed`): all of a call's references then go in one
        # host_refs field, which it reads without a message per host.
        self.packed = False

    def forget(self):
        self.token = object()
        self.packed = False


class EncodedRequest(object):
    """A request in wire form, as the channel sends it, with its instance
    kept as a message for logs and tests."""

    __slots__ = ('instance', 'data', 'references', 'packed', '_sent',
                 '_token')

    def __init__(self, instance, data, references=0, sent=(), token=None,
                 packed=False):
        self.instance = instance
        self.data = data
        self.references = references   # hosts sent as a state_ref
        self.packed = packed            # ...packed in host_refs
        self._sent = sent               # cache entries sent in full
        self._token = token

    def SerializeToString(self):
        return self.data

    def acknowledge(self):
        """The service answered that it holds the states sent in full."""
        for entry in self._sent:
            entry[3] = self._token


_REQUESTS = {'FilterHosts': placement_pb2.FilterHostsRequest,
             'WeighHosts': placement_pb2.WeighHostsRequest}


def report_fail_opens(request, method, unreachable, shim):
    """request with its ShimFailOpens set; a request in wire form gets the
    field appended (protobuf merges a field that comes after the rest)."""
    extra = _REQUESTS[method]()
    extra.shim_fail_opens.unreachable = unreachable
    extra.shim_fail_opens.shim = shim
    if isinstance(request, EncodedRequest):
        request.data += extra.SerializeToString()
    else:
        request.MergeFrom(extra)
    return request


def _tag(message, field):
    number = message.DESCRIPTOR.fields_by_name[field].number
    return encoder.TagBytes(number, wire_format.WIRETYPE_LENGTH_DELIMITED)


_INSTANCE = _tag(placement_pb2.FilterHostsRequest, 'instance')
_HOSTS = _tag(placement_pb2.FilterHostsRequest, 'hosts')
assert (_INSTANCE, _HOSTS) == (
    _tag(placement_pb2.WeighHostsRequest, 'instance'),
    _tag(placement_pb2.WeighHostsRequest, 'hosts'))
# host_refs has a number of its own in each request.
_FILTER_REFS = _tag(placement_pb2.FilterHostsRequest, 'host_refs')
_WEIGH_REFS = _tag(placement_pb2.WeighHostsRequest, 'host_refs')
# In host_refs, a full state's place: digest 0.
_FULL_PLACE = bytes(8)
# Nova needs one flag or one score per host, in host order: compact answers
# decode in microseconds, a thousand messages with names and text do not.
_PASSED_ONLY = placement_pb2.FilterHostsRequest(
    passed_only=True).SerializeToString()
_SCORES_ONLY = placement_pb2.WeighHostsRequest(
    scores_only=True).SerializeToString()

# Each Nova HostState's encoded forms, reused while the host is unchanged: a
# scheduler sends the same hosts on every pass, and translating them is most
# of a pass's cost. Nova moves `updated` on every compute report and every
# consume_from_request; the resources a pass consumes, the metrics object
# and the aggregates (replaced, never edited in place) are checked too. The
# entry rides on the HostState itself (Nova keeps one per compute node for
# the scheduler's lifetime): a plain attribute is the cheapest lookup there
# is, and this one runs for every host of every pass.
#
# An entry is [key, full field (state + state_digest), reference field
# (host, nodename, state_ref), token of the StateRefs that holds the state,
# packed reference (host_refs entry: digest, host, nodename)].
_WIRE = '_ecrae_wire'


def _packed_ref(digest, host, nodename):
    h, n = host.encode('utf-8'), nodename.encode('utf-8')
    return b''.join((digest.to_bytes(8, 'little'),
                     encoder._VarintBytes(len(h)), h,
                     encoder._VarintBytes(len(n)), n))


def _field_bytes(data):
    return _HOSTS + encoder._VarintBytes(len(data)) + data


def _key(hs):
    return (hs.updated, hs.free_ram_mb, hs.free_disk_mb, hs.vcpus_used,
            hs.num_instances, hs.disk_mb_used, hs.metrics,
            tuple(hs.aggregates or ()))


def _entry(hs):
    try:
        key = _key(hs)
        hit = hs.__dict__.get(_WIRE)
    except AttributeError:  # not a nova HostState: no cache, no reference
        return [None, _field_bytes(host_state(hs).SerializeToString()),
                None, None, None]
    if hit is not None and hit[0] == key:
        return hit
    msg = host_state(hs)
    data = msg.SerializeToString()
    # Names included, so equal digests mean equal states; 0 means unset.
    digest = int.from_bytes(
        hashlib.blake2b(data, digest_size=8).digest(), 'little') or 1
    # Appending a field to an encoded message is a valid encoding of both.
    full = data + placement_pb2.HostState(
        state_digest=digest).SerializeToString()
    ref = placement_pb2.HostState(host=msg.host, nodename=msg.nodename,
                                  state_ref=digest).SerializeToString()
    entry = [key, _field_bytes(full), _field_bytes(ref), None,
             _packed_ref(digest, msg.host, msg.nodename)]
    setattr(hs, _WIRE, entry)
    return entry


def _encode(spec_obj, hosts, tail, refs, refs_tag):
    inst = instance_request(spec_obj)
    data = inst.SerializeToString()
    parts = [_INSTANCE, encoder._VarintBytes(len(data)), data]
    token = refs.token if refs is not None else None
    # Packed: references in host_refs, a full state's place there too.
    packed = [] if refs is not None and refs.packed else None
    sent = []
    references = 0
    for h in hosts:
        # _entry's hit, inlined with _key's tuple (a fifth faster than the
        # call): this runs for every host of every pass.
        try:
            entry = h.__dict__.get(_WIRE)
            if entry is None or entry[0] != (
                    h.updated, h.free_ram_mb, h.free_disk_mb, h.vcpus_used,
                    h.num_instances, h.disk_mb_used, h.metrics,
                    tuple(h.aggregates or ())):
                entry = _entry(h)
        except AttributeError:
            entry = _entry(h)
        if token is not None and entry[3] is token:
            if packed is None:
                parts.append(entry[2])
            else:
                packed.append(entry[4])
            references += 1
        else:
            parts.append(entry[1])
            if packed is not None:
                packed.append(_FULL_PLACE)
            if entry[2] is not None:
                sent.append(entry)
    if packed is not None and references:
        refs_data = b''.join(packed)
        parts += [refs_tag, encoder._VarintBytes(len(refs_data)), refs_data]
    else:
        packed = None  # no reference: the plain form, any service reads it
    parts.append(tail)
    return EncodedRequest(inst, b''.join(parts), references, sent, token,
                          packed is not None)


def filter_request(spec_obj, hosts, verdicts=False, refs=None):
    """RequestSpec + HostStates → a FilterHostsRequest in wire form. The
    answer carries only ``passed`` unless ``verdicts`` (which adds each
    rejection's filter and reason) is asked for. With ``refs`` (the
    channel's StateRefs), hosts the service holds go as references."""
    return _encode(spec_obj, hosts, b'' if verdicts else _PASSED_ONLY, refs,
                   _FILTER_REFS)


def weigh_request(spec_obj, hosts, refs=None):
    """RequestSpec + HostStates → a WeighHostsRequest in wire form; the
    answer carries only ``score_values``. ``refs`` as for filter_request."""
    return _encode(spec_obj, hosts, _SCORES_ONLY, refs, _WEIGH_REFS)
