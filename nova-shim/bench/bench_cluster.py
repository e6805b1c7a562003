#!/usr/bin/python3
"""Benchmark: aggregate shim passes per second against the replicas of a
clustered `ecrae serve`, and the service CPU each pass costs per replica.

    /usr/bin/python3 nova-shim/bench/bench_cluster.py \\
        --endpoints A:50051,B:50051,C:50051 --http A:9180,B:9180,C:9180 \\
        [--procs 6] [--seconds 20] [--hosts 100]

--procs scheduler-like processes each run EcraeFilter + EcraeWeigher passes
through Nova's handlers back to back for --seconds, with [ecrae] endpoints
set to all the replicas (each process prefers one, from its pid). The
replicas' CPU comes from their /metrics (process_cpu_seconds_total), read
before and after. Run it against one replica and against three on the same
machine for the ratio; on a small machine both ends share the cores, so the
figures are CPU-bound and say so.
"""

import argparse
import json
import multiprocessing
import os
import re
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'tests'))


def cpu_seconds(http):
    body = urllib.request.urlopen('http://%s/metrics' % http,
                                  timeout=5).read().decode()
    m = re.search(r'^process_cpu_seconds_total ([0-9.e+]+)$', body, re.M)
    return float(m.group(1))


def worker(endpoints, hosts_n, seconds, tag, out):
    import logging
    import shimtest  # noqa: F401  (real HostStates; nova-shim/ on sys.path)
    import nova.conf
    from nova.scheduler import filters as nova_filters
    from nova.scheduler import weights as nova_weights
    from ecrae_nova import scheduler
    conf = nova.conf.CONF
    conf.set_override('endpoints', endpoints, 'ecrae')
    conf.set_override('timeout', 2.0, 'ecrae')
    failed = [0]

    class Count(logging.Handler):
        def emit(self, record):
            failed[0] += 1
    logging.getLogger('ecrae_nova').addHandler(Count(logging.WARNING))
    logging.getLogger('ecrae_nova').propagate = False
    scheduler.FAILURE_WARNING.interval = 0
    hosts = shimtest.host_states(hosts_n)
    spec = shimtest.request_spec(extra_specs={'ecrae:tag': tag},
                                 image_props={'hw_architecture': 'x86_64'})
    fh = nova_filters.HostFilterHandler()
    wh = nova_weights.HostWeightHandler()
    f, w = [scheduler.EcraeFilter()], [scheduler.EcraeWeigher()]
    for _ in range(5):   # warm up: channels open, states held
        wh.get_weighed_objects(w, fh.get_filtered_objects(f, hosts, spec, 0),
                               spec)
    n, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        wh.get_weighed_objects(w, fh.get_filtered_objects(f, hosts, spec, 0),
                               spec)
        n += 1
    out.put((n, failed[0]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--endpoints', required=True)
    ap.add_argument('--http', required=True)
    ap.add_argument('--procs', type=int, default=6)
    ap.add_argument('--seconds', type=float, default=20)
    ap.add_argument('--hosts', type=int, default=100)
    ap.add_argument('--tag', default='web-frontend')
    ap.add_argument('--json', action='store_true')
    args = ap.parse_args()
    eps = [e.strip() for e in args.endpoints.split(',') if e.strip()]
    https = [h.strip() for h in args.http.split(',') if h.strip()]
    before = [cpu_seconds(h) for h in https]
    out = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=worker, args=(
        eps, args.hosts, args.seconds, args.tag, out))
        for _ in range(args.procs)]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    after = [cpu_seconds(h) for h in https]
    passes = sum(n for n, _ in results)
    failed = sum(f for _, f in results)
    cpu = [a - b for a, b in zip(after, before)]
    row = {'replicas': len(eps), 'procs': args.procs, 'hosts': args.hosts,
           'seconds': args.seconds, 'passes': passes,
           'passes_per_s': passes / args.seconds, 'failed_calls': failed,
           'replica_cpu_s': cpu,
           'cpu_ms_per_pass': 1e3 * sum(cpu) / passes if passes else None,
           'cores': os.cpu_count()}
    if args.json:
        print(json.dumps(row, indent=1))
    else:
        print('%d replica(s), %d shim processes, %d hosts, %.0fs on %d '
              'cores: %d passes, %.1f passes/s, %d failed calls; service CPU '
              '%.2f ms per pass (per replica: %s s)' % (
                  row['replicas'], args.procs, args.hosts, args.seconds,
                  os.cpu_count(), passes, row['passes_per_s'], failed,
                  row['cpu_ms_per_pass'] or 0,
                  ', '.join('%.1f' % c for c in cpu)))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
