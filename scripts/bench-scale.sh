#!/usr/bin/env bash
# make bench-scale: issue 15 point 4. A generated cloud (HOSTS compute hosts,
# INSTANCES instances; 10,000 and 100,000 by default) replayed through the
# real notification path of `ecrae serve` (its embedded NATS JetStream →
# events → hostview): how long until the view has converged, how long
# `ecrae hosts` takes to answer, a consolidation plan computed and sequenced
# on the live view, and the service's memory. Numbers are reported, not
# asserted; the machine may be shared (run it twice and compare).
#
# BASE=<commit> also runs the same scenario with that commit's binary (built
# from `git archive` of it), first, for a ratio against it in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTS=${HOSTS:-10000}
INSTANCES=${INSTANCES:-100000}
out=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; [ -n "${KEEP:-}" ] && echo "kept $out" || rm -rf "$out"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

go build -o "$out/ecrae" ./cmd/ecrae
go build -o "$out/scalegen" ./scripts/scalegen
"$out/scalegen" --hosts "$HOSTS" --kb "$out/hosts.yaml"
bins=("current:$out/ecrae")
if [ -n "${BASE:-}" ]; then
  mkdir -p "$out/base"
  git archive "$BASE" | tar -x -C "$out/base"
  (cd "$out/base" && go build -o "$out/ecrae-base" ./cmd/ecrae)
  bins=("base($BASE):$out/ecrae-base" "${bins[@]}")
fi

for entry in "${bins[@]}"; do
  label=${entry%%:*}; bin=${entry#*:}
  run="$out/run-${#pids[@]}"; mkdir -p "$run"
  g=$(port); h=$(port); n=$(port)
  "$bin" serve --grpc-addr "127.0.0.1:$g" --http-addr "127.0.0.1:$h" --nats-addr "127.0.0.1:$n" \
    --db "$run/ecrae.db" --log-level warn 2>"$run/serve.log" &
  pid=$!; pids+=("$pid")
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$h/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  cli() { "$bin" "$@" --server "127.0.0.1:$g" --timeout 120s; }
  cli kb import "$out/hosts.yaml" >/dev/null
  echo "== $label: $HOSTS hosts, $INSTANCES instances through NATS JetStream → events → hostview =="
  start=$(date +%s%N)
  "$out/scalegen" --nats "nats://127.0.0.1:$n" --hosts "$HOSTS" --instances "$INSTANCES"
  converged=""
  for _ in $(seq 1200); do
    got=$(cli hosts --json 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d.get("hosts",[])), d.get("instances",0))' || echo "0 0")
    if [ "$got" = "$HOSTS $INSTANCES" ]; then converged=$(ms "$start"); break; fi
    sleep 0.5
  done
  if [ -z "$converged" ]; then echo "view did not converge within 10 min (last: hosts instances = $got)"; continue; fi
  echo "view converged: $HOSTS hosts, $INSTANCES instances, $converged ms after the first notification was published"
  for k in 1 2 3; do
    t=$(date +%s%N); cli hosts >/dev/null; echo "ecrae hosts (table), run $k: $(ms "$t") ms"
  done
  t=$(date +%s%N); cli hosts --json --instances >/dev/null; echo "ecrae hosts --instances --json: $(ms "$t") ms"
  t=$(date +%s%N)
  cli rebalance plan --json >"$run/plan.json" 2>"$run/plan.err" || true
  took=$(ms "$t")
  python3 - "$run/plan.json" "$run/plan.err" "$took" <<'PY'
import json, sys
path, err, took = sys.argv[1], sys.argv[2], sys.argv[3]
try:
    d = json.load(open(path))
except Exception:
    print(f"rebalance plan: failed after {took} ms: {open(err).read().strip()[:300]}")
    sys.exit(0)
p = d.get("plan", d)
lb = p.get("lower_bounds", {}).get("hosts", "?")
print(f"rebalance plan: {took} ms wall (CLI included), {float(p.get('seconds', 0)):.2f} s planning (stopped by {p.get('stopped', '?')}, "
      f"{p.get('algorithm', '?')}); {len(p.get('steps', []))} moves in {p.get('waves', 0)} waves; hosts used "
      f"{p.get('hosts_used_before', '?')} -> {p.get('hosts_used_after', '?')} (lower bound {lb}); status {p.get('status', '?')}")
PY
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status"); hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  heap=$(curl -sf "http://127.0.0.1:$h/metrics" | awk '/^go_memstats_heap_inuse_bytes / {printf "%.0f", $2/1048576}')
  limit=$(curl -sf "http://127.0.0.1:$h/metrics" | awk '/^go_gc_gomemlimit_bytes / {printf "%.0f", $2/1048576}')
  gcs=$(curl -sf "http://127.0.0.1:$h/metrics" | awk '/^go_gc_duration_seconds_count / {print $2}')
  echo "memory: RSS $((rss / 1024)) MiB (peak $((hwm / 1024)) MiB), heap in use ${heap:-?} MiB, soft limit ${limit:-?} MiB, ${gcs:-?} GC cycles since start"
  kill -TERM "$pid"; wait "$pid" || true
  echo
done
