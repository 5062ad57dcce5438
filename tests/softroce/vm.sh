#!/bin/bash
# vm.sh — run one command inside a throw-away QEMU VM that has two SoftRoCE
# (rdma_rxe) devices wired back to back:
#
#     rxe0 ── veth0 198.18.0.1/24 ══ veth1 198.18.0.2/24 ── rxe1   (MTU 9000)
#
# For machines whose own kernel has no RDMA and cannot load modules: the VM
# boots Debian's stock linux-image-amd64 (downloaded and unpacked into a
# cache, never installed) under QEMU. The guest's root is the host's "/",
# read-only over 9p with a tmpfs overlay on top, so host binaries (perftest, a
# cargo-built test) run unchanged and guest writes are thrown away.
#
# usage:
#   tests/softroce/vm.sh [--] command [args...]   run it, exit with its status
#   tests/softroce/vm.sh --prepare                install packages, build cache
#   tests/softroce/vm.sh --help
#   As cargo's target runner (each test binary boots its own VM, ~4 s):
#     CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER=$PWD/tests/softroce/vm.sh cargo test
#
# In the VM:
#   - the command runs in the caller's $PWD, stdin is /dev/null, stdout and
#     stderr come back separately (serial ports: ~300 KB/s, and they are ttys;
#     TERM=dumb unless our stdout is a terminal). Write big output to files.
#   - the shared folder (INFAB_SOFTROCE_SHARE) is mounted read-write at the
#     same path; everything else is the host's root, writable but thrown away.
#     /proc /sys /dev /run are the guest's own.
#   - environment: PATH, HOME, TERM, every RUST_*, CARGO_* and INFAB_*
#     variable, LD_LIBRARY_PATH, plus the names in INFAB_SOFTROCE_ENV. The bed
#     adds INFAB_SOFTROCE=1 INFAB_DEV0=rxe0 INFAB_DEV1=rxe1
#     INFAB_IP0=198.18.0.1 INFAB_IP1=198.18.0.2.
#   - no network leaves the VM: QEMU always runs with -nic none.
#
# exit status: the command's; 124 timeout; 125 the VM failed before the
# command ran (or did not boot in time, or died while it ran); 126 the rxe
# bed could not be built in the guest; 130 interrupted. Every failure ends
# with one "softroce: ..." line.
#
# knobs (environment, all optional):
#   INFAB_SOFTROCE_MEM=4G        guest memory
#   INFAB_SOFTROCE_SMP=2         vCPUs (1 is unusable: perftest pollers share it)
#   INFAB_SOFTROCE_TIMEOUT=1200  seconds until the VM is killed (exit 124)
#   INFAB_SOFTROCE_BOOT_TIMEOUT=120  seconds the VM may take to start the
#                                command (boot + bed) before it is killed (125)
#   INFAB_SOFTROCE_CPU=Nehalem   QEMU CPU model ("host" under kvm). Binaries
#                                built with -C target-cpu=native may need "max",
#                                which makes rxe ~2x slower (emulated AVX/PCLMUL)
#   INFAB_SOFTROCE_ACCEL=tcg     tcg | kvm | auto. tcg is the default because
#                                on some hosts /dev/kvm exists but hangs a stock
#                                kernel (nested PVM); auto runs a 20 s probe once
#                                per host boot and falls back to tcg
#   INFAB_SOFTROCE_MTU=9000      MTU of veth0/veth1 (1500 -> RoCE active_mtu 1024)
#   INFAB_SOFTROCE_CACHE=dir     kernel + initramfs cache, ~140 MB
#                                (default /var/cache/infab-softroce, or
#                                ~/.cache/infab-softroce when not root)
#   INFAB_SOFTROCE_SHARE=dir     read-write folder (default: the git toplevel of
#                                $PWD, else $PWD; "none" for none)
#   INFAB_SOFTROCE_ENV="A B"     more variable names to pass into the VM
#   INFAB_SOFTROCE_VERBOSE=1     kernel console and timings on stderr
#   INFAB_SOFTROCE_QUIET=1       no "rxe0 ... ready" line
#   INFAB_SOFTROCE_NO_SETUP=1    boot without building the bed (e.g. to test
#                                host-rxe.sh inside the VM)
#   INFAB_SOFTROCE_NO_APT=1      never run apt-get; fail if something is missing
#   INFAB_SOFTROCE_KAPPEND=...   extra guest kernel command line
#
# Needs: Debian (apt, linux-image-amd64), x86_64; root to install packages
# (otherwise install qemu-system-x86 busybox-static ibverbs-providers
# ibverbs-utils perftest iproute2 xz-utils yourself).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
T_START=${EPOCHREALTIME/,/.}

VERBOSE=${INFAB_SOFTROCE_VERBOSE:-0}
TIMEOUT=${INFAB_SOFTROCE_TIMEOUT:-1200}
BOOT_TIMEOUT=${INFAB_SOFTROCE_BOOT_TIMEOUT:-120}
ACCEL=${INFAB_SOFTROCE_ACCEL:-tcg}
if [ -n "${INFAB_SOFTROCE_CACHE:-}" ]; then
	CACHE=$INFAB_SOFTROCE_CACHE
elif [ "$(id -u)" = 0 ]; then
	CACHE=/var/cache/infab-softroce
else
	CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/infab-softroce
fi

PACKAGES=(qemu-system-x86 busybox-static ibverbs-providers ibverbs-utils perftest iproute2 xz-utils)
# Modules shipped in the initramfs (plus their dependencies). sch_netem and
# sch_tbf let tests impair the veth link with tc (delay, loss, rate).
GUEST_MODULES="virtio_pci 9pnet_virtio 9p overlay crc32_generic veth dummy rdma_rxe ib_uverbs rdma_ucm ib_umad sch_netem sch_tbf"
# Bump when the way the initramfs is built changes.
RECIPE_REV=1

# ------------------------------------------------------------------ messages

say() { echo "softroce: $*" >&2; }
vsay() { if [ "$VERBOSE" = 1 ]; then say "[$(elapsed)s] $*"; fi; }
fail() { # exit-code message
	say "$2"
	exit "$1"
}
elapsed() {
	local now=${EPOCHREALTIME/,/.}
	awk -v a="$T_START" -v b="$now" 'BEGIN {printf "%.1f", b - a}'
}

usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

# ------------------------------------------------------------------ packages

# apt-get with a bounded wait on the dpkg lock, quiet, no prompts.
apt_quiet() {
	DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300 "$@"
}

# The harness's own tools. Checked with dpkg (one call, ~30 ms) because e.g.
# busybox must be the static build: it becomes the guest's PID 1.
ensure_packages() {
	local missing=() pkg status
	command -v dpkg-query >/dev/null ||
		fail 125 "dpkg-query not found: this harness needs Debian (apt and linux-image-amd64); use tests/softroce/host-rxe.sh on a host that can load rdma_rxe"
	local -A state=()
	# (packages dpkg has never heard of print nothing, only an error)
	while read -r pkg status; do
		state[$pkg]=$status
	done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${PACKAGES[@]}" 2>/dev/null || true)
	for pkg in "${PACKAGES[@]}"; do
		[ "${state[$pkg]:-}" = installed ] || missing+=("$pkg")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "${INFAB_SOFTROCE_NO_APT:-0}" = 1 ] &&
		fail 125 "missing packages: ${missing[*]} (INFAB_SOFTROCE_NO_APT=1); apt-get install --no-install-recommends ${missing[*]}"
	[ "$(id -u)" = 0 ] ||
		fail 125 "missing packages: ${missing[*]}; run as root (so that apt-get can install them) or install them yourself"

	# Pitfall: hosts with a newer qemu-utils (e.g. 10.x from backports) lose
	# it when qemu-system-x86 (7.2) comes in, because both come from one
	# source package. Ask for the matching qemu-utils too, allowing the
	# downgrade, so qemu-img keeps existing.
	local extra=() cand
	if [[ " ${missing[*]} " == *" qemu-system-x86 "* ]] &&
		dpkg-query -W -f='${db:Status-Status}' qemu-utils 2>/dev/null | grep -qx installed; then
		cand=$(apt-cache policy qemu-system-x86 2>/dev/null | awk '/Candidate:/ {print $2}')
		[ -z "$cand" ] || [ "$cand" = "(none)" ] || extra+=("qemu-utils=$cand")
	fi
	say "installing ${missing[*]}${extra[*]+ ${extra[*]}}"
	local log=${TMPDIR:-/tmp}/infab-softroce-apt.log
	# Try with the package lists we have; refresh them only if that fails
	# (fresh machine, or lists too old for the mirror).
	if ! apt_quiet install --no-install-recommends --allow-downgrades "${missing[@]}" "${extra[@]}" >"$log" 2>&1; then
		if ! { apt_quiet update && apt_quiet install --no-install-recommends --allow-downgrades \
			"${missing[@]}" "${extra[@]}"; } >>"$log" 2>&1; then
			fail 125 "apt-get install ${missing[*]} failed: $(grep -E '^(E|W):' "$log" | tail -n 1) (log: $log); run as root on Debian/Ubuntu or install it yourself"
		fi
	fi
	rm -f "$log"
}

# ------------------------------------------------------------------ kernel

# Which linux-image to use: linux-image-amd64's dependency, e.g.
# linux-image-6.1.0-56-amd64 6.1.192-2. Asking apt-cache costs ~1 s, so the
# answer is kept in $CACHE/kernel.pin and reused until apt's package lists
# change (apt-get update moves new lists into place, touching the folder).
# Sets KPKG and KVER.
resolve_kernel() {
	local pin=$CACHE/kernel.pin lists=/var/lib/apt/lists
	if [ -s "$pin" ] && { [ ! -d "$lists" ] || [ "$pin" -nt "$lists" ]; }; then
		read -r KPKG KVER <"$pin" && [ -n "$KVER" ] && return 0
	fi
	_ask_apt() {
		KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null |
			awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
		[ -n "$KPKG" ] || return 1
		KVER=$(apt-cache policy "$KPKG" 2>/dev/null | awk '/Candidate:/ {print $2}')
		[ -n "$KVER" ] && [ "$KVER" != "(none)" ]
	}
	if ! _ask_apt; then
		if [ "${INFAB_SOFTROCE_NO_APT:-0}" != 1 ] && [ "$(id -u)" = 0 ]; then
			apt_quiet update >/dev/null 2>&1 || true
		fi
		if ! _ask_apt; then
			# offline, or apt has no lists: any kernel cached before will do
			local d
			d=$(find "$CACHE" -maxdepth 2 -name .kernel-ready -printf '%T@ %h\n' 2>/dev/null |
				sort -rn | awk 'NR == 1 {print $2}')
			[ -n "$d" ] ||
				fail 125 "apt knows no linux-image-amd64 and nothing is cached; run apt-get update (Debian with main enabled) and retry"
			read -r KPKG KVER <"$d/.kernel-ready"
			return 0
		fi
	fi
	echo "$KPKG $KVER" >"$pin.tmp" && mv "$pin.tmp" "$pin"
}

# Reads a little-endian unsigned integer of $3 bytes at offset $2 of file $1.
read_le() { od -An -tu"$3" -j "$2" -N "$3" "$1" | tr -d ' \n'; }

# Extracts the uncompressed ELF vmlinux from a bzImage, using the boot
# protocol header (setup_sects at 0x1f1, payload_offset/length at 0x248/0x24c).
# QEMU boots that ELF through its PVH entry point, which skips the in-guest
# decompression: ~3 s faster under TCG. Returns non-zero if it can't.
extract_vmlinux() { # bzImage out
	local setup_sects off len magic
	setup_sects=$(read_le "$1" $((0x1f1)) 1)
	off=$(read_le "$1" $((0x248)) 4)
	len=$(read_le "$1" $((0x24c)) 4)
	[ -n "$setup_sects" ] && [ -n "$off" ] && [ "$len" -gt 0 ] 2>/dev/null || return 1
	off=$(((setup_sects + 1) * 512 + off))
	magic=$(od -An -tx1 -j "$off" -N 6 "$1" | tr -d ' \n')
	case $magic in
	fd377a585a00) # xz; --single-stream: the kernel appends its size after it
		tail -c +$((off + 1)) "$1" | head -c "$len" | xz -dc --single-stream >"$2" 2>/dev/null ;;
	1f8b*)
		tail -c +$((off + 1)) "$1" | head -c "$len" | gzip -dc >"$2" 2>/dev/null ;;
	*) return 1 ;;
	esac
	[ "$(od -An -tx1 -N 4 "$2" | tr -d ' \n')" = 7f454c46 ] # ELF
}

# $KDIR = $CACHE/<package>_<version>: linux.deb (kept so that an initramfs
# recipe change needs no download), vmlinux (or bzImage), kernel-release.
ensure_kernel() {
	KDIR=$CACHE/${KPKG}_$KVER
	[ -f "$KDIR/.kernel-ready" ] && return 0
	say "downloading $KPKG $KVER into $KDIR (once)"
	local work
	work=$(mktemp -d "$CACHE/.build.XXXXXX")
	chmod 755 "$work"
	# apt drops root privileges to _apt for downloads; let it write there
	mkdir "$work/dl"
	chown _apt "$work/dl" 2>/dev/null || true
	if ! (cd "$work/dl" && apt-get -q download "$KPKG=$KVER") >"$work/log" 2>&1; then
		local why
		why=$(grep -E '^(E|W):' "$work/log" | tail -n 1)
		rm -rf "$work"
		fail 125 "apt-get download $KPKG=$KVER failed: ${why:-see apt output}; check that the Debian mirror is reachable (apt-get update)"
	fi
	mkdir -p "$work/k"
	mv "$work"/dl/*.deb "$work/linux.deb"
	rmdir "$work/dl"
	dpkg-deb --fsys-tarfile "$work/linux.deb" | tar -x -C "$work/k" --wildcards './boot/vmlinuz-*' ||
		{ rm -rf "$work"; fail 125 "cannot unpack $KPKG (dpkg-deb/tar failed; disk full?)"; }
	local bz
	bz=$(echo "$work"/k/boot/vmlinuz-*)
	basename "$bz" | sed 's/^vmlinuz-//' >"$work/kernel-release"
	if extract_vmlinux "$bz" "$work/vmlinux"; then
		rm -f "$work/k/boot/vmlinuz-"*
	else
		rm -f "$work/vmlinux"
		mv "$bz" "$work/bzImage"
	fi
	rm -rf "$work/k" "$work/log"
	echo "$KPKG $KVER" >"$work/.kernel-ready"
	rm -rf "$KDIR"
	mv "$work" "$KDIR"
}

# The initramfs recipe: everything that ends up in it. Changing guest-init.sh,
# the module list, busybox or RECIPE_REV gives a new checksum, so a new file.
recipe_sum() {
	{
		echo "rev $RECIPE_REV modules $GUEST_MODULES"
		cat "$HERE/guest-init.sh" /bin/busybox
	} | cksum | cut -d' ' -f1
}

# $INITRD = $KDIR/initramfs-<recipe>.cpio.gz: busybox-static as /bin/busybox,
# guest-init.sh as /init, the wanted modules with their dependencies.
ensure_initramfs() {
	INITRD=$KDIR/initramfs-$(recipe_sum).cpio.gz
	[ -f "$INITRD" ] && return 0
	say "building the initramfs $INITRD"
	local work krel mods m line f
	work=$(mktemp -d "$CACHE/.build.XXXXXX")
	krel=$(cat "$KDIR/kernel-release")
	mkdir -p "$work/k" "$work/root/bin"
	dpkg-deb --fsys-tarfile "$KDIR/linux.deb" | tar -x -C "$work/k" "./lib/modules/$krel" ||
		{ rm -rf "$work"; fail 125 "cannot unpack the modules of $KPKG (disk full?); delete $KDIR and retry"; }
	busybox depmod -b "$work/k" "$krel"
	mods=$work/k/lib/modules/$krel
	# modules.dep lists each module with all of its (transitive) deps
	for m in $GUEST_MODULES; do
		line=$(awk -v want="${m//-/_}" '{
			name = $1; sub(/:$/, "", name); base = name
			sub(/.*\//, "", base); sub(/\.ko.*$/, "", base); gsub(/-/, "_", base)
			if (base == want) { print; exit } }' "$mods/modules.dep")
		[ -n "$line" ] || { rm -rf "$work"; fail 125 "kernel module $m is not in $KPKG; this kernel flavour cannot run the bed (use linux-image-amd64, not -cloud)"; }
		for f in ${line/:/}; do
			mkdir -p "$work/root/lib/modules/$krel/$(dirname "$f")"
			cp "$mods/$f" "$work/root/lib/modules/$krel/$f"
		done
	done
	cp "$mods"/modules.builtin "$mods"/modules.builtin.modinfo "$mods"/modules.order \
		"$work/root/lib/modules/$krel/" 2>/dev/null || true
	busybox depmod -b "$work/root" "$krel"
	cp /bin/busybox "$work/root/bin/busybox"
	install -m 755 "$HERE/guest-init.sh" "$work/root/init"
	(cd "$work/root" && find . | busybox cpio -o -H newc 2>/dev/null) | gzip -1 >"$work/initramfs.cpio.gz"
	mv "$work/initramfs.cpio.gz" "$INITRD"
	rm -rf "$work"
}

# Drops cache entries nobody used for a day (older kernels after an upgrade,
# initramfs files of older recipes). Runs mark what they use by touching it.
prune_cache() {
	find "$CACHE" -mindepth 1 -maxdepth 1 -name 'linux-image-*' -type d \
		! -path "$KDIR" ! -newermt '-1 day' -exec rm -rf {} + 2>/dev/null || true
	find "$KDIR" -maxdepth 1 -name 'initramfs-*.cpio.gz' ! -path "$INITRD" \
		! -newermt '-1 day' -delete 2>/dev/null || true
	find "$CACHE" -maxdepth 1 -name '.build.*' ! -newermt '-1 hour' -exec rm -rf {} + 2>/dev/null || true
}

# Makes KDIR, KIMG and INITRD valid. Lock-free when the cache is complete;
# otherwise builds under an exclusive flock, so that concurrent first runs
# (cargo test with several binaries, CI jobs) build once.
prepare_cache() {
	mkdir -p "$CACHE" 2>/dev/null ||
		fail 125 "cannot create the cache folder $CACHE; set INFAB_SOFTROCE_CACHE to a writable folder"
	resolve_kernel
	KDIR=$CACHE/${KPKG}_$KVER
	INITRD=$KDIR/initramfs-$(recipe_sum).cpio.gz
	if ! [ -f "$KDIR/.kernel-ready" ] || ! [ -f "$INITRD" ]; then
		exec 9>>"$CACHE/.lock"
		flock -w 900 9 ||
			fail 125 "waited 900 s for the cache lock $CACHE/.lock; another vm.sh is stuck building, kill it or delete $CACHE"
		ensure_kernel
		ensure_initramfs
		prune_cache
		exec 9>&-
	fi
	KIMG=$KDIR/vmlinux
	[ -f "$KIMG" ] || KIMG=$KDIR/bzImage
	touch "$KDIR" "$INITRD" 2>/dev/null || true
	vsay "cache: $KIMG, $INITRD"
}

# ------------------------------------------------------------------ accel

QEMU_BIN="qemu-system-x86_64"

# QEMU arguments common to the probe and the real run.
qemu_base_args() {
	QEMU_BASE=("$QEMU_BIN" -nodefaults -no-user-config -machine pc
		-nic none -display none -vga none -no-reboot)
	# qboot: a minimal BIOS that starts the kernel a bit sooner than SeaBIOS
	if [ -f /usr/share/qemu/qboot.rom ]; then
		QEMU_BASE+=(-bios /usr/share/qemu/qboot.rom)
	fi
}

# Runs the initramfs under KVM with a tiny "reach userspace and power off"
# job. Where /dev/kvm exists but cannot run a stock kernel (e.g. a nested
# PVM host) QEMU aborts or hangs; the timeout bounds the hang.
kvm_works() {
	local probe=$CACHE/kvm-probe boot key log
	[ -r /dev/kvm ] && [ -w /dev/kvm ] || return 1
	boot=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown)
	key="$boot $($QEMU_BIN --version | head -n 1)"
	if [ -f "$probe" ] && [ "$(head -n 1 "$probe")" = "$key" ]; then
		[ "$(sed -n 2p "$probe")" = ok ]
		return
	fi
	vsay "probing KVM (at most 20 s, once per host boot)"
	log=$(mktemp)
	qemu_base_args
	local verdict=fail
	if timeout -k 2 20 "${QEMU_BASE[@]}" -accel kvm -cpu host -m 256M -smp 1 \
		-serial "file:$log" -kernel "$KIMG" -initrd "$INITRD" \
		-append "console=ttyS0 quiet panic=-1 infab.probe" </dev/null >/dev/null 2>&1 &&
		grep -q INFAB-PROBE-OK "$log"; then
		verdict=ok
	fi
	rm -f "$log"
	printf '%s\n%s\n' "$key" "$verdict" >"$probe"
	vsay "KVM probe: $verdict"
	[ "$verdict" = ok ]
}

# Sets ACCEL_ARGS.
choose_accel() {
	case $ACCEL in
	auto) if kvm_works; then ACCEL=kvm; else ACCEL=tcg; fi ;;
	kvm | tcg) ;;
	*) fail 125 "INFAB_SOFTROCE_ACCEL=$ACCEL is not one of tcg, kvm, auto" ;;
	esac
	if [ "$ACCEL" = kvm ]; then
		[ -w /dev/kvm ] || fail 125 "INFAB_SOFTROCE_ACCEL=kvm but /dev/kvm is missing or not writable; unset it to use tcg"
		ACCEL_ARGS=(-accel kvm -cpu "${INFAB_SOFTROCE_CPU:-host}")
	else
		# Nehalem (x86-64-v2: SSE4.2, POPCNT; no AVX, no PCLMULQDQ) measured
		# ~2x faster for rxe than "max": emulated AVX/PCLMUL are slow.
		ACCEL_ARGS=(-accel "tcg,thread=multi,tb-size=256" -cpu "${INFAB_SOFTROCE_CPU:-Nehalem}")
	fi
}

# ------------------------------------------------------------------ the job

# Shared folder: INFAB_SOFTROCE_SHARE, else the git toplevel, else $PWD.
# "/" is never shared read-write (the root is already visible, read-only).
choose_share() {
	local s=${INFAB_SOFTROCE_SHARE:-}
	if [ -z "$s" ]; then
		s=$(git -C "$PWD" rev-parse --show-toplevel 2>/dev/null) || s=$PWD
	fi
	[ "$s" = none ] && s=
	if [ -n "$s" ]; then
		s=$(cd "$s" 2>/dev/null && pwd -P) ||
			fail 125 "shared folder ${INFAB_SOFTROCE_SHARE:-$s} does not exist; fix INFAB_SOFTROCE_SHARE"
	fi
	[ "$s" = / ] && s=
	SHARE=$s
}

# POSIX-shell single quoting, for boot.env (read by busybox sh).
sh_quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# Variables passed to the command (see the header).
passed_vars() {
	local v
	for v in $(compgen -e); do
		case $v in
		INFAB_* | RUST_* | CARGO_* | LD_LIBRARY_PATH) echo "$v" ;;
		esac
	done
	for v in ${INFAB_SOFTROCE_ENV:-}; do
		if [[ $v =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
			echo "$v"
		else
			say "ignoring '$v' in INFAB_SOFTROCE_ENV: not a variable name"
		fi
	done
}

# The control folder, mounted in the guest at /run/softroce-ctl:
#   boot.env   for guest-init.sh (busybox sh): the shared folder
#   job.sh     for guest-setup.sh (bash): cwd, bed options, env, argv
#   bed.sh, guest-setup.sh  copies, so the guest never depends on where the
#              harness lives
#   rc, started  written by the guest
write_job() {
	CTL=$(mktemp -d "${TMPDIR:-/tmp}/infab-softroce.XXXXXX")
	echo "guest_share=$(sh_quote "$SHARE")" >"$CTL/boot.env"
	local term=dumb v
	# The command's stdout is a serial port, i.e. a tty: say "dumb" so that
	# tools skip colours and progress bars, unless a human is watching.
	[ -t 1 ] && term=${TERM:-dumb}
	{
		echo "# written by tests/softroce/vm.sh"
		printf 'job_cwd=%q\n' "$(pwd -P)"
		printf 'job_setup=%q\n' "$([ "${INFAB_SOFTROCE_NO_SETUP:-0}" = 1 ] && echo 0 || echo 1)"
		printf 'job_quiet=%q\n' "${INFAB_SOFTROCE_QUIET:-0}"
		printf 'job_mtu=%q\n' "${INFAB_SOFTROCE_MTU:-9000}"
		printf 'job_env=('
		printf ' %q' "PATH=$PATH" "HOME=${HOME:-/root}" "TERM=$term"
		for v in $(passed_vars | sort -u); do
			printf ' %q' "$v=${!v}"
		done
		echo ' )'
		printf 'job_argv=('
		printf ' %q' "$@"
		echo ' )'
	} >"$CTL/job.sh"
	cp "$HERE/guest-setup.sh" "$HERE/bed.sh" "$CTL/"
}

# ------------------------------------------------------------------ the VM

# QEMU writes the guest's ttyS1/ttyS2 into two FIFOs, and a cat per FIFO
# copies them to our stdout/stderr. (Pointing QEMU at /dev/fd/1 would reopen
# our stdout; on a regular file that is a second file description with its
# own offset, and output written around it gets clobbered.)
# Each FIFO is first opened read-write by us: such an open never blocks, so
# the cats' opens return at once even if QEMU dies before opening its end,
# and a cat sees EOF exactly when we close our end after QEMU is gone.
start_relays() {
	mkfifo "$CTL/stdout" "$CTL/stderr"
	exec 7<>"$CTL/stdout" 8<>"$CTL/stderr"
	cat <"$CTL/stdout" 7>&- 8>&- &
	RELAY_OUT=$!
	cat <"$CTL/stderr" 7>&- 8>&- >&2 &
	RELAY_ERR=$!
}

stop_relays() {
	exec 7>&- 8>&-
	wait "$RELAY_OUT" "$RELAY_ERR" 2>/dev/null || true
}

# shellcheck disable=SC2317 # (trap handler)
cleanup() {
	[ -z "${CTL:-}" ] || rm -rf "$CTL"
}

show_console_tail() {
	if [ -s "$CTL/qemu.err" ]; then
		sed 's/^/  qemu: /' "$CTL/qemu.err" | tail -n 10 >&2
	fi
	if [ -s "$CTL/console.log" ]; then
		tr -d '\r' <"$CTL/console.log" | tail -n 25 | sed 's/^/  console: /' >&2
	fi
}

# shellcheck disable=SC2317 # (trap handler)
on_signal() {
	trap - INT TERM HUP
	[ -z "${QEMU_PID:-}" ] || kill -TERM "$QEMU_PID" 2>/dev/null || true
	[ -z "${QEMU_PID:-}" ] || wait "$QEMU_PID" 2>/dev/null || true
	stop_relays
	say "interrupted; the VM was stopped"
	exit 130
}

# Stops a VM that has not started the command after BOOT_TIMEOUT seconds: a
# hung boot (e.g. a /dev/kvm that cannot run a stock kernel) should not eat
# the whole INFAB_SOFTROCE_TIMEOUT. It polls instead of sleeping once so
# that it ends by itself soon after the command starts; it holds none of the
# relay FIFOs or our stdout, so it can never delay EOF for anyone.
start_boot_watchdog() {
	(
		end=$((SECONDS + BOOT_TIMEOUT))
		while [ $SECONDS -lt $end ]; do
			sleep 1
			[ -e "$CTL/started" ] || [ -e "$CTL/rc" ] && exit 0
		done
		: >"$CTL/boot-timeout"
		kill -TERM "$QEMU_PID"
	) </dev/null >/dev/null 2>&1 7>&- 8>&- &
	WATCHDOG_PID=$!
}

run_vm() {
	local kappend="console=ttyS0 panic=-1 mitigations=off tsc=reliable"
	# tsc=reliable: otherwise the guest distrusts the emulated TSC and falls
	# back to the HPET clocksource, making every clock_gettime() an MMIO exit.
	[ "$VERBOSE" = 1 ] || kappend+=" quiet loglevel=3"
	kappend+=" ${INFAB_SOFTROCE_KAPPEND:-}"

	qemu_base_args
	local console=$CTL/console.log
	# verbose: the kernel console goes straight to our stderr relay
	[ "$VERBOSE" = 1 ] && console=$CTL/stderr
	local share_path=${SHARE//,/,,} # QEMU option syntax: ",," is a literal comma
	local qemu=("${QEMU_BASE[@]}" "${ACCEL_ARGS[@]}"
		-m "${INFAB_SOFTROCE_MEM:-4G}" -smp "${INFAB_SOFTROCE_SMP:-2}"
		-chardev "file,id=con,path=$console" -serial chardev:con
		-chardev "file,id=out,path=$CTL/stdout" -serial chardev:out
		-chardev "file,id=err,path=$CTL/stderr" -serial chardev:err
		-kernel "$KIMG" -initrd "$INITRD" -append "$kappend"
		-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
		-virtfs "local,path=$CTL,mount_tag=ctl,security_model=none,multidevs=remap")
	[ -z "$SHARE" ] ||
		qemu+=(-virtfs "local,path=$share_path,mount_tag=share,security_model=none,multidevs=remap")

	start_relays
	vsay "booting ($ACCEL, ${INFAB_SOFTROCE_SMP:-2} vCPUs, ${INFAB_SOFTROCE_MEM:-4G})"
	# In the background + wait: a trapped signal is handled at once, not only
	# after a foreground child ends. --foreground keeps QEMU in our process
	# group, so a Ctrl-C reaches it directly too.
	timeout --foreground -k 3 "$TIMEOUT" "${qemu[@]}" </dev/null >"$CTL/qemu.err" 2>&1 7>&- 8>&- &
	QEMU_PID=$!
	trap on_signal INT TERM HUP
	start_boot_watchdog
	local qrc=0
	wait "$QEMU_PID" || qrc=$?
	trap - INT TERM HUP
	QEMU_PID=
	kill "$WATCHDOG_PID" 2>/dev/null || true
	wait "$WATCHDOG_PID" 2>/dev/null || true
	stop_relays
	vsay "VM exited (qemu status $qrc)"

	if [ -e "$CTL/boot-timeout" ]; then
		show_console_tail
		fail 125 "the VM did not start the command within ${BOOT_TIMEOUT} s (boot hung; with INFAB_SOFTROCE_ACCEL=kvm this host's KVM may not run a stock kernel: use tcg); see the console tail above"
	fi
	if [ $qrc -eq 124 ] || [ $qrc -eq 137 ]; then
		if [ -e "$CTL/started" ]; then
			fail 124 "timed out after ${TIMEOUT} s while the command ran, the VM was killed; raise INFAB_SOFTROCE_TIMEOUT or shorten the command"
		fi
		show_console_tail
		fail 124 "timed out after ${TIMEOUT} s before the command started, the VM was killed; see the console tail above, raise INFAB_SOFTROCE_TIMEOUT"
	fi
	if [ -s "$CTL/rc" ]; then
		return "$(cat "$CTL/rc")"
	fi
	show_console_tail
	if [ -e "$CTL/started" ]; then
		fail 125 "the VM stopped while the command was running (qemu status $qrc; kernel panic or out of memory? console tail above); rerun with INFAB_SOFTROCE_VERBOSE=1 or more INFAB_SOFTROCE_MEM"
	fi
	fail 125 "the VM stopped before the command ran (qemu status $qrc, console tail above); rerun with INFAB_SOFTROCE_VERBOSE=1"
}

# ------------------------------------------------------------------ main

main() {
	local prepare=0
	case ${1:-} in
	--prepare) prepare=1 ;;
	-h | --help) usage; exit 0 ;;
	--) shift ;;
	"") fail 125 "no command given; usage: tests/softroce/vm.sh [--] command [args...] | --prepare | --help" ;;
	esac
	[ "$(uname -m)" = x86_64 ] || fail 125 "only x86_64 hosts are supported (uname -m: $(uname -m))"

	ensure_packages
	prepare_cache
	if [ $prepare = 1 ]; then
		say "ready: $KIMG + $INITRD ($(elapsed) s)"
		exit 0
	fi
	[ $# -gt 0 ] || fail 125 "no command given after --"
	[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || fail 125 "INFAB_SOFTROCE_TIMEOUT=$TIMEOUT is not a number of seconds"
	[[ $BOOT_TIMEOUT =~ ^[1-9][0-9]*$ ]] || fail 125 "INFAB_SOFTROCE_BOOT_TIMEOUT=$BOOT_TIMEOUT is not a number of seconds"
	choose_accel
	choose_share
	trap cleanup EXIT
	write_job "$@"
	local rc=0
	run_vm || rc=$?
	vsay "done, command status $rc"
	exit $rc
}

main "$@"
