#!/bin/bash
# Guest script (trixie image: kernel 6.12, nvme-cli 2.13, tlshd): the kernel's own
# target (nvmet) and host (nvme-tcp) in one guest, on the guest's address, with
# DH-HMAC-CHAP in-band authentication and with TLS 1.3. Proves the trixie flavour
# without nvmf-ts. Each check prints one line
#   CHECK <name> PASS            or   CHECK <name> FAIL <why>
# for test/interop/harness-trixie.test.ts; the rest is evidence for a human.
#
# Env: HOST_AUTH   host NQN that must authenticate to SUB_AUTH (port 4420)
#      HOST_TLS    host NQN whose TLS PSK is in the keyring, for SUB_TLS (port 4421)
#      HOST_NOPSK  host NQN allowed on SUB_TLS without a PSK in the keyring
#      SUB_AUTH, SUB_TLS  subsystem NQNs
#      TLS_KEY     PSK interchange key (NVMeTLSkey-1:01:...:) for HOST_TLS and SUB_TLS
set -u
addr=$GUEST_IP
failures=0

pass() { echo "CHECK $1 PASS"; }
fail() {
	echo "CHECK $1 FAIL ${*:2}"
	failures=$((failures + 1))
}
step() { echo "== $*"; }
now() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# run_logged NAME CMD...: runs CMD (60 s at most), shows its output, keeps it in /tmp/NAME.out
run_logged() {
	local name=$1 rc
	shift
	echo "\$ $*"
	timeout 60 "$@" >"/tmp/$name.out" 2>&1
	rc=$?
	sed 's/^/  /' "/tmp/$name.out" | head -n 40
	[ $rc = 0 ] || echo "  (exit $rc)"
	return $rc
}
# kernel messages logged since the previous call (all of them, or the last N)
dmesg_seen=$(dmesg | wc -l)
dmesg_new() {
	local total
	total=$(dmesg | wc -l)
	dmesg | tail -n "$((total - dmesg_seen))" | tail -n "${1:-40}" | sed 's/^/  dmesg: /'
	dmesg_seen=$total
}
ctrl_of() { # NQN: the sysfs folder of a live controller of NQN
	local d
	for d in /sys/class/nvme/nvme*; do
		[ "$(cat "$d/subsysnqn" 2>/dev/null)" = "$1" ] && { echo "$d"; return 0; }
	done
	return 1
}
# fio_verify LABEL DEV: 8 MiB of 4 KiB random writes, then all read back with crc32c
# verify; prints fio's IOPS lines (all its output on failure)
fio_verify() {
	local rc=0
	echo "\$ fio $1: 8 MiB 4 KiB randwrite + crc32c verify on $2"
	timeout 120 fio --name="$1" --filename="$2" --rw=randwrite --bs=4k --size=8M --iodepth=16 \
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
# refused LABEL CMD...: CMD must fail and leave no controller of the subsystem in $sub
refused() {
	local label=$1 t
	shift
	t=$(now)
	if run_logged "$label" "$@"; then
		echo "  connected after $(since "$t") s"
		nvme disconnect -n "$sub" >/dev/null 2>&1
		return 1
	fi
	echo "  refused after $(since "$t") s"
	! ctrl_of "$sub" >/dev/null
}

step "the trixie image"
admin_timeout=$(cat /sys/module/nvme_core/parameters/admin_timeout)
echo "kernel $(uname -r), $(nvme version | head -n1), tlshd pid $(cat /run/tlshd.pid 2>/dev/null), admin_timeout $admin_timeout"
grep ' \.nvme: ' /proc/keys | sed 's/^/  /'
if [ "$(cat /etc/nvmf-interop/flavour)" = trixie ] && uname -r | grep -q '^6\.12\.' &&
	nvme version | grep -q 'version 2\.13' && kill -0 "$(cat /run/tlshd.pid)" &&
	grep -qx 'keyrings=.nvme' /etc/tlshd.conf && grep -q ' \.nvme: ' /proc/keys &&
	[ "$admin_timeout" = 5 ] && command -v openssl >/dev/null && command -v keyctl >/dev/null; then
	pass trixie-image
else
	fail trixie-image "want kernel 6.12, nvme-cli 2.13, tlshd running with keyrings=.nvme, the .nvme keyring, admin_timeout 5, openssl, keyctl"
fi

step "DH-HMAC-CHAP: nvmet requires it of $HOST_AUTH on $addr:4420 (hmac(sha384), ffdhe3072, controller key too)"
sub=$SUB_AUTH
key=$(nvme gen-dhchap-key --hmac=1 --nqn="$HOST_AUTH")
ctrl_key=$(nvme gen-dhchap-key --hmac=2 --nqn="$SUB_AUTH")
wrong_key=$(nvme gen-dhchap-key --hmac=1 --nqn="$HOST_AUTH")
echo "host key $key, controller key $ctrl_key"
if [[ $key == DHHC-1:01:* && $ctrl_key == DHHC-1:02:* && $wrong_key != "$key" ]] &&
	run_logged nvmet-auth nvmet-setup --nqn "$SUB_AUTH" --addr "$addr" --port 4420 --size-mb 64 \
		--host "$HOST_AUTH" --dhchap-key "$key" --dhchap-ctrl-key "$ctrl_key" \
		--dhchap-hash 'hmac(sha384)' --dhchap-dhgroup ffdhe3072; then
	pass dhchap-target
else
	fail dhchap-target "nvme gen-dhchap-key or nvmet-setup failed"
fi

step "DH-HMAC-CHAP: connect without a secret"
if refused dhchap-no-secret nvme connect -t tcp -a "$addr" -s 4420 -n "$sub" --hostnqn "$HOST_AUTH"; then
	pass dhchap-no-secret-refused
else
	fail dhchap-no-secret-refused "a host without a secret connected"
fi
dmesg_new 6

step "DH-HMAC-CHAP: connect with a wrong secret"
if refused dhchap-wrong nvme connect -t tcp -a "$addr" -s 4420 -n "$sub" --hostnqn "$HOST_AUTH" \
	--dhchap-secret "$wrong_key" && dmesg | grep -q 'host response mismatch'; then
	pass dhchap-wrong-secret-refused
else
	fail dhchap-wrong-secret-refused "a wrong secret connected, or nvmet logged no 'host response mismatch'"
fi
dmesg_new 12

step "DH-HMAC-CHAP: connect with the secret, fio verify"
t=$(now)
if run_logged dhchap-connect nvme connect -t tcp -a "$addr" -s 4420 -n "$sub" --hostnqn "$HOST_AUTH" \
	--dhchap-secret "$key" && dev=$(nvme-wait-ns "$sub" 20) && ctrl=$(ctrl_of "$sub"); then
	echo "  connected in $(since "$t") s: $dev, $ctrl/dhchap_secret = $(cat "$ctrl/dhchap_secret")"
	dmesg_new >/tmp/dmesg.new
	cat /tmp/dmesg.new
	if [ "$(cat "$ctrl/dhchap_secret")" = "$key" ] &&
		grep -q 'authenticated with hash hmac(sha384) dhgroup ffdhe3072' /tmp/dmesg.new &&
		fio_verify fio-dhchap "$dev"; then
		pass dhchap-connect-fio-verify
	else
		fail dhchap-connect-fio-verify "no 'authenticated with hash hmac(sha384) dhgroup ffdhe3072', wrong dhchap_secret, or fio failed"
	fi
	nvme disconnect -n "$sub" >/dev/null
else
	dmesg_new
	fail dhchap-connect-fio-verify "nvme connect --dhchap-secret failed"
fi

step "DH-HMAC-CHAP: bidirectional (the host checks the controller's key too)"
if run_logged dhchap-bidi nvme connect -t tcp -a "$addr" -s 4420 -n "$sub" --hostnqn "$HOST_AUTH" \
	--dhchap-secret "$key" --dhchap-ctrl-secret "$ctrl_key" && dev=$(nvme-wait-ns "$sub" 20); then
	dmesg_new >/tmp/dmesg.new
	cat /tmp/dmesg.new
	if grep -q 'qid 0: controller authenticated' /tmp/dmesg.new && fio_verify fio-dhchap-bidi "$dev"; then
		pass dhchap-bidirectional
	else
		fail dhchap-bidirectional "no 'controller authenticated' in the kernel log, or fio failed"
	fi
	nvme disconnect -n "$sub" >/dev/null
else
	dmesg_new
	fail dhchap-bidirectional "nvme connect with --dhchap-ctrl-secret failed"
fi

step "TLS: the PSK for $HOST_TLS and $SUB_TLS, derived as the specification does"
sub=$SUB_TLS
if run_logged tls-psk nvme-tls-psk --insert "$HOST_TLS" "$SUB_TLS" "$TLS_KEY"; then
	serial=$(awk '$1 == "key" { print $2 }' /tmp/tls-psk.out)
	# read by the test, which derives the same key itself
	echo "TLS-PSK $(awk '$1 == "identity" { $1 = ""; print substr($0, 2) }' /tmp/tls-psk.out)|$(awk '$1 == "tls-psk" { print $2 }' /tmp/tls-psk.out)"
	grep -E ' psk +NVMe0R01 ' /proc/keys | sed 's/^/  /'
	if [ -n "$serial" ] && grep -q "^$(printf '%08x' "$serial") .* psk  *NVMe0R01 $HOST_TLS $SUB_TLS: 32\$" /proc/keys; then
		pass tls-psk-inserted
	else
		fail tls-psk-inserted "no psk key 'NVMe0R01 $HOST_TLS $SUB_TLS' of 32 bytes in /proc/keys"
	fi
else
	fail tls-psk-inserted "nvme-tls-psk --insert failed"
fi

step "TLS: nvmet port $addr:4421 requires TLS 1.3"
if run_logged nvmet-tls nvmet-setup --nqn "$SUB_TLS" --addr "$addr" --port 4421 --size-mb 64 --tls \
	--host "$HOST_TLS" --host "$HOST_NOPSK"; then
	pass tls-target
else
	fail tls-target "nvmet-setup --tls failed"
fi

step "TLS: a plain connect to the TLS port"
if refused tls-plain nvme connect -t tcp -a "$addr" -s 4421 -n "$sub" --hostnqn "$HOST_TLS"; then
	pass tls-plain-refused
else
	fail tls-plain-refused "a connect without TLS got through"
fi
dmesg_new 6

step "TLS: a host without a PSK in the keyring"
if refused tls-nopsk nvme connect -t tcp --tls -a "$addr" -s 4421 -n "$sub" --hostnqn "$HOST_NOPSK"; then
	pass tls-no-psk-refused
else
	fail tls-no-psk-refused "a host without a PSK connected"
fi
dmesg_new 6

step "TLS: connect --tls (tlshd does both handshakes), fio verify"
handshakes=$(grep -c 'was successful' /run/tlshd.log)
t=$(now)
if run_logged tls-connect nvme connect -t tcp --tls -a "$addr" -s 4421 -n "$sub" --hostnqn "$HOST_TLS" &&
	dev=$(nvme-wait-ns "$sub" 20) && ctrl=$(ctrl_of "$sub"); then
	echo "  connected in $(since "$t") s: $dev, $ctrl/tls_key = $(cat "$ctrl/tls_key"), queues $(cat "$ctrl/queue_count")"
	dmesg_new 8
	now_handshakes=$(grep -c 'was successful' /run/tlshd.log)
	echo "  tlshd: $((now_handshakes - handshakes)) successful handshakes (client and server side of each queue)"
	if [ -n "${serial:-}" ] && [ "$(cat "$ctrl/tls_key")" = "$(printf '%08x' "$serial")" ] &&
		[ $((now_handshakes - handshakes)) -ge $((2 * $(cat "$ctrl/queue_count"))) ] &&
		fio_verify fio-tls "$dev"; then
		pass tls-connect-fio-verify
	else
		fail tls-connect-fio-verify "tls_key is not the inserted key, tlshd did not shake hands for every queue on both sides, or fio failed"
	fi
	nvme disconnect -n "$sub" >/dev/null
else
	dmesg_new
	sed 's/^/  tlshd: /' /run/tlshd.log | tail -n 20
	fail tls-connect-fio-verify "nvme connect --tls failed"
fi

echo "failures: $failures"
exit $((failures > 0))
