#!/bin/bash
# Guest script (trixie image: kernel 6.12 with CONFIG_NVME_HOST_AUTH, nvme-cli 2.13):
# the Linux kernel's host authenticating to OUR nvmf_tgt with DH-HMAC-CHAP. Keys come
# from `nvme gen-dhchap-key` here; the target learns them through a control channel
# to the test (host_do, below), which writes them into key files, the target's keyring
# and its subsystems over RPC. Each check prints one line
#   CHECK <name> PASS            or   CHECK <name> FAIL <why>
# for test/interop/linux-host-auth.test.ts; the rest is evidence for a human.
#
# Env: TARGET_PORT   our target's port on the host (reached as $HOST_IP)
#      CTL_PORT      the test's control channel on the host
#      SUB1, SUB2    subsystem NQNs (neither allows any host)
#      HOST1, HOST2  host NQNs: HOST1 for SUB1, HOST2 for SUB2
set -u
# shellcheck source=lib.sh
source /guest/lib.sh || exit 2
run_timeout=90 refused_limit=30
addr=$HOST_IP
port=${TARGET_PORT:?TARGET_PORT}

# all_queues_authenticated SUB DIGEST DHGROUP MIN: the target's qpairs of SUB (at least MIN
# of them) have all completed DH-HMAC-CHAP with DIGEST and DHGROUP
all_queues_authenticated() {
	local out n=0 q
	host_do qpairs "$1" >/tmp/qpairs.out || { cat /tmp/qpairs.out; return 1; }
	cat /tmp/qpairs.out
	out=$(sed -n 's/^  host: qpairs -> ok//p' /tmp/qpairs.out)
	for q in $out; do
		case $q in
		*":completed:$2:$3") n=$((n + 1)) ;;
		*) echo "  queue $q is not completed:$2:$3"; return 1 ;;
		esac
	done
	[ "$n" -ge "$4" ]
}
# nvme connect to our target with 2 I/O queues: nvme connect "${to_target[@]}" -n SUB --hostnqn HOST ...
to_target=(-t tcp -a "$addr" -s "$port" -i 2)

step "the trixie image"
echo "kernel $(uname -r), $(nvme version | head -n1), admin_timeout $(cat /sys/module/nvme_core/parameters/admin_timeout)"
if uname -r | grep -q '^6\.12\.' && nvme version | grep -q 'version 2\.13' &&
	[ "$(cat /sys/module/nvme_core/parameters/admin_timeout)" = 5 ]; then
	pass trixie-image
else
	fail trixie-image "want kernel 6.12, nvme-cli 2.13, admin_timeout 5"
fi

step "keys from nvme gen-dhchap-key, handed to the target"
key1=$(nvme gen-dhchap-key --hmac=3 --nqn="$HOST1")
ctrl1=$(nvme gen-dhchap-key --hmac=2 --nqn="$SUB1")
key1b=$(nvme gen-dhchap-key --hmac=3 --nqn="$HOST1")
wrong1=$(nvme gen-dhchap-key --hmac=3 --nqn="$HOST1")
wrong_ctrl1=$(nvme gen-dhchap-key --hmac=2 --nqn="$SUB1")
key2=$(nvme gen-dhchap-key --hmac=1 --nqn="$HOST2")
# the transcript names the keys' hash ids, never the secrets (they are throwaway, but logs carry no secrets)
echo "host key 1 ${key1:0:10}…, controller key 1 ${ctrl1:0:10}…, rotated host key 1 ${key1b:0:10}…, host key 2 ${key2:0:10}…"
if [[ $key1 == DHHC-1:03:* && $ctrl1 == DHHC-1:02:* && $key2 == DHHC-1:01:* ]] &&
	host_do add-host "$SUB1" "$HOST1" "$key1" "$ctrl1" && host_do add-host "$SUB2" "$HOST2" "$key2"; then
	pass target-keys
else
	fail target-keys "nvme gen-dhchap-key or the target's add-host failed"
fi

step "no secret"
if refused no-secret "$SUB1" nvme connect "${to_target[@]}" -n "$SUB1" --hostnqn "$HOST1"; then
	pass dhchap-no-secret-refused
else
	fail dhchap-no-secret-refused "a host without a secret connected (or took 30 s or more)"
fi
dmesg_new 6

step "a wrong secret (bounded by nvme_core.admin_timeout=5)"
if refused wrong-secret "$SUB1" nvme connect "${to_target[@]}" -n "$SUB1" --hostnqn "$HOST1" --dhchap-secret "$wrong1"; then
	pass dhchap-wrong-secret-refused
else
	fail dhchap-wrong-secret-refused "a wrong secret connected (or took 30 s or more)"
fi
dmesg_new 12

step "the secret: hmac(sha512), ffdhe8192 (the target's strongest), every queue authenticated, fio verify"
t=$(now)
if run_logged connect-1 nvme connect "${to_target[@]}" -n "$SUB1" --hostnqn "$HOST1" --dhchap-secret "$key1" && dev=$(nvme-wait-ns "$SUB1" 20) &&
	ctrl=$(ctrl_dir "$SUB1"); then
	echo "  connected in $(since "$t") s: $dev, $(cat "$ctrl/queue_count") queues"
	dmesg_new >/tmp/dmesg.new
	cat /tmp/dmesg.new
	if grep -q 'qid 0: authenticated with hash hmac(sha512) dhgroup ffdhe8192' /tmp/dmesg.new &&
		all_queues_authenticated "$SUB1" sha512 ffdhe8192 3 && fio_4k_verify fio-sha512 "$dev" 8 150; then
		pass dhchap-sha512-ffdhe8192-fio
	else
		fail dhchap-sha512-ffdhe8192-fio "no 'authenticated with hash hmac(sha512) dhgroup ffdhe8192', a queue the target did not authenticate, or fio failed"
	fi

	step "key rotation: the target's key changes, the host re-authenticates every queue with the new secret"
	# the target counts the transactions that succeeded: every queue must add one
	auth_count() { host_do auth-count | sed -n 's/^  host: auth-count -> ok //p'; }
	before=$(auth_count)
	if host_do set-keys "$SUB1" "$HOST1" "$key1b" "$ctrl1"; then
		t=$(now)
		echo "$key1b" >"$ctrl/dhchap_secret"
		ok=0
		for _ in $(seq 1 300); do
			if dmesg | tail -n "+$((dmesg_seen + 1))" | grep -q 'qid 0: authenticated with hash'; then
				ok=1
				break
			fi
			sleep 0.2
		done
		queues=$(cat "$ctrl/queue_count")
		for _ in $(seq 1 50); do # the I/O queues re-authenticate after the admin queue
			[ $(($(auth_count) - before)) -ge "$queues" ] && break
			sleep 0.2
		done
		after=$(auth_count)
		secret_now=$(cat "$ctrl/dhchap_secret")
		echo "  re-authenticated in $(since "$t") s; the controller's secret is the rotated one: $([ "$secret_now" = "$key1b" ] && echo yes || echo no)"
		echo "  the target counted $((after - before)) successful authentications for $queues queues"
		dmesg_new >/tmp/dmesg.new
		cat /tmp/dmesg.new
		if [ $ok = 1 ] && [ $((after - before)) -ge "$queues" ] && ! grep -q 'authentication failed' /tmp/dmesg.new &&
			[ "$(cat "$ctrl/state")" = live ] && [ "$(cat "$ctrl/dhchap_secret")" = "$key1b" ] &&
			all_queues_authenticated "$SUB1" sha512 ffdhe8192 3 && fio_4k_verify fio-reauth "$dev" 8 150; then
			pass dhchap-reauth-rotated-key
		else
			fail dhchap-reauth-rotated-key "no new 'authenticated' line, fewer target authentications than queues, an authentication failed, the controller is not live, or fio failed"
		fi
	else
		fail dhchap-reauth-rotated-key "the target's set-keys failed"
	fi
	nvme disconnect -n "$SUB1" >/dev/null
else
	dmesg_new
	fail dhchap-sha512-ffdhe8192-fio "nvme connect --dhchap-secret failed"
	fail dhchap-reauth-rotated-key "no controller to re-authenticate"
fi

step "the old secret after the rotation"
if refused old-secret "$SUB1" nvme connect "${to_target[@]}" -n "$SUB1" --hostnqn "$HOST1" --dhchap-secret "$key1"; then
	pass dhchap-old-secret-refused
else
	fail dhchap-old-secret-refused "the secret the target rotated away connected"
fi
dmesg_new 8

step "bidirectional: the host checks the controller's secret too"
if run_logged connect-bidi nvme connect "${to_target[@]}" -n "$SUB1" --hostnqn "$HOST1" --dhchap-secret "$key1b" --dhchap-ctrl-secret "$ctrl1" &&
	dev=$(nvme-wait-ns "$SUB1" 20); then
	dmesg_new >/tmp/dmesg.new
	cat /tmp/dmesg.new
	if grep -q 'qid 0: controller authenticated' /tmp/dmesg.new && all_queues_authenticated "$SUB1" sha512 ffdhe8192 3 &&
		fio_4k_verify fio-bidi "$dev" 8 150; then
		pass dhchap-bidirectional-fio
	else
		fail dhchap-bidirectional-fio "no 'controller authenticated' in the kernel log, or fio failed"
	fi
	nvme disconnect -n "$SUB1" >/dev/null
else
	dmesg_new
	fail dhchap-bidirectional-fio "nvme connect with --dhchap-ctrl-secret failed"
fi

step "bidirectional with a wrong controller secret: the host refuses the target"
if refused wrong-ctrl "$SUB1" nvme connect "${to_target[@]}" -n "$SUB1" --hostnqn "$HOST1" --dhchap-secret "$key1b" --dhchap-ctrl-secret "$wrong_ctrl1" &&
	dmesg | tail -n "+$((dmesg_seen + 1))" | grep -q 'controller authentication failed'; then
	pass dhchap-wrong-ctrl-secret-refused
else
	fail dhchap-wrong-ctrl-secret-refused "the host accepted a controller with another secret (or logged no 'controller authentication failed')"
fi
dmesg_new 8

step "hmac(sha256), no DH exchange (the target allows only those now), fio verify"
if host_do set-config sha256 null && run_logged connect-2 nvme connect "${to_target[@]}" -n "$SUB2" --hostnqn "$HOST2" --dhchap-secret "$key2" &&
	dev=$(nvme-wait-ns "$SUB2" 20); then
	dmesg_new >/tmp/dmesg.new
	cat /tmp/dmesg.new
	if grep -q 'qid 0: authenticated with hash hmac(sha256) dhgroup null' /tmp/dmesg.new &&
		all_queues_authenticated "$SUB2" sha256 null 3 && fio_4k_verify fio-sha256 "$dev" 8 150; then
		pass dhchap-sha256-null-fio
	else
		fail dhchap-sha256-null-fio "no 'authenticated with hash hmac(sha256) dhgroup null', a queue not authenticated, or fio failed"
	fi
	nvme disconnect -n "$SUB2" >/dev/null
else
	dmesg_new
	fail dhchap-sha256-null-fio "set-config or nvme connect --dhchap-secret failed"
fi

echo "failures: $failures"
exit $((failures > 0))
