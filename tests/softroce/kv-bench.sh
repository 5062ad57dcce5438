#!/bin/bash
# kv-bench.sh — `infab run kv` layouts against each other and against
# `infab run p2p` moving the same bytes, interleaved in one boot of the bed
# (`make bench-kv`, or tests/softroce/vm.sh tests/softroce/kv-bench.sh
# target/release/infab).
#
# One 1,024-token Llama-3.1-8B request is 128 MiB (32 layers × K/V × 64
# pages of 32 KiB; vllm: 4,096 descriptors). Per round, all on one QP: p2p
# latency mode (one 128 MiB message at a time, the initiator clock), kv
# contiguous (one region), kv vllm push and pull, kv sglang over a
# half-shuffled pool; then kv vllm push on 4 QPs. Prints per round and the
# median over rounds: T_transfer P50, GB/s, post ns per descriptor and the
# notification lag, and the ratios vllm/contiguous and contiguous/p2p.
# On rxe the post call itself runs the requester (packet work happens in
# ibv_post_send), so post time there is not a NIC figure.
# SoftRoCE numbers are CPU-bound: compare ratios within one boot only.
set -uo pipefail
INFAB=${1:-target/release/infab}
ROUNDS=${INFAB_BENCH_ROUNDS:-3}
REQS=${INFAB_BENCH_REQUESTS:-10}
OUT=${INFAB_RESULTS_DIR:-$PWD/target/bench-kv}
mkdir -p "$OUT"
DEV0=${INFAB_DEV0:-rxe0} DEV1=${INFAB_DEV1:-rxe1}
common=(-d "$DEV1" --target-device "$DEV0" --model llama-3.1-8b --prompt 1024 --requests "$REQS"
	--trials 1 --pool-blocks 128)
for round in $(seq 1 "$ROUNDS"); do
	"$INFAB" run p2p -d "$DEV1" --target-device "$DEV0" --latency --op write --clock initiator \
		--sizes 128M --trials 1 --iters "$REQS" --json "$OUT/p2p-$round.json" >/dev/null ||
		echo "p2p round $round failed" >&2
	"$INFAB" run kv "${common[@]}" --layout contiguous --direction push --notify imm \
		--json "$OUT/contiguous-$round.json" >/dev/null || echo "kv contiguous round $round failed" >&2
	"$INFAB" run kv "${common[@]}" --layout vllm --direction push --notify imm \
		--json "$OUT/vllm-push-$round.json" >/dev/null || echo "kv vllm push round $round failed" >&2
	"$INFAB" run kv "${common[@]}" --layout vllm --direction pull --notify send \
		--json "$OUT/vllm-pull-$round.json" >/dev/null || echo "kv vllm pull round $round failed" >&2
	"$INFAB" run kv "${common[@]}" --layout sglang --direction push --notify send --fragmentation 0.5 \
		--json "$OUT/sglang-push-send-$round.json" >/dev/null || echo "kv sglang round $round failed" >&2
	"$INFAB" run kv "${common[@]}" --layout vllm --direction push --notify imm --qps 4 \
		--json "$OUT/vllm-push-4qps-$round.json" >/dev/null || echo "kv vllm push 4 QPs round $round failed" >&2
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, os, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def load(name):
    try:
        return json.load(open(os.path.join(out, name)))
    except Exception:
        return None
rows = {}
for r in range(1, rounds + 1):
    p2p = load(f"p2p-{r}.json")
    if p2p and p2p["results"]:
        lat = p2p["results"][0]["summary"]["latency"][0]["summary"]["p50_ns"]
        rows.setdefault("p2p 128M (one at a time)", []).append((lat, 128 * 2**20 / lat, None, None))
    for name in ("contiguous", "vllm-push", "vllm-pull", "sglang-push-send", "vllm-push-4qps"):
        d = load(f"{name}-{r}.json")
        if not d or not d["kv"] or not d["kv"]["points"]:
            continue
        p = d["kv"]["points"][0]
        s = p["summary"]
        lag = s["notify_lag"]["p50_ns"] if s["notify_lag"] else None
        rows.setdefault(f"kv {name} ({p['descriptors_per_request']} descs)", []).append(
            (s["t_transfer"]["p50_ns"], p["bytes_per_request"] / s["t_transfer"]["p50_ns"],
             s["post_ns_per_descriptor"], lag))
print(f"{'config':<40}{'T_transfer P50 ms':>18}{'GB/s':>8}{'post ns/desc':>14}{'notify lag µs':>15}")
med = {}
for name, vals in rows.items():
    for r, v in enumerate(vals, 1):
        print(f"  round {r} {name:<32}{v[0]/1e6:>18.2f}{v[1]:>8.3f}{(v[2] or 0):>14.0f}{((v[3] or 0)/1e3):>15.1f}")
    m = statistics.median(v[0] for v in vals)
    med[name.split(" (")[0]] = m
    print(f"median  {name:<32}{m/1e6:>18.2f}")
def ratio(a, b):
    return f"{med[a]/med[b]:.3f}" if a in med and b in med else "n/a"
print(f"T_transfer vllm push / contiguous: {ratio('kv vllm-push', 'kv contiguous')} (target <= 1.10)")
print(f"T_transfer contiguous / p2p:      {ratio('kv contiguous', 'p2p 128M')} (target within 1.05)")
PY
