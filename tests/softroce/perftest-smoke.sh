#!/bin/bash
# perftest-smoke.sh — perftest over the two-device SoftRoCE bed. Run it INSIDE
# the bed, i.e. in the VM or on a host after host-rxe.sh up:
#
#   tests/softroce/vm.sh tests/softroce/perftest-smoke.sh          # smoke test
#   tests/softroce/vm.sh tests/softroce/perftest-smoke.sh bench    # numbers
#
# smoke: ib_write_bw 64 KiB for 3 s and ib_write_lat 2 B x 1000; prints a
#        small table; exits 1 if a test fails, times out, or moves nothing
#        (0 iterations / 0 MiB/s: the classic symptom of a broken bed).
#        A failed test is retried once on a fresh port, and says so:
#        perftest on rxe now and then exits 1 on both sides for no reason
#        of ours (its users report it too), so only a second failure fails.
# bw SIZE QPS [TX_DEPTH] / lat SIZE ITERS: one bench line for one point (what
#        bench-vs-perftest.sh interleaves with infab's runs).
# bench: ib_write_bw at 64 KiB and 1 MiB with 1 and 8 QPs, ib_write_lat 2 B;
#        one "key=value" line per result for scripts, e.g.
#          perftest ib_write_bw size=65536 qps=1 secs=5 iters=26000 bw_mib_s=101.53 ... status=ok attempts=1
#          perftest ib_write_lat size=2 iters=1000 t_typical_us=17.95 t_p99_us=91.2 ... status=ok attempts=1
#        plus "# key=value" context lines (kernel, vCPUs, MTU, ...).
#
# The server runs on $INFAB_DEV0 (rxe0), the client on $INFAB_DEV1 (rxe1), so
# the traffic crosses the veth pair; GID index 1 (RoCEv2, IPv4). perftest's
# own out-of-band TCP exchange goes over 127.0.0.1. perftest's "MB/sec" are
# MiB/s (2^20 bytes). Under TCG expect ~100 MiB/s at 64 KiB and ~18 us typical
# latency: fine for functional checks and relative comparisons only.
#
# knobs: INFAB_PERFTEST_SECS (per bandwidth test; default 3 smoke, 5 bench),
#        INFAB_PERFTEST_GID (default 1), INFAB_PERFTEST_PORT (first TCP port,
#        default 18515; each test uses the next one).
set -uo pipefail

MODE=${1:-smoke}
case $MODE in
smoke) SECS=${INFAB_PERFTEST_SECS:-3} ;;
bench) SECS=${INFAB_PERFTEST_SECS:-5} ;;
bw | lat)
	SECS=${INFAB_PERFTEST_SECS:-5}
	POINT_SIZE=${2:?usage: perftest-smoke.sh $MODE SIZE QPS|ITERS}
	POINT_ARG=${3:?usage: perftest-smoke.sh $MODE SIZE QPS|ITERS}
	POINT_TX_DEPTH=${4:-128}
	;;
-h | --help)
	sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "$0"
	exit 0
	;;
*)
	echo "softroce: unknown mode '$MODE'; usage: perftest-smoke.sh [smoke|bench]" >&2
	exit 2
	;;
esac
SERVER_DEV=${INFAB_DEV0:-rxe0}
CLIENT_DEV=${INFAB_DEV1:-rxe1}
GID=${INFAB_PERFTEST_GID:-1}
PORT=${INFAB_PERFTEST_PORT:-18515}
OOB=127.0.0.1
FAILED=0
RETRIED=0
ATTEMPTS=0
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/perftest-smoke.XXXXXX")
trap 'rm -rf "$LOGS"' EXIT

for tool in ib_write_bw ib_write_lat timeout; do
	command -v "$tool" >/dev/null || {
		echo "softroce: $tool not found; apt-get install perftest coreutils" >&2
		exit 1
	}
done
for dev in "$SERVER_DEV" "$CLIENT_DEV"; do
	[ -e "/sys/class/infiniband/$dev" ] || {
		echo "softroce: RDMA device $dev not found; run this inside tests/softroce/vm.sh or after tests/softroce/host-rxe.sh up" >&2
		exit 1
	}
done

# Waits until something listens on TCP port $1 (perftest's server), by
# reading /proc/net/tcp{,6} (state 0A = LISTEN): no fixed sleep, no ss.
wait_listen() {
	local hex i
	hex=$(printf ':%04X' "$1")
	for ((i = 0; i < 100; i++)); do
		if awk -v p="$hex" '$2 ~ p "$" && $4 == "0A" {f = 1} END {exit !f}' \
			/proc/net/tcp /proc/net/tcp6 2>/dev/null; then
			return 0
		fi
		kill -0 "$2" 2>/dev/null || return 1 # the server died
		sleep 0.1
	done
	return 1
}

# run_pair tool size qps [extra perftest args...] (qps only names the logs)
# Runs server + client and leaves the client's result line (the numbers row
# under the "#bytes #iterations ..." header) in RESULT; returns non-zero and
# prints the logs' tails on failure.
run_pair() {
	local tool=$1 size=$2 qps=$3
	shift 3
	local args=(-x "$GID" -s "$size" -p "$PORT" "$@")
	local slog=$LOGS/$tool-$size-$qps-$PORT.server clog=$LOGS/$tool-$size-$qps-$PORT.client
	local limit=$((SECS + 60)) spid crc src
	RESULT=
	timeout "$limit" "$tool" -d "$SERVER_DEV" "${args[@]}" >"$slog" 2>&1 &
	spid=$!
	if ! wait_listen "$PORT" "$spid"; then
		echo "softroce: $tool server on $SERVER_DEV did not start listening on port $PORT" >&2
		tail -n 5 "$slog" >&2
		kill "$spid" 2>/dev/null
		wait "$spid" 2>/dev/null
		PORT=$((PORT + 1))
		return 1
	fi
	timeout "$limit" "$tool" -d "$CLIENT_DEV" "${args[@]}" "$OOB" >"$clog" 2>&1
	crc=$?
	wait "$spid"
	src=$?
	PORT=$((PORT + 1))
	# the first row of numbers after the header line starting with "#bytes"
	RESULT=$(awk '/^ *#bytes/ {h = 1; next} h && /^ *[0-9]+ +[0-9]+ / {print; exit}' "$clog" | tr -s ' \t' ' ' | sed 's/^ //')
	if [ $crc -ne 0 ] || [ $src -ne 0 ] || [ -z "$RESULT" ]; then
		echo "softroce: $tool size=$size qps=$qps failed (client rc $crc, server rc $src$([ $crc -eq 124 ] && echo ', timed out'))" >&2
		tail -n 4 "$clog" | sed 's/^/  client: /' >&2
		tail -n 4 "$slog" | sed 's/^/  server: /' >&2
		return 1
	fi
	return 0
}

# positive number?
positive() { awk -v x="$1" 'BEGIN {exit !(x + 0 > 0)}'; }

# measure tool size qps field [perftest args...]: run_pair, and accept its
# RESULT only if the iterations (column 2) and column `field` (the main
# number) are positive. A failed attempt is retried once, on the next port
# (run_pair has moved PORT on already): perftest on rxe now and then exits 1
# on both sides while the bed is fine, and a peer tool's hiccup must not fail
# the run. A second failure counts. Sets ATTEMPTS (1 or 2).
measure() {
	local tool=$1 size=$2 qps=$3 field=$4 iters value
	shift 4
	for ATTEMPTS in 1 2; do
		if run_pair "$tool" "$size" "$qps" "$@"; then
			iters=$(awk '{print $2}' <<<"$RESULT")
			value=$(awk -v f="$field" '{print $f}' <<<"$RESULT")
			if positive "$iters" && positive "$value"; then
				[ "$ATTEMPTS" = 1 ] || RETRIED=$((RETRIED + 1))
				return 0
			fi
			echo "softroce: $tool size=$size qps=$qps moved nothing (${iters:-no} iterations, column $field ${value:-missing})" >&2
		fi
		if [ "$ATTEMPTS" = 1 ]; then
			echo "softroce: retrying $tool size=$size qps=$qps once on port $PORT (perftest on rxe fails now and then; only a second failure counts)" >&2
		fi
	done
	echo "softroce: $tool size=$size qps=$qps failed twice; the bed or perftest is broken" >&2
	return 1
}

# " (retried once)" after a result that needed the second attempt.
retry_note() { [ "$ATTEMPTS" = 1 ] || echo " (retried once)"; }

# bw_test size qps -> prints one result; BW columns:
#   #bytes #iterations BW-peak BW-average MsgRate
bw_test() {
	local size=$1 qps=$2 depth=${3:-128} iters peak avg rate ok=1
	if measure ib_write_bw "$size" "$qps" 4 -q "$qps" -D "$SECS" -t "$depth"; then
		read -r _ iters peak avg rate <<<"$RESULT"
	else
		ok=0
	fi
	[ $ok = 1 ] || FAILED=$((FAILED + 1))
	if [ "$MODE" != smoke ]; then
		if [ $ok = 1 ]; then
			echo "perftest ib_write_bw size=$size qps=$qps secs=$SECS iters=$iters bw_mib_s=$avg bw_peak_mib_s=$peak msg_rate_mpps=$rate status=ok attempts=$ATTEMPTS"
		else
			echo "perftest ib_write_bw size=$size qps=$qps secs=$SECS status=fail attempts=$ATTEMPTS"
		fi
	elif [ $ok = 1 ]; then
		printf '%-13s %8s %4s   %s\n' ib_write_bw "$size" "$qps" "BW $avg MiB/s ($iters iterations in ${SECS} s)$(retry_note)"
	else
		printf '%-13s %8s %4s   %s\n' ib_write_bw "$size" "$qps" "FAILED (${RESULT:-no result}; zero iterations means rxe traffic never crossed the veth pair)"
	fi
}

# lat_test size iters -> latency columns:
#   #bytes #iterations t_min t_max t_typical t_avg t_stdev p99 p99.9
lat_test() {
	local size=$1 n=$2 iters tmin tmax ttyp tavg tdev p99 p999 ok=1
	if measure ib_write_lat "$size" 1 5 -n "$n"; then
		read -r _ iters tmin tmax ttyp tavg tdev p99 p999 <<<"$RESULT"
	else
		ok=0
	fi
	[ $ok = 1 ] || FAILED=$((FAILED + 1))
	if [ "$MODE" != smoke ]; then
		if [ $ok = 1 ]; then
			echo "perftest ib_write_lat size=$size iters=$iters t_min_us=$tmin t_typical_us=$ttyp t_avg_us=$tavg t_stdev_us=$tdev t_p99_us=$p99 t_p999_us=$p999 t_max_us=$tmax status=ok attempts=$ATTEMPTS"
		else
			echo "perftest ib_write_lat size=$size iters=$n status=fail attempts=$ATTEMPTS"
		fi
	elif [ $ok = 1 ]; then
		printf '%-13s %8s %4s   %s\n' ib_write_lat "$size" 1 "t_typical $ttyp us, p99 $p99 us, avg $tavg us ($iters iterations)$(retry_note)"
	else
		printf '%-13s %8s %4s   %s\n' ib_write_lat "$size" 1 "FAILED (${RESULT:-no result})"
	fi
}

active_mtu() {
	ibv_devinfo -d "$1" 2>/dev/null | awk '/active_mtu/ {print $2; exit}'
}

T0=$SECONDS
if [ "$MODE" = bw ]; then
	bw_test "$POINT_SIZE" "$POINT_ARG" "$POINT_TX_DEPTH"
elif [ "$MODE" = lat ]; then
	lat_test "$POINT_SIZE" "$POINT_ARG"
elif [ "$MODE" = bench ]; then
	echo "# kernel=$(uname -r) vcpus=$(nproc) cpu=\"$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)\" server=$SERVER_DEV client=$CLIENT_DEV gid=$GID active_mtu=$(active_mtu "$SERVER_DEV") softroce=${INFAB_SOFTROCE:-0}"
	for size in 65536 1048576; do
		for qps in 1 8; do
			bw_test "$size" "$qps"
		done
	done
	lat_test 2 1000
	echo "# failed=$FAILED retried=$RETRIED wall_s=$((SECONDS - T0))"
else
	echo "perftest over $SERVER_DEV (server) <- $CLIENT_DEV (client), GID $GID, active_mtu $(active_mtu "$SERVER_DEV"), kernel $(uname -r), $(nproc) CPUs"
	printf '%-13s %8s %4s   %s\n' test bytes qps result
	bw_test 65536 1
	lat_test 2 1000
	if [ $FAILED -eq 0 ]; then
		echo "perftest smoke: ok ($((SECONDS - T0)) s$([ $RETRIED -eq 0 ] || echo ", $RETRIED test(s) passed on the retry"))"
	else
		echo "perftest smoke: $FAILED test(s) FAILED"
	fi
fi
[ $FAILED -eq 0 ]
