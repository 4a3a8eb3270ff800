#!/bin/bash
# Guest script (bookworm image): NVMe-oF over RDMA inside one guest on soft-RoCE. Brings
# up rxe0 on eth0, checks user-space verbs (rping over rdma_cm, ibv_rc_pingpong), then
# the kernel's nvme-rdma host connects to the kernel's nvmet-rdma target on the
# guest's own address and fio verifies. Traffic between two endpoints of one guest
# loops back inside rxe (the host machine has no rxe, so RoCE to 10.0.2.2 cannot
# work): an RDMA target under test runs inside the guest the same way. Each check
# prints one line
#   CHECK <name> PASS            or   CHECK <name> FAIL <why>
# for test/interop/harness-rdma.test.ts; the rest is evidence for a human.
# Env: RDMA_NQN (subsystem NQN)
set -u
# shellcheck source=lib.sh
source /guest/lib.sh || exit 2
run_lines=30 dmesg_lines=30
addr=$GUEST_IP nqn=${RDMA_NQN:-nqn.2016-06.io.nvmf-ts:rdma} port=4420

# server_client LABEL SERVER_CMD CLIENT_CMD: both (strings) succeed; the server starts first
server_client() {
	local label=$1 server=$2 client=$3 spid rc=0
	echo "\$ $server &"
	timeout 60 $server >"/tmp/$label-server.out" 2>&1 &
	spid=$!
	sleep 1
	run_logged "$label-client" $client || rc=1
	wait $spid || rc=1
	sed 's/^/  server: /' "/tmp/$label-server.out" | tail -n 5
	return $rc
}

step "soft-RoCE: rxe0 on eth0"
if rxe_up && run_logged ibv-devinfo ibv_devinfo -d rxe0 &&
	grep -q 'PORT_ACTIVE' /tmp/ibv-devinfo.out; then
	pass rxe-up
else
	dmesg_new
	fail rxe-up "rdma link add or the port state failed"
fi

step "user-space verbs: rping over rdma_cm"
if server_client rping "rping -s -a $addr -C 5" "rping -c -a $addr -C 5 -v" &&
	[ "$(grep -c 'ping data' /tmp/rping-client.out)" = 5 ]; then
	pass verbs-rping
else
	fail verbs-rping "rping did not exchange 5 pings"
fi

step "user-space verbs: ibv_rc_pingpong (RC queue pair, GID of the IPv4 address)"
# rxe lists the IPv4 address as an IPv4-mapped IPv6 GID
mapped=$(echo "$addr" | awk -F. '{ printf "0000:0000:0000:0000:0000:ffff:%02x%02x:%02x%02x", $1, $2, $3, $4 }')
gid=$(for g in /sys/class/infiniband/rxe0/ports/1/gids/*; do
	[ "$(cat "$g" 2>/dev/null)" = "$mapped" ] && echo "${g##*/}"
done | head -n1)
echo "GID index of $addr: ${gid:-none}"
if [ -n "$gid" ] && server_client rc-pingpong "ibv_rc_pingpong -d rxe0 -g $gid -n 100" \
	"ibv_rc_pingpong -d rxe0 -g $gid -n 100 $addr" &&
	grep -q '100 iters' /tmp/rc-pingpong-client.out; then
	pass verbs-rc-pingpong
else
	fail verbs-rc-pingpong "ibv_rc_pingpong did not complete 100 iterations"
fi

step "kernel target: nvmet-rdma on $addr:$port"
if run_logged nvmet-rdma nvmet-setup --trtype rdma --nqn "$nqn" --addr "$addr" --port "$port" --size-mb 64; then
	pass nvmet-rdma-target
else
	dmesg_new
	fail nvmet-rdma-target "nvmet-setup --trtype rdma failed"
fi

step "kernel host: nvme discover -t rdma"
if run_logged discover nvme discover -t rdma -a "$addr" -s "$port" && grep -q "subnqn: *$nqn" /tmp/discover.out &&
	grep -q 'trtype: *rdma' /tmp/discover.out; then
	pass nvme-rdma-discover
else
	dmesg_new
	fail nvme-rdma-discover "the discovery log lacks $nqn over rdma"
fi

step "kernel host: nvme connect -t rdma, fio verify"
if run_logged connect nvme connect -t rdma -a "$addr" -s "$port" -n "$nqn" && dev=$(nvme-wait-ns "$nqn" 20); then
	ctrl=/sys/class/nvme/$(basename "$dev" | sed 's/n[0-9]*$//')
	echo "  $dev, transport $(cat "$ctrl/transport" 2>/dev/null), queues $(cat "$ctrl/queue_count" 2>/dev/null)"
	dmesg_new 6
	if [ "$(cat "$ctrl/transport")" = rdma ] && fio_4k_verify fio-rdma "$dev" 16; then
		pass nvme-rdma-fio-verify
	else
		fail nvme-rdma-fio-verify "not an rdma controller, or fio failed"
	fi
	if run_logged disconnect nvme disconnect -n "$nqn" && grep -q 'disconnected 1 controller' /tmp/disconnect.out; then
		pass nvme-rdma-disconnect
	else
		fail nvme-rdma-disconnect "nvme disconnect failed"
	fi
else
	dmesg_new
	fail nvme-rdma-fio-verify "nvme connect -t rdma failed"
	fail nvme-rdma-disconnect "not connected"
fi

echo "failures: $failures"
exit $((failures > 0))
