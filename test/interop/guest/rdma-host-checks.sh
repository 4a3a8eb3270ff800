#!/bin/bash
# Guest script (bookworm image, run-guest -P: the repository is at $PROJECT_DIR): OUR host
# side over NVMe/RDMA against the Linux kernel's nvmet-rdma target, both in the guest on
# rxe0 (soft-RoCE on eth0): the nvmf CLI (-t rdma: discover, identify, id-ns, write then
# read back 20 KiB and 1 MiB, which nvmet moves by RDMA READ / WRITE of our memory),
# nvmf-perf with a trtype:rdma transport ID, and bdev_nvme_attach_controller -t rdma in our
# nvmf_tgt (nvmet's namespace re-exported over TCP: written there, read at nvmet directly),
# whose bdev_nvme_get_controller_health_info then shows nvmet's SMART / health log.
# Each check prints one line
#   CHECK <name> PASS            or   CHECK <name> FAIL <why>
# for test/interop/rdma-host.test.ts; the rest is evidence for a human.
set -u
# shellcheck source=lib.sh
source /guest/lib.sh || exit 2
# every command: 60 s at most (the dozen commands take about 100 s together), again when it
# dies of a signal (Node under TCG, see rdma-target-checks.sh), its stderr shown apart
run_timeout=60 run_retry=1 run_lines=30 run_stderr_lines=10
addr=$GUEST_IP port=4420 nqn=nqn.2016-06.io.nvmf-ts:rdma-host
nvmf=(node "$PROJECT_DIR/bin/nvmf.mjs")
target=(-t rdma -a "$addr" --trsvcid "$port" --nqn "$nqn")

step "soft-RoCE: rxe0 on eth0, the kernel's nvmet-rdma target on $addr:$port"
if rxe_up && run_logged nvmet-rdma nvmet-setup --trtype rdma --nqn "$nqn" --addr "$addr" --port "$port" --size-mb 64; then
	pass nvmet-rdma-up
else
	dmesg_tail 20
	fail nvmet-rdma-up "rxe0 or nvmet-rdma did not come up"
fi
ulimit -l unlimited

step "nvmf discover -t rdma"
if run_logged discover "${nvmf[@]}" discover -t rdma -a "$addr" -s "$port" -o json &&
	grep -q "\"subnqn\": \"$nqn\"" /tmp/discover.out && grep -q '"trtype": "rdma"' /tmp/discover.out; then
	pass discover-rdma
else fail discover-rdma "nvmf discover -t rdma did not list $nqn as an rdma entry"; fi

step "nvmf identify / id-ns over RDMA"
if run_logged identify "${nvmf[@]}" identify "${target[@]}" -o json &&
	grep -q "\"subnqn\": \"$nqn\"" /tmp/identify.out && grep -q '"mn": "Linux' /tmp/identify.out; then
	pass identify-rdma
else fail identify-rdma "nvmf identify over RDMA failed or lacks the subsystem NQN"; fi
if run_logged id-ns "${nvmf[@]}" id-ns "${target[@]}" -n 1 -o json && grep -q '"nsze": 131072' /tmp/id-ns.out; then
	pass id-ns-rdma
else fail id-ns-rdma "nvmf id-ns over RDMA failed or nsze is not 64 MiB of 512-byte blocks"; fi

step "nvmf write then read back over RDMA (in-capsule for small, RDMA READ / WRITE of our memory)"
for size in 20480 1048576; do
	blocks=$((size / 512))
	head -c "$size" /dev/urandom >"/tmp/in-$size.bin"
	if run_logged "write-$size" "${nvmf[@]}" write "${target[@]}" -n 1 -s 2048 -c $((blocks - 1)) -z "$size" -d "/tmp/in-$size.bin" &&
		run_logged "read-$size" "${nvmf[@]}" read "${target[@]}" -n 1 -s 2048 -c $((blocks - 1)) -z "$size" -d "/tmp/out-$size.bin" &&
		cmp "/tmp/in-$size.bin" "/tmp/out-$size.bin"; then
		pass "write-read-$size"
	else fail "write-read-$size" "the data read back differs or a command failed"; fi
done

step "nvmf-perf over RDMA: 4 KiB randrw, queue depth 16, 3 s"
if run_logged perf node "$PROJECT_DIR/bin/nvmf-perf.mjs" \
	-r "trtype:rdma adrfam:ipv4 traddr:$addr trsvcid:$port subnqn:$nqn" -q 16 -o 4096 -w randrw -M 50 -t 3 --json &&
	grep -q '"errors": 0' /tmp/perf.out && grep -Eq '"ios": [1-9]' /tmp/perf.out; then
	pass perf-rdma
else fail perf-rdma "nvmf-perf over RDMA failed, did no I/O or saw errors"; fi

step "bdev_nvme over RDMA: our nvmf_tgt attaches nvmet-rdma (-t rdma) and exports it over TCP on :4421"
gw=/tmp/gw gwnqn=nqn.2016-06.io.nvmf-ts:rdma-gateway
mkdir -p "$gw"
cat >"$gw/config.json" <<JSON
{ "subsystems": [ { "subsystem": "nvmf", "config": [
  { "method": "nvmf_create_transport", "params": { "trtype": "TCP" } },
  { "method": "nvmf_create_subsystem", "params": { "nqn": "$gwnqn", "allow_any_host": true } },
  { "method": "nvmf_subsystem_add_listener", "params": { "nqn": "$gwnqn",
    "listen_address": { "trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": "4421" } } } ] } ] }
JSON
gw_pid=
for attempt in 1 2 3 4 5 6; do
	node "$PROJECT_DIR/bin/nvmf_tgt.mjs" -m 0x1 -r "$gw/rpc.sock" --json "$gw/config.json" >"$gw/tgt.log" 2>&1 &
	gw_pid=$!
	for _ in $(seq 1 200); do
		[ -S "$gw/rpc.sock" ] && grep -q 'Target Listening' "$gw/tgt.log" && break
		kill -0 "$gw_pid" 2>/dev/null || break
		sleep 0.2
	done
	kill -0 "$gw_pid" 2>/dev/null && [ -S "$gw/rpc.sock" ] && break
	echo "  nvmf_tgt start $attempt failed (Node under TCG, see rdma-target-checks.sh)"
	rm -f "$gw/rpc.sock"
done
grpc=(node "$PROJECT_DIR/bin/nvmf-rpc.mjs" -s "$gw/rpc.sock")
size=65536
head -c "$size" /dev/urandom >/tmp/gw-in.bin
if run_logged gw-attach "${grpc[@]}" bdev_nvme_attach_controller -b Rdma0 -t rdma -a "$addr" -s "$port" -f ipv4 -n "$nqn" &&
	grep -q Rdma0n1 /tmp/gw-attach.out &&
	run_logged gw-add-ns "${grpc[@]}" nvmf_subsystem_add_ns "$gwnqn" Rdma0n1 &&
	run_logged gw-write "${nvmf[@]}" write -t tcp -a 127.0.0.1 --trsvcid 4421 --nqn "$gwnqn" -n 1 -s 8192 -c 127 -z "$size" -d /tmp/gw-in.bin &&
	run_logged gw-read "${nvmf[@]}" read "${target[@]}" -n 1 -s 8192 -c 127 -z "$size" -d /tmp/gw-out.bin &&
	cmp /tmp/gw-in.bin /tmp/gw-out.bin; then
	pass bdev-nvme-rdma-gateway
else
	tail -n 15 "$gw/tgt.log" | sed 's/^/  gw: /'
	fail bdev-nvme-rdma-gateway "attach -t rdma, the re-export, or the data written through it and read at nvmet directly"
fi
step "bdev_nvme_get_controller_health_info: nvmet's SMART / health log through our gateway"
if run_logged gw-health "${grpc[@]}" bdev_nvme_get_controller_health_info -c Rdma0 &&
	grep -q '"model_number": "Linux"' /tmp/gw-health.out && grep -Eq '"host_write_commands": [1-9]' /tmp/gw-health.out; then
	pass gw-health-info
else fail gw-health-info "the gateway's health info of nvmet's controller lacks its model number or the writes made"; fi
kill "$gw_pid" 2>/dev/null
wait "$gw_pid" 2>/dev/null

step "nvmet saw our controllers"
dmesg | grep -E 'nvmet(_rdma)?:' | tail -n 6 | sed 's/^/  dmesg: /'
if dmesg | grep -q 'nvmet: creating .*controller'; then pass nvmet-controllers; else fail nvmet-controllers "no controller in the kernel log"; fi
echo "failures: $failures"
exit $((failures > 0))
