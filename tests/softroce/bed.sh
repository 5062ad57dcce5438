# shellcheck shell=bash
# bed.sh — the two-device SoftRoCE test bed, as a library.
#
# Sourced by guest-setup.sh (inside the throw-away VM) and by host-rxe.sh (on a
# host whose own kernel can load rdma_rxe), so the bed is defined exactly once.
# Sourcing it changes nothing; it only defines BED_* constants and bed_*
# functions. They need bash, iproute2 (ip, rdma) and root.
#
# The bed (everything in the initial network namespace):
#
#     rxe0 ── veth0 198.18.0.1/24 ══ veth1 198.18.0.2/24 ── rxe1     MTU 9000
#
#   ip rule pref 10   to 198.18.0.2 oif veth0 lookup 47910  (-> dev veth0)
#   ip rule pref 10   to 198.18.0.1 oif veth1 lookup 47911  (-> dev veth1)
#   ip rule pref 100  lookup local                          (moved from pref 0)
#
# 198.18.0.0/15 is the RFC 2544 benchmarking range, so it never collides with
# a real network. Tables 47910/47911 are named after RoCEv2's UDP port 4791.
#
# Why the rules: both addresses are local to one kernel, so by default a
# packet from 198.18.0.2 to 198.18.0.1 is routed through "lo". rxe does not
# listen on lo, drops it, and perftest silently reports 0 iterations. rxe looks
# its routes up with oif = its own netdev, so "to <peer> oif vethX" rules that
# sit before the local table send the traffic over the veth wire instead. The
# rules name only the PEER address: a device talking to its own address must
# keep the local route, or ARP answers it with the peer's MAC and rxe's
# same-device loopback (chosen by "dmac == my MAC") breaks.
#
# Why both veth ends stay in one namespace: rdma_rxe (6.1) opens its UDP 4791
# socket in the initial namespace only; an rxe on a veth moved elsewhere never
# receives anything.

BED_IF0=veth0
BED_IF1=veth1
BED_DEV0=rxe0
BED_DEV1=rxe1
BED_IP0=198.18.0.1
BED_IP1=198.18.0.2
BED_PREFIX_LEN=24
# MTU 9000 gives RoCE active_mtu 4096; veth's default 1500 gives 1024 and about
# half the throughput.
BED_MTU=${INFAB_SOFTROCE_MTU:-9000}
BED_TABLE0=47910
BED_TABLE1=47911
BED_PEER_PREF=10
BED_LOCAL_PREF=100
# seconds to wait for the IPv4 GIDs (the kernel fills the GID table async)
BED_GID_WAIT=${BED_GID_WAIT:-10}
# What bed_up changed outside its own devices (local rule, rp_filter), so that
# bed_down can put it back. On tmpfs: a reboot resets both anyway.
BED_STATE=${BED_STATE:-/run/infab-softroce/bed.state}

bed_say() { echo "softroce: $*" >&2; }

# The GID sysfs shows for an IPv4 address (IPv4-mapped IPv6, RoCEv2).
bed_v4_gid() {
	local a b c d
	IFS=. read -r a b c d <<<"$1"
	printf '0000:0000:0000:0000:0000:ffff:%02x%02x:%02x%02x' "$a" "$b" "$c" "$d"
}

# Prints the environment a test needs to find the bed.
bed_env() {
	printf 'INFAB_DEV0=%s\nINFAB_DEV1=%s\nINFAB_IP0=%s\nINFAB_IP1=%s\n' \
		"$BED_DEV0" "$BED_DEV1" "$BED_IP0" "$BED_IP1"
}

bed_export_env() {
	export INFAB_DEV0=$BED_DEV0 INFAB_DEV1=$BED_DEV1 INFAB_IP0=$BED_IP0 INFAB_IP1=$BED_IP1
}

# --- small probes -----------------------------------------------------------

bed_link_exists() { [ -e "/sys/class/net/$1" ]; }
bed_rxe_exists() { [ -e "/sys/class/infiniband/$1" ]; }

# netdev an RDMA device is bound to (first GID entry's netdev), or empty
bed_rxe_netdev() {
	cat "/sys/class/infiniband/$1/ports/1/gid_attrs/ndevs/0" 2>/dev/null || true
}

bed_gid1_ok() { # rxe-device ip
	local want got
	want=$(bed_v4_gid "$2")
	got=$(cat "/sys/class/infiniband/$1/ports/1/gids/1" 2>/dev/null) || return 1
	[ "$got" = "$want" ]
}

bed_has_addr() { # netdev ip
	ip -4 -o addr show dev "$1" 2>/dev/null | grep -F " $2/" >/dev/null
}

bed_peer_rule_exists() { # peer-ip oif table
	ip -4 rule show pref "$BED_PEER_PREF" 2>/dev/null |
		grep -E "to ${1//./\\.} oif $2( \\[detached\\])? lookup $3( |$)" >/dev/null
}

bed_local_rule_at() { # pref -> true if "lookup local" sits at that pref
	ip -4 rule show pref "$1" 2>/dev/null | grep -E 'lookup local( |$)' >/dev/null
}

bed_sysctl() { # path-under-/proc/sys/net [value]
	local f=/proc/sys/net/$1
	if [ $# -ge 2 ]; then
		echo "$2" >"$f"
	else
		cat "$f"
	fi
}

bed_state_add() {
	mkdir -p "$(dirname "$BED_STATE")" && echo "$1" >>"$BED_STATE"
}

bed_state_has() {
	[ -f "$BED_STATE" ] && grep -Fx "$1" "$BED_STATE" >/dev/null
}

bed_state_get() { # key -> value of the first "key=value" line
	[ -f "$BED_STATE" ] && sed -n "s/^$1=//p" "$BED_STATE" | head -n 1
}

# --- up ----------------------------------------------------------------------

# Creates the bed. Returns 0 when rxe0/rxe1 are usable, 1 with one
# "softroce: ..." line otherwise. Assumes rdma_rxe is loaded (or auto-loadable)
# and nothing of the bed exists yet: callers run bed_down first if they want
# to start over.
bed_up() {
	local d
	for d in "$BED_IF0" "$BED_IF1"; do
		if bed_link_exists "$d"; then
			bed_say "network device $d already exists; remove it (tests/softroce/host-rxe.sh down) and retry"
			return 1
		fi
	done
	for d in "$BED_DEV0" "$BED_DEV1"; do
		if bed_rxe_exists "$d"; then
			bed_say "RDMA device $d already exists; remove it (rdma link del $d) and retry"
			return 1
		fi
	done
	if ! command -v ip >/dev/null || ! command -v rdma >/dev/null; then
		bed_say "ip/rdma not found; install iproute2"
		return 1
	fi
	rm -f "$BED_STATE"

	# ip -batch / rdma -b: under the emulated CPU every exec from the 9p root
	# costs ~0.1 s, so batch the commands.
	if ! ip -batch - <<-EOF; then
		link set lo up
		link add $BED_IF0 mtu $BED_MTU type veth peer name $BED_IF1 mtu $BED_MTU
	EOF
		bed_say "cannot create the veth pair $BED_IF0/$BED_IF1 with MTU $BED_MTU (see the ip error above)"
		return 1
	fi
	bed_state_add created_veth

	# Per-device knobs, set while the links are still down: no IPv6 on the
	# veths (no DAD delay; GID 0, the MAC-derived fe80::, is still there),
	# accept packets whose source is one of our own addresses (accept_local is
	# OR-ed with "all", so per device is enough) and no reverse-path filter.
	for d in "$BED_IF0" "$BED_IF1"; do
		if [ -e "/proc/sys/net/ipv6/conf/$d/disable_ipv6" ]; then
			bed_sysctl "ipv6/conf/$d/disable_ipv6" 1
		fi
		if ! bed_sysctl "ipv4/conf/$d/accept_local" 1 || ! bed_sysctl "ipv4/conf/$d/rp_filter" 0; then
			bed_say "cannot set accept_local/rp_filter on $d"
			return 1
		fi
	done
	# rp_filter takes the MAX of "all" and the device. Strict mode (1) drops
	# our packets (their source is local, reached via lo); loose mode (2, the
	# systemd default) passes them thanks to the per-peer rules. So only a
	# strict "all" is relaxed, to loose, and bed_down restores it.
	local rpf
	rpf=$(bed_sysctl ipv4/conf/all/rp_filter)
	if [ "$rpf" = 1 ]; then
		bed_sysctl ipv4/conf/all/rp_filter 2
		bed_state_add "rp_filter_all=1"
	fi

	if ! ip -batch - <<-EOF; then
		addr add $BED_IP0/$BED_PREFIX_LEN dev $BED_IF0
		addr add $BED_IP1/$BED_PREFIX_LEN dev $BED_IF1
		link set $BED_IF0 up
		link set $BED_IF1 up
		route add $BED_IP1 dev $BED_IF0 src $BED_IP0 table $BED_TABLE0
		route add $BED_IP0 dev $BED_IF1 src $BED_IP1 table $BED_TABLE1
		rule add pref $BED_PEER_PREF to $BED_IP1 oif $BED_IF0 lookup $BED_TABLE0
		rule add pref $BED_PEER_PREF to $BED_IP0 oif $BED_IF1 lookup $BED_TABLE1
	EOF
		bed_say "cannot configure addresses/routes/rules on $BED_IF0/$BED_IF1"
		return 1
	fi
	# Move the local table behind our rules (pitfall 1, see the header).
	if bed_local_rule_at 0; then
		if ! ip -batch - <<-EOF; then
			rule add pref $BED_LOCAL_PREF lookup local
			rule del pref 0 lookup local
		EOF
			bed_say "cannot move the 'lookup local' rule from pref 0 to $BED_LOCAL_PREF"
			return 1
		fi
		bed_state_add moved_local_rule
	elif ! ip -4 rule show | awk -F: -v p="$BED_PEER_PREF" '$1 > p && /lookup local/ {f=1} END {exit !f}'; then
		bed_say "no 'lookup local' rule found after pref $BED_PEER_PREF; the policy routing is unusual, fix it by hand"
		return 1
	fi

	if ! rdma -b - <<-EOF; then
		link add $BED_DEV0 type rxe netdev $BED_IF0
		link add $BED_DEV1 type rxe netdev $BED_IF1
	EOF
		bed_say "rdma link add $BED_DEV0/$BED_DEV1 failed (is rdma_rxe loaded? see dmesg)"
		return 1
	fi

	# The IPv4 GIDs appear asynchronously (roce_gid_mgmt work queue).
	local tries=$((BED_GID_WAIT * 10))
	while ! { bed_gid1_ok "$BED_DEV0" "$BED_IP0" && bed_gid1_ok "$BED_DEV1" "$BED_IP1"; }; do
		tries=$((tries - 1))
		if [ "$tries" -le 0 ]; then
			bed_say "GID index 1 of $BED_DEV0/$BED_DEV1 is not the IPv4 address after ${BED_GID_WAIT}s (got $(cat "/sys/class/infiniband/$BED_DEV0/ports/1/gids/1" 2>/dev/null))"
			return 1
		fi
		sleep 0.1
	done
	return 0
}

# --- down --------------------------------------------------------------------

# Removes what bed_up made: rxe0/rxe1 (only when bound to our veths), the veth
# pair (only when it carries our addresses), our rules and tables, and puts
# back the local rule and rp_filter as recorded in $BED_STATE. Idempotent;
# returns 0 unless something that is ours could not be removed.
bed_down() {
	local rc=0 pair dev ifc nd
	for pair in "$BED_DEV0:$BED_IF0" "$BED_DEV1:$BED_IF1"; do
		dev=${pair%%:*} ifc=${pair#*:}
		bed_rxe_exists "$dev" || continue
		nd=$(bed_rxe_netdev "$dev")
		if [ -n "$nd" ] && [ "$nd" != "$ifc" ]; then
			bed_say "leaving $dev alone: it is bound to $nd, not $ifc"
			continue
		fi
		rdma link del "$dev" || { bed_say "rdma link del $dev failed"; rc=1; }
	done
	# rules before links: once its oif is gone a rule shows as "[detached]"
	while bed_peer_rule_exists "$BED_IP1" "$BED_IF0" "$BED_TABLE0"; do
		ip rule del pref "$BED_PEER_PREF" to "$BED_IP1" oif "$BED_IF0" lookup "$BED_TABLE0" || { rc=1; break; }
	done
	while bed_peer_rule_exists "$BED_IP0" "$BED_IF1" "$BED_TABLE1"; do
		ip rule del pref "$BED_PEER_PREF" to "$BED_IP0" oif "$BED_IF1" lookup "$BED_TABLE1" || { rc=1; break; }
	done
	if bed_link_exists "$BED_IF0"; then
		if bed_has_addr "$BED_IF0" "$BED_IP0" || bed_state_has created_veth; then
			ip link del "$BED_IF0" || { bed_say "ip link del $BED_IF0 failed"; rc=1; }
		else
			bed_say "leaving $BED_IF0 alone: it does not carry $BED_IP0"
		fi
	fi
	# (deleting one end of a veth pair deletes both; this catches a leftover)
	if bed_link_exists "$BED_IF1" && bed_has_addr "$BED_IF1" "$BED_IP1"; then
		ip link del "$BED_IF1" || rc=1
	fi
	ip route flush table "$BED_TABLE0" 2>/dev/null || true
	ip route flush table "$BED_TABLE1" 2>/dev/null || true
	if bed_state_has moved_local_rule; then
		bed_local_rule_at 0 || ip rule add pref 0 lookup local || rc=1
		if bed_local_rule_at 0; then
			while bed_local_rule_at "$BED_LOCAL_PREF"; do
				ip rule del pref "$BED_LOCAL_PREF" lookup local || { rc=1; break; }
			done
		fi
	fi
	local rpf
	rpf=$(bed_state_get rp_filter_all)
	if [ -n "$rpf" ]; then
		bed_sysctl ipv4/conf/all/rp_filter "$rpf" || rc=1
	fi
	[ $rc -ne 0 ] || rm -f "$BED_STATE"
	return $rc
}

# --- status ------------------------------------------------------------------

# Prints one line per part of the bed. Returns 0 when the whole bed is up,
# 1 when none of it exists, 2 when only part of it does.
bed_status() {
	local have=0 miss=0 pair dev ifc ip peer table
	_bed_check() { # ok? description
		if [ "$1" = 0 ]; then
			have=$((have + 1))
			echo "  [up]      $2"
		else
			miss=$((miss + 1))
			echo "  [missing] $2"
		fi
	}
	for pair in "$BED_IF0:$BED_IP0:$BED_IP1:$BED_TABLE0" "$BED_IF1:$BED_IP1:$BED_IP0:$BED_TABLE1"; do
		IFS=: read -r ifc ip peer table <<<"$pair"
		bed_has_addr "$ifc" "$ip"
		_bed_check $? "$ifc $ip/$BED_PREFIX_LEN"
		bed_peer_rule_exists "$peer" "$ifc" "$table"
		_bed_check $? "rule pref $BED_PEER_PREF to $peer oif $ifc lookup $table"
	done
	for pair in "$BED_DEV0:$BED_IF0:$BED_IP0" "$BED_DEV1:$BED_IF1:$BED_IP1"; do
		IFS=: read -r dev ifc ip <<<"$pair"
		[ "$(bed_rxe_netdev "$dev")" = "$ifc" ] && bed_gid1_ok "$dev" "$ip"
		_bed_check $? "$dev on $ifc, GID 1 = $(bed_v4_gid "$ip")"
	done
	unset -f _bed_check
	[ $miss -eq 0 ] && return 0
	[ $have -eq 0 ] && return 1
	return 2
}
