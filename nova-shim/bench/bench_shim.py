#!/usr/bin/python3
"""Benchmark: one EcraeFilter + EcraeWeigher pass through Nova's own handlers
(two gRPC round trips to a running `ecrae serve`), next to Nova's built-in
RAMWeigher + CPUWeigher + DiskWeigher on the same real HostStates.

    /usr/bin/python3 nova-shim/bench/bench_shim.py [--endpoint HOST:PORT]
        [--hosts 100,1000] [--reps 1000] [--timeout 0.2] [--tag T] [--fake]
        [--json]

--fake answers with an in-process Python stand-in instead of the service
(measures the shim's own translation + gRPC overhead). This is a benchmark,
not a test: it prints p50/p99 per pass and the shim/builtin ratio.
"""

import argparse
import json
import logging
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'tests'))

import shimtest  # noqa: E402  (real HostStates; puts nova-shim/ on sys.path)

import nova.conf  # noqa: E402
from nova.scheduler import filters as nova_filters  # noqa: E402
from nova.scheduler import weights as nova_weights  # noqa: E402
from nova.scheduler.weights import cpu, disk, ram  # noqa: E402

from ecrae_nova import scheduler  # noqa: E402

CONF = nova.conf.CONF


def percentile(samples, p):
    s = sorted(samples)
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def timed(fns, reps, warmup):
    """Times of each of fns, interleaved rep by rep (in a rotating order) so
    that all of them meet the same machine: on a shared box, load comes and
    goes over seconds, and timing one function after the other would put
    that into their ratio."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    out = [[] for _ in fns]
    for rep in range(reps):
        for k in range(len(fns)):
            i = (rep + k) % len(fns)
            t = time.perf_counter()
            fns[i]()
            out[i].append(time.perf_counter() - t)
    return out


class FailureCounter(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.count = 0
        self.last = None

    def emit(self, record):
        self.count += 1
        self.last = record.getMessage()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--endpoint', default='127.0.0.1:50051')
    ap.add_argument('--hosts', default='100,1000')
    ap.add_argument('--reps', type=int, default=1000,
                    help='passes per kind (the p99 is the 10th worst of 1000)')
    ap.add_argument('--warmup', type=int, default=10)
    ap.add_argument('--timeout', type=float, default=0.2,
                    help='[ecrae] timeout per call (default 0.2, as in Nova)')
    ap.add_argument('--fake', action='store_true',
                    help='use the in-process Python stand-in')
    ap.add_argument('--tag', default='web-frontend',
                    help='flavor extra spec ecrae:tag of the request (a tag '
                         'of the default knowledge base)')
    ap.add_argument('--json', action='store_true')
    args = ap.parse_args()

    server = None
    endpoint = args.endpoint
    if args.fake:
        server, port = shimtest.start_fake_server(shimtest.FakePlacement())
        endpoint = '127.0.0.1:%d' % port
    CONF.set_override('endpoint', endpoint, 'ecrae')
    CONF.set_override('timeout', args.timeout, 'ecrae')
    # Every failure, not one a minute, so a failing-open run is noticed.
    scheduler.FAILURE_WARNING.interval = 0
    failures = FailureCounter()
    logging.getLogger('ecrae_nova').addHandler(failures)
    logging.getLogger('ecrae_nova').propagate = False

    fh = nova_filters.HostFilterHandler()
    wh = nova_weights.HostWeightHandler()
    ecrae_filters = [scheduler.EcraeFilter()]
    ecrae_weighers = [scheduler.EcraeWeigher()]
    builtin = [ram.RAMWeigher(), cpu.CPUWeigher(), disk.DiskWeigher()]

    class ConstantWeigher(nova_weights.BaseHostWeigher):
        """Weighs nothing: what Nova's handler costs on its own."""

        def _weigh_object(self, host_state, weight_properties):
            return 0.0
    floor = [ConstantWeigher()]
    spec = shimtest.request_spec(extra_specs={'ecrae:tag': args.tag},
                                 image_props={'hw_architecture': 'x86_64'})

    rows = []
    for n in [int(x) for x in args.hosts.split(',') if x]:
        hosts = shimtest.host_states(n)

        def shim_pass():
            passed = fh.get_filtered_objects(ecrae_filters, hosts, spec, 0)
            wh.get_weighed_objects(ecrae_weighers, passed, spec)

        def builtin_pass():
            wh.get_weighed_objects(builtin, hosts, spec)

        def floor_pass():
            wh.get_weighed_objects(floor, hosts, spec)

        before = failures.count
        shim, base, handler = timed([shim_pass, builtin_pass, floor_pass],
                                    args.reps, args.warmup)
        failed = failures.count - before
        rows.append({
            'hosts': n, 'reps': args.reps,
            'shim_p50_ms': percentile(shim, 50) * 1e3,
            'shim_p99_ms': percentile(shim, 99) * 1e3,
            'builtin_p50_ms': percentile(base, 50) * 1e3,
            'builtin_p99_ms': percentile(base, 99) * 1e3,
            'handler_p50_ms': percentile(handler, 50) * 1e3,
            'handler_p99_ms': percentile(handler, 99) * 1e3,
            'shim_mean_ms': statistics.mean(shim) * 1e3,
            'failed_calls': failed,
        })
        r = rows[-1]
        r['ratio_p50'] = r['shim_p50_ms'] / r['builtin_p50_ms']
        r['ratio_p99'] = r['shim_p99_ms'] / r['builtin_p99_ms']

    if server is not None:
        server.stop(0)
    if args.json:
        print(json.dumps({'endpoint': 'fake' if args.fake else endpoint,
                          'results': rows}, indent=1))
    else:
        print('endpoint: %s   (shim = EcraeFilter + EcraeWeigher via Nova '
              'handlers; builtin = RAM+CPU+Disk weighers; handler = Nova\'s '
              'weigher handler with one constant weigher, its own floor)'
              % ('in-process Python fake' if args.fake else endpoint))
        print('%6s  %-9s %10s %10s' % ('hosts', 'pass', 'p50 ms', 'p99 ms'))
        for r in rows:
            print('%6d  %-9s %10.3f %10.3f' % (r['hosts'], 'shim',
                                               r['shim_p50_ms'],
                                               r['shim_p99_ms']))
            print('%6d  %-9s %10.3f %10.3f' % (r['hosts'], 'builtin',
                                               r['builtin_p50_ms'],
                                               r['builtin_p99_ms']))
            print('%6d  %-9s %10.3f %10.3f' % (r['hosts'], 'handler',
                                               r['handler_p50_ms'],
                                               r['handler_p99_ms']))
            print('%6d  %-9s %9.1fx %9.1fx' % (r['hosts'], 'ratio',
                                               r['ratio_p50'],
                                               r['ratio_p99']))
    bad = [r for r in rows if r['failed_calls']]
    if bad:
        print('WARNING: %d call(s) failed (last: %s): those passes failed '
              'open and their timings do not measure the service.'
              % (sum(r['failed_calls'] for r in bad), failures.last),
              file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
