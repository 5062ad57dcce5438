#!/bin/bash
# bench-alltoall.sh — AllToAll dispatch (and combine) of two infab binaries
# side by side in one boot of the bed, interleaved, medians of RUNS runs
# (run it inside: `make bench-alltoall OLD=path/to/old/infab`, or
# tests/softroce/vm.sh tests/softroce/bench-alltoall.sh OLD NEW).
#
# The configuration is issue 12's: 4 EP ranks on the two rxe devices (2 per
# node), 64 KiB per ordered pair (E=4,k=4,H=256,P=2, B=128), 100 iterations,
# 3 trials per run. Each run of NEW is repeated for every --poll mode, so the
# table also shows what the default's choice is worth. SoftRoCE numbers are
# CPU-bound: compare ratios within one boot, never absolute values.
set -uo pipefail
OLD=${1:?usage: bench-alltoall.sh OLD_INFAB NEW_INFAB}
NEW=${2:-target/release/infab}
RUNS=${INFAB_BENCH_RUNS:-3}
OUT=${INFAB_RESULTS_DIR:-$PWD/target/bench}/alltoall
TOPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/topologies/softroce-2node.toml
mkdir -p "$OUT"
CONFIG=(run alltoall --topology "$TOPO" --moe E=4,k=4,H=256,P=2 --batch 128 --ep 4
	--ranks-per-node 2 --iterations 100 --trials 3 --rendezvous-timeout 30)

one() { # name binary extra-args...
	local name=$1 bin=$2
	shift 2
	local json="$OUT/$name-run$run.json"
	"$bin" "${CONFIG[@]}" --node-rank 1 "$@" >/dev/null 2>"$OUT/$name-run$run.node1.log" &
	local node1=$!
	"$bin" "${CONFIG[@]}" --node-rank 0 --json "$json" "$@" >/dev/null 2>"$OUT/$name-run$run.log" ||
		echo "$name run $run failed (see $OUT/$name-run$run.log)" >&2
	wait $node1
}

for run in $(seq 1 "$RUNS"); do
	one old "$OLD"
	one new-default "$NEW"
	one new-spin "$NEW" --poll spin
	one new-yield "$NEW" --poll yield
	one new-event "$NEW" --poll event
	one old-again "$OLD"
done

python3 - "$OUT" "$RUNS" <<'PY'
import json, os, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
def runs_of(name, key):
    vals = []
    for r in range(1, runs + 1):
        try:
            s = json.load(open(os.path.join(out, f"{name}-run{r}.json")))["alltoall"][0]["summary"]
            v = s.get(key)
            if v is not None:
                vals.append(v["mean"])
        except Exception:
            pass
    return vals
old = runs_of("old", "p50_ns") + runs_of("old-again", "p50_ns")
base = statistics.median(old) if old else float("nan")
print(f"{'binary':<14}{'dispatch P50 µs':>17}{'vs old':>8}{'combine P50 µs':>16}{'layer P50 µs':>14}  runs")
print(f"{'old':<14}{base / 1e3:>17.1f}{1.0:>8.2f}{'-':>16}{'-':>14}  {len(old)}")
for name in ("new-default", "new-spin", "new-yield", "new-event"):
    d = runs_of(name, "p50_ns")
    c = runs_of(name, "combine_p50_ns")
    l = runs_of(name, "layer_p50_ns")
    med = lambda v: statistics.median(v) if v else float("nan")
    print(f"{name:<14}{med(d) / 1e3:>17.1f}{med(d) / base:>8.2f}{med(c) / 1e3:>16.1f}{med(l) / 1e3:>14.1f}  {len(d)}")
print("target (issue 12): new-default dispatch P50 <= 0.50 x old")
PY
