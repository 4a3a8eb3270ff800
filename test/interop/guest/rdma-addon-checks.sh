#!/bin/bash
# Guest script (bookworm image, run-guest -P: the repository is at $PROJECT_DIR): proves
# the RDMA addon over soft-RoCE. Brings up rxe0 on eth0, makes the kernel's nvmet-rdma
# target listen on the guest's own address, then runs rdma-addon-smoke.ts with the
# project's Node.js: it talks NVMe/RDMA to nvmet by hand and RDMA between threads of its
# own (its CHECK lines go straight to the test). Last, the kernel log must show that
# nvmet created a controller for the smoke script's host NQN: the Connect data it
# fetched by RDMA READ from our memory was read whole.
# Each check prints one line
#   CHECK <name> PASS            or   CHECK <name> FAIL <why>
# for test/interop/rdma-addon.test.ts; the rest is evidence for a human.
# Env: RDMA_NQN (the nvmet subsystem), RDMA_PORT (the smoke script's own listener)
set -u
# shellcheck source=lib.sh
source /guest/lib.sh || exit 2
run_lines=30
addr=$GUEST_IP nqn=${RDMA_NQN:-nqn.2016-06.io.nvmf-ts:rdma-addon}
hostnqn="nqn.2014-08.org.nvmexpress:uuid:$(cat /proc/sys/kernel/random/uuid)"

step "soft-RoCE: rxe0 on eth0, the kernel's nvmet-rdma target on $addr:4420"
if rxe_up && run_logged nvmet-rdma nvmet-setup --trtype rdma --nqn "$nqn" --addr "$addr" --port 4420 --size-mb 16; then
	pass rxe-and-nvmet-rdma
else
	dmesg_tail 20
	fail rxe-and-nvmet-rdma "rxe0 or nvmet-rdma did not come up"
fi

step "the addon: node $PROJECT_DIR/test/interop/guest/rdma-addon-smoke.ts (host NQN $hostnqn)"
t0=$(now)
RDMA_NQN=$nqn RDMA_HOSTNQN=$hostnqn timeout 180 node "$PROJECT_DIR/test/interop/guest/rdma-addon-smoke.ts"
rc=$?
echo "  (smoke script exit $rc after $(since "$t0") s)"
if [ $rc = 0 ]; then pass smoke-script-exit; else fail smoke-script-exit "exit $rc"; fi

step "nvmet created a controller for our host NQN (it read our Connect data by RDMA READ)"
dmesg | grep -E 'nvmet(_rdma)?:' | tail -n 8 | sed 's/^/  dmesg: /'
if dmesg | grep -q "nvmet: creating .*controller .* for NQN $hostnqn"; then
	pass nvmet-saw-our-hostnqn
else
	fail nvmet-saw-our-hostnqn "no 'creating controller … for NQN $hostnqn' in the kernel log"
fi

echo "failures: $failures"
exit $((failures > 0))
