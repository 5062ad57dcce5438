#!/bin/bash
# guest-setup.sh — second stage inside the SoftRoCE VM.
#
# guest-init.sh (PID 1) runs this with the host's own bash, chrooted into the
# overlay of the host's root filesystem, so ip, rdma, perftest and the user's
# binaries are the host's. vm.sh copied it, bed.sh and job.sh (the command,
# its working directory and environment) into the control folder, mounted
# here at /run/softroce-ctl.
#
# It builds the bed (bed.sh), runs the command with stdout/stderr on the
# serial ports that vm.sh relays, and leaves the exit status in ctl/rc:
#   the command's status, 126 = the bed could not be built,
#   125 = the command could not be started (working directory missing).
# ctl/started marks that the command was launched, so vm.sh can tell "the VM
# died before" from "the VM died during" the command.
set -uo pipefail

CTL=/run/softroce-ctl
finish() {
	echo "$1" >"$CTL/rc"
	exit "$1"
}

# A PATH that finds ip/rdma for the setup; the caller's PATH comes later.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root

# job.sh sets job_cwd, job_setup, job_quiet, job_mtu, job_env (NAME=value words to
# export) and job_argv (the command); see write_job in vm.sh.
job_cwd=/ job_env=() job_argv=(false)
# shellcheck source=/dev/null
. "$CTL/job.sh" || {
	echo "softroce: cannot read the job description in the VM (vm.sh bug?)" >&2
	finish 125
}
# shellcheck source=bed.sh
. "$CTL/bed.sh"
BED_MTU=${job_mtu:-$BED_MTU}

uptime_s() { cut -d' ' -f1 /proc/uptime; }

if [ "${job_setup:-1}" = 1 ]; then
	t0=$(uptime_s)
	if ! bed_up; then
		# bed_up printed what failed; the kernel log usually says why
		dmesg 2>/dev/null | tail -n 15 | sed 's/^/  dmesg: /' >&2
		echo "softroce: rxe setup failed in the VM (see above); rerun with INFAB_SOFTROCE_VERBOSE=1 for the kernel log" >&2
		finish 126
	fi
	t1=$(uptime_s)
	if [ "${job_quiet:-0}" != 1 ]; then
		echo "softroce: $BED_DEV0 on $BED_IF0 ($BED_IP0), $BED_DEV1 on $BED_IF1 ($BED_IP1)" \
			"ready after $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s" \
			"(VM up $(awk -v b="$t1" 'BEGIN {printf "%.1f", b}') s)" >&2
	fi
fi

# The caller's environment, then what describes the bed (which must win over
# any INFAB_DEV0 etc. the caller happened to have).
if [ ${#job_env[@]} -gt 0 ]; then
	export "${job_env[@]}"
fi
export INFAB_SOFTROCE=1
[ "${job_setup:-1}" = 1 ] && bed_export_env

if ! cd "$job_cwd" 2>/dev/null; then
	echo "softroce: working directory $job_cwd does not exist in the VM (it lies under a path the VM mounts afresh: /proc /sys /dev /run); cd elsewhere or set INFAB_SOFTROCE_SHARE" >&2
	finish 125
fi

: >"$CTL/started"
"${job_argv[@]}"
finish $?
