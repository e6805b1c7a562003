#!/usr/bin/env bash
# Same results before and after a change to the simulator (issue 15 point 3):
# builds `ecrae` at BASE (default: where this branch left main) and at the
# working tree, runs every policy on the three shared days with both, in
# each of MODES (default: cloudsim, and cloudsim with --transitions
# realistic), and compares the JSON of every run field by field, the wall
# clock (`seconds`) left out. Prints one line per run: "same", or the fields
# that differ with both values; exits 1 if any differs.
#
#   scripts/sim-compare.sh [BASE]
#
# Environment: DATA (default ../shared/data), POLICIES (every policy),
# MODES (space-separated: cloudsim, cloudsim+trans, strict, strict+trans),
# SEED (1), PY (python3).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
BASE=${1:-$(git merge-base HEAD main)}
POLICIES=${POLICIES:-npa,dvfs,thr-mmt,iqr-mmt,mad-mmt,lr-mmt,lrr-mmt,nova-spread,ecrae}
MODES=${MODES:-cloudsim cloudsim+trans}
SEED=${SEED:-1}
PY=${PY:-python3}
DAYS=(20110303 20110306 20110309)

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
mkdir "$out/base"
git archive "$BASE" | tar -x -C "$out/base"
(cd "$out/base" && go build -o "$out/ecrae-base" ./cmd/ecrae)
go build -o "$out/ecrae-head" ./cmd/ecrae

traces=()
for d in "${DAYS[@]}"; do traces+=(--trace "$DATA/planetlab/$d"); done
echo "== sim-compare: base $(git rev-parse --short "$BASE") vs working tree; days ${DAYS[*]}; policies $POLICIES; modes $MODES"
status=0
for mode in $MODES; do
  args=(--mode "${mode%+trans}")
  [ "$mode" != "${mode%+trans}" ] && args+=(--transitions realistic)
  for v in base head; do
    "$out/ecrae-$v" sim --compare "${traces[@]}" --vm-order "$DATA/cloudsim/vm_order" --policies "$POLICIES" \
      --seed "$SEED" "${args[@]}" --json > "$out/$v-$mode.json"
  done
  "$PY" - "$out/base-$mode.json" "$out/head-$mode.json" "$mode" <<'EOF' || status=1
import json, sys
def runs(f):
    return {(r["day"], r["policy"]): r for r in json.load(open(f))["runs"]}
base, head, mode = runs(sys.argv[1]), runs(sys.argv[2]), sys.argv[3]
bad = False
for k in sorted(base.keys() | head.keys()):
    b, h = base.get(k), head.get(k)
    if b is None or h is None:
        print(f"{mode:15s} {k[0]} {k[1]:12s} only in {'head' if b is None else 'base'}"); bad = True; continue
    diff = [f"{f}: {b.get(f)!r} -> {h.get(f)!r}" for f in sorted(b.keys() | h.keys())
            if f != "seconds" and b.get(f) != h.get(f)]
    print(f"{mode:15s} {k[0]} {k[1]:12s} " + ("same" if not diff else "DIFFERS: " + "; ".join(diff)))
    bad |= bool(diff)
sys.exit(1 if bad else 0)
EOF
done
[ $status = 0 ] && echo "sim-compare: every run the same" || echo "sim-compare: some runs differ"
exit $status
