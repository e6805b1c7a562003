"""Helpers shared by the tests (and by their eventlet subprocess): real Nova
HostStates and RequestSpecs, and a recording stand-in for the Go service."""

import datetime
import json
import os
import socket
import sys
import threading
import time
from concurrent import futures

SHIM_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if SHIM_DIR not in sys.path:
    sys.path.insert(0, SHIM_DIR)

import grpc  # noqa: E402
from google.protobuf.internal import decoder  # noqa: E402

from nova import objects  # noqa: E402
from nova.scheduler import host_manager  # noqa: E402
from oslo_utils.fixture import uuidsentinel  # noqa: E402

from ecrae.v1 import placement_pb2  # noqa: E402
from ecrae.v1 import placement_pb2_grpc  # noqa: E402

objects.register_all()

CPU_INFO = json.dumps({'arch': 'x86_64', 'model': 'Skylake',
                       'vendor': 'Intel', 'topology': {'cores': 4}})


def metrics_json(percent, freq):
    # What nova-compute stores in ComputeNode.metrics (percent fields as
    # fractions there; HostState.metrics converts them back to 0..100).
    ts = '2024-01-01T00:00:00.000000'
    return json.dumps([
        {'name': 'cpu.percent', 'value': percent, 'source': 'libvirt.LibvirtDriver', 'timestamp': ts},
        {'name': 'cpu.frequency', 'value': freq, 'source': 'libvirt.LibvirtDriver', 'timestamp': ts},
    ])


def compute_node(i, vcpus=16, memory_mb=65536, local_gb=1000):
    """A ComputeNode as nova-compute reports it, host<i>/node<i>."""
    return objects.ComputeNode(
        uuid=getattr(uuidsentinel, 'cn%d' % i), id=i,
        host='host%d' % i, hypervisor_hostname='node%d' % i,
        vcpus=vcpus, vcpus_used=i % vcpus,
        memory_mb=memory_mb, free_ram_mb=memory_mb - 1024 * (i % 32),
        local_gb=local_gb, free_disk_gb=local_gb - (i % 100),
        local_gb_used=i % 100, disk_available_least=None,
        updated_at=datetime.datetime(2024, 1, 1, 0, 0, 0),
        host_ip='127.0.0.1', hypervisor_type='QEMU', hypervisor_version=6002000,
        numa_topology=None, supported_hv_specs=[], pci_device_pools=None,
        cpu_info=CPU_INFO, stats={'num_instances': str(i % 7)},
        metrics=metrics_json(0.25 + (i % 50) / 100.0, 2400 + i),
        cpu_allocation_ratio=16.0, ram_allocation_ratio=1.5,
        disk_allocation_ratio=1.0)


def host_states(n, aggregates=None):
    """n real HostStates (HostState(...) + update(compute_node)).
    aggregates: {host index: [objects.Aggregate, ...]}."""
    aggregates = aggregates or {}
    hosts = []
    for i in range(1, n + 1):
        cn = compute_node(i)
        hs = host_manager.HostState(cn.host, cn.hypervisor_hostname,
                                    uuidsentinel.cell1)
        hs.update(compute=cn, aggregates=aggregates.get(i, []))
        hosts.append(hs)
    return hosts


def aggregate(name, **metadata):
    return objects.Aggregate(id=abs(hash(name)) % 10000, name=name,
                             hosts=[], metadata=metadata)


def request_spec(extra_specs=None, hints=None, rebuild=False, image_props=None):
    hints = dict(hints or {})
    if rebuild:
        hints['_nova_check_type'] = ['rebuild']
    if image_props is None:
        image_props = {'hw_architecture': 'aarch64', 'hw_disk_bus': 'virtio'}
    return objects.RequestSpec(
        flavor=objects.Flavor(name='m1.small', vcpus=2, memory_mb=2048,
                              root_gb=20, ephemeral_gb=5, swap=512,
                              extra_specs=dict(extra_specs or {})),
        image=objects.ImageMeta(
            properties=objects.ImageMetaProps(**image_props)),
        scheduler_hints=hints, project_id='project-a', num_instances=1,
        instance_uuid=uuidsentinel.instance)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class FakePlacement(placement_pb2_grpc.PlacementServiceServicer):
    """Stands in for the Go service (`ecrae serve`) so these tests can check
    the shim's translation and its failure paths: it records every request,
    and can answer slowly, with an error, or with the wrong number of results.
    The real service is exercised in test_real_service.py and integration/.

    Default answers: a host passes unless its name is in ``reject``; its score
    is ``scores[host]`` if given, else its free_ram_mb.
    """

    def __init__(self):
        self.calls = []            # (method, request)
        self.reject = set()
        self.scores = {}
        self.delay = 0.0
        self.error = None          # grpc.StatusCode to abort with
        self.error_message = 'fake failure'
        self.drop_last = False     # answer one result short
        self.legacy = False        # ignore passed_only, scores_only and
                                   # host state references, as a service
                                   # older than them does
        self.packed = True         # read host_refs (packed references)
                                   # and say so; False: as a service
                                   # older than them, which ignores them
        self.states = {}           # state_digest -> HostState, as the
                                   # service keeps them (clear() = restart)
        self.cancelled = []        # method names whose caller gave up
        self.done = threading.Event()

    def _prologue(self, method, request, context):
        self.calls.append((method, request))
        self.done.clear()
        if self.delay:
            time.sleep(self.delay)
            if not context.is_active():
                self.cancelled.append(method)
        if self.error is not None:
            self.done.set()
            context.abort(self.error, self.error_message)

    def _hosts(self, request, context):
        """The request's hosts with references resolved, as the service
        does it; an unknown one aborts with FAILED_PRECONDITION. In legacy
        mode, references and digests are unknown fields, ignored."""
        hosts = []
        given = list(request.hosts)
        if self.packed and not self.legacy and request.host_refs:
            given = unpack_refs(request.host_refs, given)
        for i, h in enumerate(given):
            if self.legacy:
                hosts.append(h)
                continue
            if h.state_ref:
                if h.state_ref not in self.states:
                    self.done.set()
                    context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                  'hosts[%d].state_ref: not held here' % i)
                h = self.states[h.state_ref]
            elif h.state_digest:
                self.states[h.state_digest] = h
            hosts.append(h)
        return hosts[:-1] if self.drop_last else hosts

    def FilterHosts(self, request, context):
        self._prologue('FilterHosts', request, context)
        hosts = self._hosts(request, context)
        resp = placement_pb2.FilterHostsResponse(
            tag='web', tag_source='flavor', states_held=not self.legacy,
            refs_packed=self.packed and not self.legacy)
        for h in hosts:
            ok = h.host not in self.reject
            if request.passed_only and not self.legacy:
                resp.passed.append(ok)
            else:
                resp.verdicts.add(host=h.host, nodename=h.nodename, passed=ok,
                                  filter='' if ok else 'fake',
                                  reason='' if ok else 'rejected by the test')
        self.done.set()
        return resp

    def WeighHosts(self, request, context):
        self._prologue('WeighHosts', request, context)
        hosts = self._hosts(request, context)
        resp = placement_pb2.WeighHostsResponse(
            tag='web', tag_source='flavor', states_held=not self.legacy,
            refs_packed=self.packed and not self.legacy)
        for h in hosts:
            score = self.scores.get(h.host, float(h.free_ram_mb))
            if request.scores_only and not self.legacy:
                resp.score_values.append(score)
            else:
                resp.scores.add(host=h.host, nodename=h.nodename, score=score)
        self.done.set()
        return resp

    def methods(self):
        return [m for m, _ in self.calls]


def unpack_refs(data, full):
    """host_refs as the service reads it (placement.proto): a HostState
    reference per entry, the next of ``full`` for a digest of 0."""
    out, full, at = [], list(full), 0
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
    assert not full, 'full states without a place in host_refs'
    return out


def sent_hosts(request):
    """The hosts of a request as sent: references packed in host_refs
    unpacked among the full states."""
    if request.host_refs:
        return unpack_refs(request.host_refs, request.hosts)
    return list(request.hosts)


def start_fake_server(servicer):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    placement_pb2_grpc.add_PlacementServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port('127.0.0.1:0')
    server.start()
    return server, port
