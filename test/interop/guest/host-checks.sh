#!/bin/bash
# Guest script: the Linux kernel NVMe/TCP host (nvme-cli, nvme-tcp, fio, ext4) against
# a target outside the guest. Each check prints exactly one line
#   CHECK <name> PASS            or   CHECK <name> FAIL <why>
# which test/interop/linux-host.test.ts turns into one test each; everything else
# printed is evidence for a human (command output, dmesg on failure).
#
# Env: SESSION            a = discovery, admin commands, fio, filesystem, stats window
#                         b = digests + 2 I/O queues, two host NQNs, allow list
#      TARGET_ADDR        (default $HOST_IP, the host's 127.0.0.1)
#      TARGET_PORT        required
#      TARGET_NQN         subsystem any host may use
#      RESTRICTED_NQN     subsystem that only ALLOWED_HOSTNQN may use (session b)
#      ALLOWED_HOSTNQN    the host NQN on RESTRICTED_NQN's allow list
#      STATS_SECONDS      length of the timed fio window the host samples nvmf_get_stats in
#      FIO_SIZE           bytes region of the verify phases (default 32M)
#      CMD_TIMEOUT        limit for each command, seconds (default 120)
# Every controller is connected with ctrl_loss_tmo 20 s: a target that drops the
# connection fails the checks in seconds instead of the kernel retrying for 10 min.
set -u
# shellcheck source=lib.sh
source /guest/lib.sh || exit 2
run_timeout=${CMD_TIMEOUT:-120} run_lines=60 dmesg_lines=15
addr=${TARGET_ADDR:-$HOST_IP}
port=${TARGET_PORT:?TARGET_PORT}
nqn=${TARGET_NQN:?TARGET_NQN}
size=${FIO_SIZE:-32M}
stats_s=${STATS_SECONDS:-8}

connect() { # LABEL NQN [nvme connect options...]
	local label=$1 sub=$2
	shift 2
	run_logged "$label" nvme connect -t tcp -a "$addr" -s "$port" -n "$sub" --ctrl-loss-tmo=20 "$@"
}

disconnect_all() {
	nvme disconnect-all >/dev/null 2>&1 || true
}

session_a() {
	local dev ctrl out
	step "discovery"
	if run_logged discover nvme discover -t tcp -a "$addr" -s "$port" &&
		grep -q "subnqn: *$nqn" /tmp/discover.out; then
		pass discover
	else
		dmesg_new
		fail discover "nvme discover did not list $nqn"
	fi

	step "connect (no digests, default I/O queues)"
	if connect connect-plain "$nqn" && dev=$(nvme-wait-ns "$nqn" 20) && ctrl=$(ctrl_of "$nqn"); then
		pass connect-plain
	else
		dmesg_new 30
		fail connect-plain "nvme connect or namespace wait failed"
		not_run "connect-plain failed" nvme-list id-ctrl id-ns smart-log error-log get-feature \
			fio-4k-randwrite-verify fio-128k-seq-verify fio-stats-window ext4-remount disconnect
		return
	fi
	echo "namespace $dev on controller $ctrl"

	step "admin commands"
	if run_logged nvme-list nvme list && grep -q "${dev#/dev/}" /tmp/nvme-list.out; then
		pass nvme-list
	else fail nvme-list "nvme list does not show $dev"; fi

	if run_logged id-ctrl nvme id-ctrl "$ctrl" && grep -q "^subnqn *: *$nqn" /tmp/id-ctrl.out &&
		grep -q '^sn ' /tmp/id-ctrl.out; then
		pass id-ctrl
	else fail id-ctrl "nvme id-ctrl failed or lacks subnqn $nqn"; fi

	if run_logged id-ns nvme id-ns "$dev" && out=$(sed -n 's/^nsze *: *//p' /tmp/id-ns.out) &&
		[ -n "$out" ] && [ $((out)) -gt 0 ]; then
		pass id-ns
	else fail id-ns "nvme id-ns failed or nsze is 0"; fi

	if run_logged smart-log nvme smart-log "$ctrl" && grep -qi 'critical_warning' /tmp/smart-log.out; then
		pass smart-log
	else fail smart-log "nvme smart-log failed"; fi

	if run_logged error-log nvme error-log "$ctrl" -e 4; then
		pass error-log
	else fail error-log "nvme error-log failed"; fi

	# Number of Queues (7) and Keep Alive Timer (0x0f): both mandatory over fabrics.
	if run_logged get-feature-7 nvme get-feature "$ctrl" -f 7 &&
		grep -qi 'current value' /tmp/get-feature-7.out &&
		run_logged get-feature-f nvme get-feature "$ctrl" -f 0x0f; then
		pass get-feature
	else fail get-feature "nvme get-feature -f 7 / -f 0x0f failed"; fi

	step "fio"
	if fio_verify fio-4k-randwrite-verify "$dev" "$size" --rw=randwrite --bs=4k --iodepth=16; then
		pass fio-4k-randwrite-verify
	else
		dmesg_new
		fail fio-4k-randwrite-verify "fio reported an error or a verify mismatch"
	fi

	# Two jobs, each on its own half of the region and its own CPU (so its own I/O queue).
	if fio_verify fio-128k-seq-verify "$dev" 16M --rw=write --bs=128k --iodepth=32 --numjobs=2 \
		--offset_increment=16M --cpus_allowed=0-1 --cpus_allowed_policy=split --group_reporting; then
		pass fio-128k-seq-verify
	else
		dmesg_new
		fail fio-128k-seq-verify "fio reported an error or a verify mismatch"
	fi

	# The host samples nvmf_get_stats while this runs (it waits for the marker line).
	echo "STATS-WINDOW-OPEN"
	if run_logged fio-stats-window fio --name=stats --filename="$dev" --ioengine=libaio --direct=1 \
		--rw=randrw --bs=128k --iodepth=32 --numjobs=2 --size=32M --offset_increment=0 \
		--cpus_allowed=0-1 --cpus_allowed_policy=split --time_based --runtime="$stats_s" \
		--group_reporting --eta=never; then
		pass fio-stats-window
	else fail fio-stats-window "timed fio run failed"; fi
	echo "STATS-WINDOW-CLOSED"

	step "ext4: mkfs, files, unmount, remount"
	if ext4_remount "$dev" 4; then
		pass ext4-remount
	else
		dmesg_new
		fail ext4-remount "mkfs/mount/write/remount/md5sum failed"
	fi

	step "disconnect"
	if run_logged disconnect nvme disconnect -n "$nqn" && grep -q 'disconnected 1 ' /tmp/disconnect.out &&
		! ctrl_of "$nqn" >/dev/null; then
		pass disconnect
	else
		fail disconnect "nvme disconnect did not remove the controller"
		disconnect_all
	fi
}

session_b() {
	local dev ctrl nq
	step "connect --hdr-digest --data-digest -i 2"
	if connect connect-digest "$nqn" --hdr-digest --data-digest -i 2 && dev=$(nvme-wait-ns "$nqn" 20) &&
		ctrl=$(ctrl_of "$nqn"); then
		# queue_count counts the admin queue too
		nq=$(($(cat "/sys/class/nvme/${ctrl#/dev/}/queue_count" 2>/dev/null || echo 0) - 1))
		echo "namespace $dev on $ctrl, $nq I/O queues"
		if [ "$nq" = 2 ]; then pass connect-digest-2q; else fail connect-digest-2q "expected 2 I/O queues, found $nq"; fi
		if fio_verify fio-digest-verify "$dev" 16M --rw=randwrite --bs=16k --iodepth=8 --numjobs=2 \
			--offset_increment=16M --cpus_allowed=0-1 --cpus_allowed_policy=split; then
			pass fio-digest-verify
		else
			dmesg_new
			fail fio-digest-verify "fio over digests failed"
		fi
		# Idle past the keep-alive timeout (kato, 5 s by default): keep-alives must keep it live.
		local kato
		kato=$(cat "/sys/class/nvme/${ctrl#/dev/}/kato" 2>/dev/null || echo 5)
		sleep $((kato * 2 + 2))
		if [ "$(cat "/sys/class/nvme/${ctrl#/dev/}/state")" = live ] &&
			dd if="$dev" of=/dev/null bs=4k count=8 iflag=direct 2>/dev/null; then
			pass keep-alive-idle
		else
			dmesg_new
			fail keep-alive-idle "controller not live or I/O failed after $((kato * 2 + 2)) s idle (kato $kato s)"
		fi
		if run_logged disconnect-digest nvme disconnect -n "$nqn"; then pass disconnect-digest; else fail disconnect-digest "disconnect failed"; fi
	else
		dmesg_new 30
		fail connect-digest-2q "nvme connect with digests failed"
		fail fio-digest-verify "not run: connect failed"
		fail keep-alive-idle "not run: connect failed"
		fail disconnect-digest "not run: connect failed"
		disconnect_all
	fi

	step "two host NQNs on one subsystem at once"
	local h1=nqn.2014-08.org.nvmexpress:uuid:11111111-1111-4111-8111-111111111111
	local h2=nqn.2014-08.org.nvmexpress:uuid:22222222-2222-4222-8222-222222222222
	if connect two-hosts-1 "$nqn" --hostnqn="$h1" --hostid=11111111-1111-4111-8111-111111111111 &&
		fabrics_connect two-hosts-2 "transport=tcp,traddr=$addr,trsvcid=$port,nqn=$nqn,hostnqn=$h2,hostid=22222222-2222-4222-8222-222222222222,ctrl_loss_tmo=20" &&
		c1=$(ctrl_of "$nqn" "$h1") && c2=$(ctrl_of "$nqn" "$h2") && [ "$c1" != "$c2" ] &&
		run_logged two-hosts-id1 nvme id-ctrl "$c1" && run_logged two-hosts-id2 nvme id-ctrl "$c2" &&
		cntlid1=$(sed -n 's/^cntlid *: *//p' /tmp/two-hosts-id1.out) &&
		cntlid2=$(sed -n 's/^cntlid *: *//p' /tmp/two-hosts-id2.out) && [ "$cntlid1" != "$cntlid2" ] &&
		dev=$(nvme-wait-ns "$nqn" 20) && dd if="$dev" of=/dev/null bs=64k count=16 iflag=direct 2>/dev/null; then
		echo "controllers $c1 (cntlid $cntlid1) and $c2 (cntlid $cntlid2), namespace $dev readable"
		pass two-hosts
	else
		dmesg_new
		fail two-hosts "two connects with different host NQNs did not give two live controllers"
	fi
	run_logged list-subsys nvme list-subsys || true
	disconnect_all

	step "allow list"
	local rnqn=${RESTRICTED_NQN:?RESTRICTED_NQN} allowed=${ALLOWED_HOSTNQN:?ALLOWED_HOSTNQN}
	local stranger=nqn.2014-08.org.nvmexpress:uuid:33333333-3333-4333-8333-333333333333
	if connect denied "$rnqn" --hostnqn="$stranger" --hostid=33333333-3333-4333-8333-333333333333; then
		fail host-refused "a host not on the allow list connected to $rnqn"
		disconnect_all
	elif ctrl_of "$rnqn" >/dev/null; then
		fail host-refused "controller for $rnqn exists although connect failed"
	else
		dmesg_new 4
		pass host-refused
	fi
	# Discovery shows a host only the subsystems it may use.
	if run_logged discover-allowed nvme discover -t tcp -a "$addr" -s "$port" --hostnqn="$allowed" \
		--hostid=44444444-4444-4444-8444-444444444444 && grep -q "subnqn: *$rnqn" /tmp/discover-allowed.out &&
		run_logged discover-stranger nvme discover -t tcp -a "$addr" -s "$port" --hostnqn="$stranger" \
			--hostid=33333333-3333-4333-8333-333333333333 && grep -q "subnqn: *$nqn" /tmp/discover-stranger.out &&
		! grep -q "subnqn: *$rnqn" /tmp/discover-stranger.out; then
		pass discovery-filtered-by-host
	else
		fail discovery-filtered-by-host "$rnqn must be listed for $allowed only"
	fi
	if connect allowed "$rnqn" --hostnqn="$allowed" --hostid=44444444-4444-4444-8444-444444444444 &&
		dev=$(nvme-wait-ns "$rnqn" 20) && dd if="$dev" of=/dev/null bs=4k count=8 iflag=direct 2>/dev/null; then
		pass host-allowed
	else
		dmesg_new
		fail host-allowed "the allowed host could not connect to $rnqn"
	fi
	disconnect_all
}

case ${SESSION:-a} in
a) session_a ;;
b) session_b ;;
*) echo "unknown SESSION ${SESSION}" >&2; exit 2 ;;
esac
echo "host-checks: session ${SESSION:-a}: $failures failed"
[ $failures = 0 ]
