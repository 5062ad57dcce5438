#!/bin/busybox sh
# shellcheck shell=dash
# guest-init.sh — PID 1 of the SoftRoCE VM, baked into the initramfs by vm.sh
# (which holds only busybox-static and a few kernel modules).
#
#   1. load the modules: virtio + 9p + overlay for the root, then the RDMA
#      chain (crc32_generic, veth, rdma_rxe, ib_uverbs, rdma_ucm, ...)
#   2. root = the host's "/" (9p tag hostroot, read-only) under a tmpfs
#      overlay: every host binary and library runs unchanged, and the guest
#      may write anywhere, but those writes die with the VM
#   3. the control folder (tag ctl, rw) at /run/softroce-ctl and the shared
#      folder (tag share, rw) at the same absolute path as on the host
#   4. chroot and run guest-setup.sh (builds the bed, runs the command) with
#      stdout on ttyS1 and stderr on ttyS2; ttyS0 is this console
#   5. flush and power off, which ends QEMU
#
# With "infab.probe" on the kernel command line it only proves that the
# kernel reached userspace (vm.sh's KVM probe) and powers off.

/bin/busybox --install -s /bin
export PATH=/bin

say() { echo "softroce-init: $*"; }

power_off() {
	sync
	poweroff -f
	sleep 30 # (poweroff -f does not return; never fall off the end as PID 1)
}

die() {
	say "FATAL: $*"
	dmesg | tail -n 20
	power_off
}

mkdir -p /proc /sys /dev /lower /upper /newroot
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

case " $(cat /proc/cmdline) " in
*" infab.probe "*)
	echo "INFAB-PROBE-OK"
	power_off
	;;
esac

# The kernel's own module requests (crypto "crc32", "rdma-link-rxe", qdiscs,
# ...) go through busybox modprobe and the modules.dep of this initramfs.
echo /bin/modprobe >/proc/sys/kernel/modprobe

for m in virtio_pci 9pnet_virtio 9p overlay; do
	modprobe "$m" || die "modprobe $m failed"
done
# crc32_generic before rdma_rxe: rxe computes its ICRC with the "crc32" shash.
# crc32-pclmul is deliberately not in the initramfs: emulated PCLMULQDQ is
# slower than the table-driven generic code (rxe 2-4x slower).
for m in crc32_generic veth rdma_rxe ib_uverbs rdma_ucm ib_umad; do
	modprobe "$m" || say "warning: modprobe $m failed"
done

# Large 9p messages: far fewer round trips through the emulated virtio ring.
P9=trans=virtio,version=9p2000.L,msize=512000
mount -t 9p -o "$P9,ro,cache=loose" hostroot /lower || die "cannot mount the host root (9p tag hostroot)"
mount -t tmpfs -o mode=0755 tmpfs /upper || die "cannot mount tmpfs"
mkdir -p /upper/data /upper/work
mount -t overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work overlay /newroot ||
	die "cannot mount the overlay root"

R=/newroot
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts
mount -t tmpfs tmpfs $R/dev/shm
# Fresh /run (the host's pid files and sockets mean nothing here). /tmp stays
# the host's, seen through the overlay: writable, thrown away at the end.
mount -t tmpfs -o mode=0755 tmpfs $R/run
mkdir -p $R/run/softroce-ctl
mount -t 9p -o "$P9,cache=none" ctl $R/run/softroce-ctl || die "cannot mount the control folder (9p tag ctl)"

# boot.env: guest_share (absolute host path or empty), written by vm.sh
# shellcheck source=/dev/null
. $R/run/softroce-ctl/boot.env || die "cannot read boot.env"
if [ -n "$guest_share" ]; then
	mkdir -p "$R$guest_share"
	# cache=mmap: no stale page cache against the host, and shared mmap works
	mount -t 9p -o "$P9,cache=mmap" share "$R$guest_share" ||
		die "cannot mount the shared folder $guest_share (9p tag share)"
fi

# raw: no \n -> \r\n, no echo; the relays on the host copy bytes as they are
stty -F /dev/ttyS1 raw -echo 2>/dev/null
stty -F /dev/ttyS2 raw -echo 2>/dev/null
say "root ready at $(cut -d' ' -f1 /proc/uptime) s"

chroot $R /bin/bash /run/softroce-ctl/guest-setup.sh </dev/null >/dev/ttyS1 2>/dev/ttyS2
say "guest-setup.sh exited with $? at $(cut -d' ' -f1 /proc/uptime) s"

# busybox stty applies its settings with TCSADRAIN, i.e. it returns only when
# the UART has sent everything queued: the output tail is not cut off.
stty -F /dev/ttyS1 raw 2>/dev/null
stty -F /dev/ttyS2 raw 2>/dev/null
sync
[ -n "$guest_share" ] && umount "$R$guest_share" 2>/dev/null
umount $R/run/softroce-ctl 2>/dev/null
power_off
