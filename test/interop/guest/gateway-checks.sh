#!/bin/bash
# Guest script: the Linux kernel NVMe/TCP host against a gateway. Target B re-exports,
# through its bdev_nvme module, the namespace target A exports. The guest writes a
# pattern through B, reads it back through B, disconnects, then reads the same LBAs
# through A directly. Each check prints exactly one line
#   CHECK <name> PASS            or   CHECK <name> FAIL <why>
# (test/interop/gateway.test.ts turns each into a test); the line
#   PATTERN <md5> <offset-bytes> <length-bytes>
# tells the host side what to read back through A with our host library.
#
# Env: TARGET_ADDR      (default $HOST_IP, the host's 127.0.0.1)
#      A_PORT A_NQN     target A (malloc) and its subsystem
#      B_PORT B_NQN     target B (the gateway) and its subsystem
#      NS_BYTES         expected namespace size in bytes (the same through A and B)
#      PATTERN_OFFSET   byte offset of the pattern (multiple of 1 MiB)
#      PATTERN_MB       pattern length in MiB
#      FAILOVER_MB      when set: a last phase writes this many MiB through B at a
#                       limited rate with crc32c verify, between the lines
#                       FAILOVER-WINDOW-OPEN and FAILOVER-WINDOW-CLOSED; meanwhile
#                       the host kills target A and starts it again
#      CMD_TIMEOUT      limit for each command, seconds (default 120)
set -u
# shellcheck source=lib.sh
source /guest/lib.sh || exit 2
run_timeout=${CMD_TIMEOUT:-120} dmesg_lines=20
addr=${TARGET_ADDR:-$HOST_IP}
a_port=${A_PORT:?A_PORT} a_nqn=${A_NQN:?A_NQN}
b_port=${B_PORT:?B_PORT} b_nqn=${B_NQN:?B_NQN}
ns_bytes=${NS_BYTES:?NS_BYTES}
offset=${PATTERN_OFFSET:-1048576}
mb=${PATTERN_MB:-4}

connect() { # LABEL PORT NQN
	run_logged "$1" nvme connect -t tcp -a "$addr" -s "$2" -n "$3" --ctrl-loss-tmo=20
}
disconnect() { # LABEL NQN: disconnect and see the controller gone
	run_logged "$1" nvme disconnect -n "$2" && ! ctrl_dir "$2" >/dev/null
}

seek=$((offset / 1048576))
head -c $((mb * 1048576)) /dev/urandom >/tmp/pattern
sum=$(md5sum </tmp/pattern | cut -d' ' -f1)

step "through the gateway (target B, $b_nqn on port $b_port)"
if connect connect-b "$b_port" "$b_nqn" && dev=$(nvme-wait-ns "$b_nqn" 20); then
	size=$(blockdev --getsize64 "$dev")
	echo "namespace $dev, $size bytes"
	if [ "$size" = "$ns_bytes" ]; then
		pass gw-connect-b
	else fail gw-connect-b "namespace through B is $size bytes, want $ns_bytes"; fi

	# fio write + crc32c verify in a region apart from the pattern's
	if run_logged gw-fio fio --name=gw --filename="$dev" --ioengine=libaio --direct=1 --rw=randwrite \
		--bs=16k --iodepth=8 --offset=$((offset + mb * 1048576)) --size=8M --verify=crc32c \
		--do_verify=1 --verify_fatal=1 --eta=never && ! grep -qi 'verify.*fail\|bad magic' /tmp/gw-fio.out; then
		pass gw-fio-verify-b
	else
		dmesg_tail
		fail gw-fio-verify-b "fio through B reported an error or a verify mismatch"
	fi

	if run_logged gw-write dd if=/tmp/pattern of="$dev" bs=1M seek="$seek" oflag=direct conv=fsync; then
		pass gw-write-b
	else
		dmesg_tail
		fail gw-write-b "dd of the pattern through B failed"
	fi
	echo "PATTERN $sum $offset $((mb * 1048576))"

	if run_logged gw-readback-b dd if="$dev" of=/tmp/back-b bs=1M skip="$seek" count="$mb" iflag=direct &&
		cmp /tmp/pattern /tmp/back-b; then
		pass gw-readback-b
	else fail gw-readback-b "pattern read back through B differs"; fi

	if disconnect gw-disconnect-b "$b_nqn"; then pass gw-disconnect-b; else
		fail gw-disconnect-b "nvme disconnect did not remove B's controller"
		nvme disconnect-all >/dev/null 2>&1
	fi
else
	dmesg_tail 30
	fail gw-connect-b "nvme connect to B or the namespace wait failed"
	not_run "connect to B failed" gw-fio-verify-b gw-write-b gw-readback-b gw-disconnect-b
fi

step "directly (target A, $a_nqn on port $a_port)"
if connect connect-a "$a_port" "$a_nqn" && dev=$(nvme-wait-ns "$a_nqn" 20); then
	pass gw-connect-a
	if run_logged gw-read-a dd if="$dev" of=/tmp/back-a bs=1M skip="$seek" count="$mb" iflag=direct &&
		cmp /tmp/pattern /tmp/back-a; then
		pass gw-read-a
	else
		cmp /tmp/pattern /tmp/back-a 2>&1 | head -n 3 | sed 's/^/  /'
		fail gw-read-a "the pattern written through B is not what A holds"
	fi
	if disconnect gw-disconnect-a "$a_nqn"; then pass gw-disconnect-a; else
		fail gw-disconnect-a "nvme disconnect did not remove A's controller"
	fi
else
	dmesg_tail 30
	fail gw-connect-a "nvme connect to A or the namespace wait failed"
	not_run "connect to A failed" gw-read-a gw-disconnect-a
fi

if [ -n "${FAILOVER_MB:-}" ]; then
	step "target A killed and restarted under I/O through B"
	if connect connect-failover "$b_port" "$b_nqn" && dev=$(nvme-wait-ns "$b_nqn" 20); then
		pass gw-failover-connect
		echo "FAILOVER-WINDOW-OPEN"
		# 1 MiB/s: the write phase outlasts the host's kill + restart of A; the verify
		# phase then reads every block back through B from the restarted A.
		if run_logged gw-failover-fio fio --name=failover --filename="$dev" --ioengine=libaio --direct=1 \
			--rw=write --bs=64k --iodepth=4 --rate=,1m --offset=$((32 * 1048576)) --size="${FAILOVER_MB}M" \
			--verify=crc32c --do_verify=1 --verify_fatal=1 --eta=never &&
			! grep -qi 'verify.*fail\|bad magic\|crc32c: wanted' /tmp/gw-failover-fio.out; then
			pass gw-failover-fio
		else
			dmesg_tail 30
			fail gw-failover-fio "fio through B failed across A's restart"
		fi
		echo "FAILOVER-WINDOW-CLOSED"
		dmesg | grep -i 'nvme' | tail -n 10 | sed 's/^/  dmesg: /'
		if disconnect gw-failover-disconnect "$b_nqn"; then pass gw-failover-disconnect; else
			fail gw-failover-disconnect "nvme disconnect did not remove B's controller"
		fi
	else
		dmesg_tail 30
		fail gw-failover-connect "nvme connect to B failed"
		not_run "connect to B failed" gw-failover-fio gw-failover-disconnect
	fi
fi

echo "gateway checks: $failures failed"
[ "$failures" = 0 ]
