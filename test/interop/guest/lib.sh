# shellcheck shell=bash
# What the guest scripts (test/interop/guest/*.sh, bash) share. run-guest puts this file at
# /guest/lib.sh beside every script it runs; a script sources it first, then sets the
# knobs below that it wants other than the default. The CHECK lines are what the tests
# on the host parse (test/interop/lib/harness.ts: parseChecks): one per check,
#   CHECK <name> PASS            or   CHECK <name> FAIL <why>
# Knobs (set after sourcing):
#   run_timeout       seconds run_logged gives a command (default 60)
#   run_lines         lines of a command's output run_logged shows (default 40)
#   run_stderr_lines  when set, run_logged keeps stderr apart in /tmp/NAME.err and shows
#                     that many lines of it after the output
#   run_retry         1: run_logged runs a command that died of a signal again (retry_crash)
#   dmesg_lines       kernel messages dmesg_new and dmesg_tail show by default (default 40)
#   refused_limit     when set, refused wants the refusal within that many seconds and
#                     prints "REFUSED-SECONDS <label> <seconds>" for the test
#   host_reply_seconds  how long host_do waits for the test's answer (default 60)
failures=0
run_timeout=60 run_lines=40 run_stderr_lines='' run_retry=0
dmesg_lines=40 refused_limit='' host_reply_seconds=60

pass() { echo "CHECK $1 PASS"; }
fail() { # NAME WHY...
	echo "CHECK $1 FAIL ${*:2}"
	failures=$((failures + 1))
}
not_run() { # WHY CHECK...: each CHECK fails as not run, for WHY
	local why=$1 c
	shift
	for c in "$@"; do fail "$c" "not run: $why"; done
}
step() { echo "== $*"; }
# seconds since boot, and since such a value (one decimal)
now() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# retry_crash CMD...: runs CMD again (up to 8 times, a second apart) when it dies of a
# signal: Node 26 under TCG sometimes did at start (see rdma-target-checks.sh; about one
# start in four, none since run-guest adds --no-wasm-code-gc there). A command that
# outlives its time limit is not run again: the "hangs" once retried here were nvmf-perf
# spinning in our RDMA host's completion loop (fixed in src/nvme/rdma-qpair.ts), a bug and
# not the emulator.
retry_crash() { retry_crash_within '' "$@"; }
# retry_crash_within SECONDS CMD...: the same, each try limited to SECONDS ('' no limit)
retry_crash_within() {
	local limit=$1 rc
	shift
	for _ in 1 2 3 4 5 6 7 8; do
		if [ -n "$limit" ]; then timeout "$limit" "$@"; else "$@"; fi
		rc=$?
		[ $rc -lt 128 ] && return $rc
		# timeout's own status (124), or the TERM it sent (143): hung, say so and stop
		if [ -n "$limit" ] && { [ $rc = 124 ] || [ $rc = 143 ]; }; then
			echo "  ($1 hung: still running after $limit s, not retried)" >&2
			return $rc
		fi
		echo "  ($1 died with status $rc, again)" >&2
		sleep 1
	done
	return $rc
}
# run_limited CMD...: CMD within $run_timeout s (a shell function: no limit), through
# retry_crash_within when $run_retry is 1
run_limited() {
	if declare -F "$1" >/dev/null; then
		"$@"
	elif [ "$run_retry" = 1 ]; then
		retry_crash_within "$run_timeout" "$@"
	else
		timeout "$run_timeout" "$@"
	fi
}
# run_logged NAME CMD...: runs CMD (run_limited), shows its output, keeps it in /tmp/NAME.out
run_logged() {
	local name=$1 rc
	shift
	echo "\$ $*"
	if [ -n "$run_stderr_lines" ]; then
		run_limited "$@" >"/tmp/$name.out" 2>"/tmp/$name.err"
	else
		run_limited "$@" >"/tmp/$name.out" 2>&1
	fi
	rc=$?
	sed 's/^/  /' "/tmp/$name.out" | head -n "$run_lines"
	[ -z "$run_stderr_lines" ] || sed 's/^/  stderr: /' "/tmp/$name.err" | head -n "$run_stderr_lines"
	[ $rc = 0 ] || echo "  (exit $rc)"
	return $rc
}

# dmesg_new [N]: the last N ($dmesg_lines) kernel messages logged since the previous call
dmesg_seen=$(dmesg | wc -l)
dmesg_new() {
	local total
	total=$(dmesg | wc -l)
	dmesg | tail -n "$((total - dmesg_seen))" | tail -n "${1:-$dmesg_lines}" | sed 's/^/  dmesg: /'
	dmesg_seen=$total
}
# dmesg_tail [N]: the last N ($dmesg_lines) kernel messages, shown before or not
dmesg_tail() { dmesg | tail -n "${1:-$dmesg_lines}" | sed 's/^/  dmesg: /'; }

# ctrl_dir NQN [HOSTNQN]: the sysfs folder of a controller of NQN (connected for HOSTNQN)
ctrl_dir() {
	local d
	for d in /sys/class/nvme/nvme*; do
		[ "$(cat "$d/subsysnqn" 2>/dev/null)" = "$1" ] || continue
		[ -z "${2:-}" ] || [ "$(cat "$d/hostnqn" 2>/dev/null)" = "$2" ] || continue
		echo "$d"
		return 0
	done
	return 1
}
# ctrl_of NQN [HOSTNQN]: the same controller's /dev/nvmeN
ctrl_of() {
	local d
	d=$(ctrl_dir "$@") || return 1
	echo "/dev/${d##*/}"
}

# fabrics_connect LABEL OPTIONS: connect by writing OPTIONS to the kernel's /dev/nvme-fabrics
# directly. nvme-cli 2.3 refuses a second controller to the same subsystem and address
# ("already connected", even with --duplicate-connect), while the kernel allows one per
# host NQN.
fabrics_connect() {
	local label=$1 opts=$2 fd reply=''
	echo "\$ echo $opts > /dev/nvme-fabrics"
	exec {fd}<>/dev/nvme-fabrics || return 1
	if printf '%s' "$opts" >&$fd 2>"/tmp/$label.out"; then
		read -r reply <&$fd
		exec {fd}>&-
		echo "  $reply"
		return 0
	fi
	exec {fd}>&-
	sed 's/^/  /' "/tmp/$label.out"
	return 1
}

# fio_verify LABEL DEV SIZE [fio options...]: write then read back with crc32c verify
# (run_logged, so the output is in /tmp/LABEL.out)
fio_verify() {
	local label=$1 dev=$2 sz=$3
	shift 3
	run_logged "$label" fio --name="$label" --filename="$dev" --ioengine=libaio --direct=1 \
		--size="$sz" --verify=crc32c --do_verify=1 --verify_fatal=1 --eta=never "$@" &&
		! grep -qi 'verify.*fail\|bad magic\|crc32c: wanted' "/tmp/$label.out"
}
# fio_4k_verify LABEL DEV MIB [SECONDS]: MIB MiB of 4 KiB random writes, then all read back
# with crc32c verify, within SECONDS (120); prints fio's IOPS lines (its output's last
# 40 lines on failure)
fio_4k_verify() {
	local rc=0
	echo "\$ fio $1: $3 MiB 4 KiB randwrite + crc32c verify on $2"
	timeout "${4:-120}" fio --name="$1" --filename="$2" --rw=randwrite --bs=4k --size="$3M" --iodepth=16 \
		--ioengine=libaio --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1 --eta=never \
		>"/tmp/$1.out" 2>&1 || rc=$?
	if [ $rc = 0 ] && grep -q 'err= 0' "/tmp/$1.out"; then
		grep -E '^ +(read|write): IOPS=' "/tmp/$1.out" | sed 's/^ */  /'
		return 0
	fi
	sed 's/^/  /' "/tmp/$1.out" | tail -n 40
	echo "  (fio exit $rc)"
	return 1
}

# refused LABEL SUB CMD...: CMD (run_logged) must fail and leave no controller of SUB
# (within $refused_limit s when set)
refused() {
	local label=$1 sub=$2 t took
	shift 2
	t=$(now)
	if run_logged "$label" "$@"; then
		echo "  connected after $(since "$t") s"
		nvme disconnect -n "$sub" >/dev/null 2>&1
		return 1
	fi
	took=$(since "$t")
	echo "  refused after $took s"
	if [ -n "$refused_limit" ]; then
		echo "REFUSED-SECONDS $label $took"
		awk -v s="$took" -v limit="$refused_limit" 'BEGIN { exit !(s < limit) }' || return 1
	fi
	! ctrl_dir "$sub" >/dev/null
}

# host_do ACTION ARGS...: one request to the test on the host over its control channel
# ($HOST_IP:$CTL_PORT); prints its answer ("ok ..." or "error ..."), succeeds on "ok"
host_do() {
	local reply
	exec 3<>"/dev/tcp/$HOST_IP/$CTL_PORT" || return 1
	echo "$*" >&3
	IFS= read -r -t "$host_reply_seconds" reply <&3
	exec 3<&-
	echo "  host: $1 -> $reply"
	[ "${reply%% *}" = ok ]
}

# rxe_up [MODULE...]: soft-RoCE: rdma_rxe (and the modules named) loaded, rxe0 on eth0 ACTIVE
rxe_up() {
	run_logged rxe-modules modprobe -a rdma_rxe rdma_ucm ib_uverbs "$@" &&
		run_logged rxe-add rdma link add rxe0 type rxe netdev eth0 && run_logged rxe-link rdma link &&
		grep -q 'rxe0/1 state ACTIVE' /tmp/rxe-link.out
}

# ext4_remount DEV MIB: mkfs.ext4 on DEV, a file of MIB MiB and eight small ones written,
# unmounted, e2fsck, mounted again and the files' checksums (kept in /tmp/sums) the same;
# /mnt/t unmounted at the end, also on failure
ext4_remount() {
	local i
	mkdir -p /mnt/t
	run_logged mkfs mkfs.ext4 -q -F "$1" && mount -t ext4 "$1" /mnt/t &&
		dd if=/dev/urandom of=/mnt/t/big bs=1M count="$2" 2>/dev/null &&
		for i in 1 2 3 4 5 6 7 8; do echo "file $i $RANDOM" >"/mnt/t/small$i"; done &&
		(cd /mnt/t && md5sum big small* >/tmp/sums) && sync && umount /mnt/t &&
		run_logged fsck e2fsck -fn "$1" && mount -t ext4 "$1" /mnt/t &&
		(cd /mnt/t && md5sum -c /tmp/sums) && umount /mnt/t && return 0
	umount /mnt/t 2>/dev/null
	return 1
}

# check_tls_psk_inserted HOSTNQN SUBNQN KEY: the check tls-psk-inserted (trixie): the TLS PSK
# of interchange KEY, derived by nvme-tls-psk, is in the .nvme keyring for HOSTNQN and
# SUBNQN; sets serial to its key's serial number (empty when not inserted)
check_tls_psk_inserted() {
	serial=''
	if ! run_logged tls-psk nvme-tls-psk --insert "$1" "$2" "$3"; then
		fail tls-psk-inserted "nvme-tls-psk --insert failed"
		return
	fi
	serial=$(awk '$1 == "key" { print $2 }' /tmp/tls-psk.out)
	grep -E ' psk +NVMe0R01 ' /proc/keys | sed 's/^/  /'
	if [ -n "$serial" ] && grep -q "^$(printf '%08x' "$serial") .* psk  *NVMe0R01 $1 $2: 32\$" /proc/keys; then
		pass tls-psk-inserted
	else
		fail tls-psk-inserted "no psk key 'NVMe0R01 $1 $2' of 32 bytes in /proc/keys"
	fi
}
