#!/bin/bash
# bench-vs-perftest.sh — infab against perftest on the same rxe pair in the
# same boot of the bed, interleaved: every run visits every point with
# perftest, then infab (and an older infab when given), and the table shows
# medians of RUNS runs (run it inside: `make bench-vs-perftest [OLD=...]`, or
# tests/softroce/vm.sh tests/softroce/bench-vs-perftest.sh target/release/infab [OLD]).
#
# Points: ib_write_bw vs `infab run p2p --op write` at 64 KiB, 1 MiB and
# 16 MiB with 1 and 8 QPs (same duration, perftest's cq-mod 100 and the same
# tx-depth: 128, less where that would put over 256 MiB in flight, see
# depth_for); the 4 KiB
# message rate on 1 QP; ib_write_lat t_typical (its median) vs infab's
# ping-pong P50 (RTT/2, the same clock) at 8 B and 64 KiB. Ratio = infab /
# perftest (bandwidth and rate: higher is better, targets >= 0.95 and
# >= 1.00; latency: lower is better, target <= 1.02). SoftRoCE numbers are
# CPU-bound: compare ratios, never absolute values, and only within one boot.
#
# knobs: INFAB_BENCH_RUNS (3), INFAB_BENCH_SECS (4 per bandwidth point),
#        INFAB_BENCH_LAT_ITERS (2000), INFAB_BENCH_BW_POINTS ("SIZE:QPS ..."),
#        INFAB_BENCH_LAT_POINTS ("SIZE ..."), to rerun some points only.
# The table shows the medians of each tool's runs and their ratio, and the
# median of the per-run ratios (each run's infab over the same run's
# perftest: drift in the bed cancels out).
set -uo pipefail
INFAB=${1:-target/release/infab}
OLD=${2:-}
RUNS=${INFAB_BENCH_RUNS:-3}
SECS=${INFAB_BENCH_SECS:-4}
ITERS=${INFAB_BENCH_LAT_ITERS:-2000}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${INFAB_RESULTS_DIR:-$PWD/target/bench}/vs-perftest
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/perftest.txt
DEV0=${INFAB_DEV0:-rxe0} DEV1=${INFAB_DEV1:-rxe1}
BW_POINTS=${INFAB_BENCH_BW_POINTS:-"65536:1 65536:8 1048576:1 1048576:8 16777216:1 16777216:8 4096:1"}
LAT_POINTS=${INFAB_BENCH_LAT_POINTS:-"8 65536"}

# 128 deep, or less where 128 would put more than 256 MiB in flight (the
# first completion must come well inside the timed window on rxe's
# ~100 MiB/s): 16 deep for 16 MiB on 1 QP, 32 for 1 MiB on 8 QPs
depth_for() { # size qps
	local d=$((268435456 / ($1 * $2)))
	[ $d -gt 128 ] && d=128
	[ $d -lt 2 ] && d=2
	echo $d
}
infab_bw() { # name binary size qps run
	"$2" run p2p -d "$DEV1" --target-device "$DEV0" --op write --sizes "$3" --qps "$4" \
		--trials 1 --duration "$SECS" --tx-depth "$(depth_for "$3" "$4")" --cq-mod 100 --json "$OUT/$1-bw-$3-$4-run$5.json" >/dev/null ||
		echo "$1 bandwidth $3 x $4 failed" >&2
}
infab_lat() { # name binary size run
	"$2" run p2p -d "$DEV1" --target-device "$DEV0" --latency --op write --clock pingpong --sizes "$3" \
		--trials 1 --iters "$ITERS" --json "$OUT/$1-lat-$3-run$4.json" >/dev/null ||
		echo "$1 latency $3 failed" >&2
}

for run in $(seq 1 "$RUNS"); do
	echo "# run $run of $RUNS"
	for point in $BW_POINTS; do
		size=${point%:*} qps=${point#*:}
		INFAB_PERFTEST_SECS=$SECS "$HERE/perftest-smoke.sh" bw "$size" "$qps" "$(depth_for "$size" "$qps")" | sed "s/\$/ run=$run/" >>"$OUT/perftest.txt"
		infab_bw infab "$INFAB" "$size" "$qps" "$run"
		[ -z "$OLD" ] || infab_bw old "$OLD" "$size" "$qps" "$run"
	done
	for size in $LAT_POINTS; do
		"$HERE/perftest-smoke.sh" lat "$size" "$ITERS" | sed "s/\$/ run=$run/" >>"$OUT/perftest.txt"
		infab_lat infab "$INFAB" "$size" "$run"
		[ -z "$OLD" ] || infab_lat old "$OLD" "$size" "$run"
	done
done

python3 - "$OUT" "$RUNS" "$BW_POINTS" "$LAT_POINTS" "${OLD:+old}" <<'PY'
import json, os, statistics, sys
out, runs, bw_points, lat_points = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4].split()
others = ["infab"] + ([sys.argv[5]] if len(sys.argv) > 5 and sys.argv[5] else [])
def kv(line): return dict(x.split("=", 1) for x in line.split() if "=" in x)
pf_bw, pf_rate, pf_lat = {}, {}, {}
for line in open(os.path.join(out, "perftest.txt")):
    d = kv(line)
    if d.get("status") != "ok":
        continue
    run = int(d.get("run", 0))
    if line.startswith("perftest ib_write_bw"):
        key = (int(d["size"]), int(d["qps"]))
        pf_bw.setdefault(key, {})[run] = float(d["bw_mib_s"])
        pf_rate.setdefault(key, {})[run] = float(d["msg_rate_mpps"]) * 1e6
    elif line.startswith("perftest ib_write_lat"):
        pf_lat.setdefault(int(d["size"]), {})[run] = float(d["t_typical_us"])
def infab_values(name, kind, size, qps=None):
    vals = {}
    for r in range(1, runs + 1):
        f = f"{name}-bw-{size}-{qps}-run{r}.json" if kind != "lat" else f"{name}-lat-{size}-run{r}.json"
        try:
            s = json.load(open(os.path.join(out, f)))["results"][0]["summary"]
            if kind == "bw":
                vals[r] = s["gbytes_per_s"]["mean"] * 1e9 / 2**20
            elif kind == "rate":
                vals[r] = s["msgs_per_s"]["mean"]
            else:
                vals[r] = s["latency"][0]["summary"]["p50_ns"] / 1000
        except Exception:
            pass
    return vals
med = lambda v: statistics.median(list(v.values()) if isinstance(v, dict) else v) if v else float("nan")
def paired(ours, theirs):
    ratios = [ours[r] / theirs[r] for r in ours if r in theirs and theirs[r] > 0]
    return statistics.median(ratios) if ratios else float("nan")
def human(size):
    size = int(size)
    return f"{size >> 20}M" if size >= 1 << 20 else f"{size >> 10}K" if size >= 1024 else f"{size}B"
head = f"{'point (median of runs)':<30}{'perftest':>11}" + "".join(f"{n:>11}{'ratio':>7}{'paired':>7}" for n in others) + "  target"
print(head)
rows = []
for point in bw_points:
    size, qps = (int(x) for x in point.split(":"))
    kind = "rate" if size == 4096 else "bw"
    theirs = (pf_rate if kind == "rate" else pf_bw).get((size, qps), {})
    p = med(theirs)
    label = f"write msg rate 4K x{qps} QP (/s)" if kind == "rate" else f"write BW {human(size)} x{qps} QP (MiB/s)"
    line = f"{label:<30}{p:>11.1f}"
    for n in others:
        ours = infab_values(n, kind, size, qps)
        v = med(ours)
        line += f"{v:>11.1f}{v / p if p else float('nan'):>7.2f}{paired(ours, theirs):>7.2f}"
    print(line + ("  >= 1.00" if kind == "rate" else "  >= 0.95"))
for size in lat_points:
    theirs = pf_lat.get(int(size), {})
    p = med(theirs)
    line = f"{'write lat ' + human(size) + ' P50 (us)':<30}{p:>11.2f}"
    for n in others:
        ours = infab_values(n, "lat", size)
        v = med(ours)
        line += f"{v:>11.2f}{v / p if p else float('nan'):>7.2f}{paired(ours, theirs):>7.2f}"
    print(line + "  <= 1.02")
print(f"# {runs} interleaved runs per point; perftest retries a failed point once (see perftest.txt)")
PY
