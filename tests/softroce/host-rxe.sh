#!/bin/bash
# host-rxe.sh — build the SoftRoCE bed directly on this host, without a VM.
#
# For a lab host or laptop whose own kernel CAN load rdma_rxe: you get the
# same bed as inside tests/softroce/vm.sh (see bed.sh):
#
#     rxe0 ── veth0 198.18.0.1/24 ══ veth1 198.18.0.2/24 ── rxe1   (MTU 9000)
#
# usage (as root):
#   tests/softroce/host-rxe.sh up       load rdma_rxe, create the bed (idempotent)
#   tests/softroce/host-rxe.sh down     remove exactly what "up" made (idempotent)
#   tests/softroce/host-rxe.sh status   show the bed; exit 0 up, 1 absent, 2 partial
#   tests/softroce/host-rxe.sh env      print INFAB_DEV0=... lines for tests:
#                                       eval "$(tests/softroce/host-rxe.sh env)"
#
# What "up" changes on the host, and "down" undoes: the veth pair (with its
# per-device sysctls), rxe0/rxe1, two "ip rule" entries at pref 10 with their
# tables 47910/47911, the "lookup local" rule moved from pref 0 to pref 100,
# and net.ipv4.conf.all.rp_filter relaxed from strict (1) to loose (2) if it
# was strict. The undo record lives in /run/infab-softroce/bed.state. The
# rdma_rxe module stays loaded.
#
# Knob: INFAB_SOFTROCE_MTU (default 9000).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=bed.sh
. "$HERE/bed.sh"

say() { echo "softroce: $*" >&2; }

usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

need_root() {
	if [ "$(id -u)" != 0 ]; then
		say "host-rxe.sh $1 needs root (it changes links, rules and RDMA devices); run it with sudo"
		exit 1
	fi
	if ! command -v ip >/dev/null || ! command -v rdma >/dev/null; then
		say "ip/rdma not found; apt-get install iproute2"
		exit 1
	fi
}

# rdma_rxe already loaded (or built in)? Otherwise modprobe it. Refuse with
# the one line the user needs when this kernel cannot.
load_rxe() {
	[ -d /sys/module/rdma_rxe ] && return 0
	local why
	if ! command -v modprobe >/dev/null; then
		why="modprobe not found"
	elif why=$(modprobe rdma_rxe 2>&1) && [ -d /sys/module/rdma_rxe ]; then
		return 0
	fi
	why=$(echo "${why:-modprobe rdma_rxe gave no error but no module appeared}" | tail -n 1)
	say "this kernel cannot load rdma_rxe ($why); use tests/softroce/vm.sh instead"
	exit 1
}

cmd_up() {
	need_root up
	local rc=0
	bed_status >/dev/null || rc=$?
	if [ $rc -eq 0 ]; then
		say "bed already up: $BED_DEV0 on $BED_IF0 ($BED_IP0), $BED_DEV1 on $BED_IF1 ($BED_IP1)"
		return 0
	fi
	load_rxe
	if [ $rc -eq 2 ]; then
		# a half-built bed (interrupted up, manual changes): start over
		say "removing a partial bed first"
		bed_down || true
	fi
	local t0=$SECONDS
	if ! bed_up; then
		bed_down >/dev/null 2>&1 || true
		say "bed setup failed (see above); whatever it had made was removed again"
		exit 1
	fi
	say "$BED_DEV0 on $BED_IF0 ($BED_IP0), $BED_DEV1 on $BED_IF1 ($BED_IP1) ready after $((SECONDS - t0)) s;" \
		"for tests: eval \"\$($0 env)\""
}

cmd_down() {
	need_root down
	if ! bed_down; then
		say "could not remove all of the bed (see above); check 'ip rule' and 'rdma link' by hand"
		exit 1
	fi
	say "bed removed"
}

cmd_status() {
	local rc=0
	bed_status || rc=$?
	case $rc in
	0) say "bed is up" ;;
	1) say "bed is down" ;;
	*) say "bed is partially up; run '$0 down' (then 'up' again)" ;;
	esac
	return $rc
}

cmd_env() {
	echo "export INFAB_SOFTROCE=1"
	bed_env | sed 's/^/export /'
}

case ${1:-} in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
env) cmd_env ;;
-h | --help | help) usage ;;
*)
	usage >&2
	exit 2
	;;
esac
