#!/bin/bash
# bench-vs-perftest.sh — infab against perftest on the same rxe pair in the
# same boot of the bed (run it inside: `make bench-vs-perftest`, or
# tests/softroce/vm.sh tests/softroce/bench-vs-perftest.sh target/release/infab).
#
# Bandwidth: ib_write_bw vs `infab run p2p --op write` at 64 KiB and 1 MiB with
# 1 and 8 QPs (same duration, tx-depth 128 both). Latency: ib_write_lat
# t_typical (its median) vs infab's ping-pong P50 (RTT/2, the same clock),
# 2 B and 64 KiB. Prints MiB/s and µs side by side and the ratio infab/perftest
# (bandwidth: higher is better, target >= 1.00; latency: lower is better,
# target <= 1.02). SoftRoCE numbers are CPU-bound: compare ratios, never
# absolute values, and only within one boot.
set -uo pipefail
INFAB=${1:-target/release/infab}
SECS=${INFAB_BENCH_SECS:-5}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${INFAB_RESULTS_DIR:-$PWD/target/bench}
mkdir -p "$OUT"
DEV0=${INFAB_DEV0:-rxe0} DEV1=${INFAB_DEV1:-rxe1}

echo "# perftest (server $DEV0, client $DEV1), ${SECS} s per bandwidth test"
INFAB_PERFTEST_SECS=$SECS "$HERE/perftest-smoke.sh" bench | tee "$OUT/perftest.txt"

echo "# infab (target $DEV0, initiator $DEV1)"
for size in 64K 1M; do
	for qps in 1 8; do
		"$INFAB" run p2p -d "$DEV1" --target-device "$DEV0" --op write --sizes $size --qps $qps \
			--trials 1 --duration "$SECS" --tx-depth 128 --json "$OUT/infab-bw-$size-$qps.json" >/dev/null ||
			echo "infab bandwidth $size x $qps failed" >&2
	done
done
for size in 2 64K; do
	"$INFAB" run p2p -d "$DEV1" --target-device "$DEV0" --latency --op write --clock pingpong --sizes $size \
		--trials 1 --iters 2000 --json "$OUT/infab-lat-$size.json" >/dev/null || echo "infab latency $size failed" >&2
done
# perftest's ib_write_lat runs at 2 B in perftest-smoke bench; add 64 KiB here
ib_write_lat -d "$DEV0" -x 1 -s 65536 -n 2000 -p 18611 >/dev/null 2>&1 &
sleep 0.5
lat64=$(timeout 120 ib_write_lat -d "$DEV1" -x 1 -s 65536 -n 2000 -p 18611 127.0.0.1 2>/dev/null |
	awk '$1 == 65536 && NF >= 9 {print $5}')
wait
echo "perftest ib_write_lat size=65536 t_typical_us=${lat64:-nan}" >>"$OUT/perftest.txt"

python3 - "$OUT" <<'PY'
import json, re, sys, os
out = sys.argv[1]
pf = open(os.path.join(out, "perftest.txt")).read()
def kv(line): return dict(x.split("=", 1) for x in line.split() if "=" in x)
bw = {}
lat = {}
for line in pf.splitlines():
    if line.startswith("perftest ib_write_bw"):
        d = kv(line); bw[(int(d["size"]), int(d["qps"]))] = float(d.get("bw_mib_s", "nan"))
    elif line.startswith("perftest ib_write_lat"):
        d = kv(line); lat[int(d["size"])] = float(d.get("t_typical_us", "nan"))
size_of = {"64K": 65536, "1M": 1 << 20, "2": 2}
print(f"{'test':<28}{'perftest':>12}{'infab':>12}{'ratio':>8}  target")
for size in ("64K", "1M"):
    for qps in (1, 8):
        try:
            r = json.load(open(os.path.join(out, f"infab-bw-{size}-{qps}.json")))
            mib = r["results"][0]["summary"]["gbytes_per_s"]["mean"] * 1e9 / 2**20
        except Exception:
            mib = float("nan")
        p = bw.get((size_of[size], qps), float("nan"))
        print(f"{'write BW ' + size + ' x' + str(qps) + ' QP (MiB/s)':<28}{p:>12.1f}{mib:>12.1f}{mib / p if p else float('nan'):>8.2f}  >= 1.00")
for size in ("2", "64K"):
    try:
        r = json.load(open(os.path.join(out, f"infab-lat-{size}.json")))
        p50 = r["results"][0]["summary"]["latency"][0]["summary"]["p50_ns"] / 1000
    except Exception:
        p50 = float("nan")
    p = lat.get(size_of[size], float("nan"))
    print(f"{'write lat ' + size + ' P50 (us)':<28}{p:>12.2f}{p50:>12.2f}{p50 / p if p else float('nan'):>8.2f}  <= 1.02")
PY
