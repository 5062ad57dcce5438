#!/bin/bash
# install-deps.sh — the Debian/Ubuntu packages infab builds and tests with.
# Installs only what is missing (needs root for that); prints one line per
# failure naming the fix. The SoftRoCE VM's own packages (qemu, busybox,
# perftest, ...) are installed by vm.sh itself, but listing them here too lets
# one apt-get run fetch everything on a fresh CI machine.
set -euo pipefail

# build: sideway's rdma-mummy-sys runs bindgen (libclang) and cmake;
# run/test: the rxe provider, perftest, iproute2's `rdma`, the VM;
# chromium (+ a font, only recommended): checks `infab report` HTML (tests/report_render.rs).
PACKAGES=(cmake libclang-dev clang pkg-config libibverbs-dev ibverbs-providers ibverbs-utils perftest
	iproute2 qemu-system-x86 busybox-static xz-utils chromium fonts-liberation)

missing=()
for pkg in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null | grep -qx installed || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing packages: ${missing[*]}; run as root or: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
	exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
extra=()
# installing Debian's qemu-system-x86 would remove a backported qemu-utils; keep one
if [[ " ${missing[*]} " == *" qemu-system-x86 "* ]] && dpkg-query -W qemu-utils >/dev/null 2>&1; then
	extra+=("qemu-utils/$(. /etc/os-release && echo "$VERSION_CODENAME")")
fi
log=$(mktemp)
if ! { apt-get -q update && apt-get -q -y -o DPkg::Lock::Timeout=300 install --no-install-recommends \
	--allow-downgrades "${missing[@]}" "${extra[@]}"; } >"$log" 2>&1; then
	tail -n 20 "$log" >&2
	echo "install-deps: apt-get install failed (log above: $log)" >&2
	exit 1
fi
rm -f "$log"
