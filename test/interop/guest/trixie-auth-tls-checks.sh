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
# shellcheck source=lib.sh
source /guest/lib.sh || exit 2
addr=$GUEST_IP

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
if refused dhchap-no-secret "$sub" nvme connect -t tcp -a "$addr" -s 4420 -n "$sub" --hostnqn "$HOST_AUTH"; then
	pass dhchap-no-secret-refused
else
	fail dhchap-no-secret-refused "a host without a secret connected"
fi
dmesg_new 6

step "DH-HMAC-CHAP: connect with a wrong secret"
if refused dhchap-wrong "$sub" nvme connect -t tcp -a "$addr" -s 4420 -n "$sub" --hostnqn "$HOST_AUTH" \
	--dhchap-secret "$wrong_key" && dmesg | grep -q 'host response mismatch'; then
	pass dhchap-wrong-secret-refused
else
	fail dhchap-wrong-secret-refused "a wrong secret connected, or nvmet logged no 'host response mismatch'"
fi
dmesg_new 12

step "DH-HMAC-CHAP: connect with the secret, fio verify"
t=$(now)
if run_logged dhchap-connect nvme connect -t tcp -a "$addr" -s 4420 -n "$sub" --hostnqn "$HOST_AUTH" \
	--dhchap-secret "$key" && dev=$(nvme-wait-ns "$sub" 20) && ctrl=$(ctrl_dir "$sub"); then
	echo "  connected in $(since "$t") s: $dev, $ctrl/dhchap_secret = $(cat "$ctrl/dhchap_secret")"
	dmesg_new >/tmp/dmesg.new
	cat /tmp/dmesg.new
	if [ "$(cat "$ctrl/dhchap_secret")" = "$key" ] &&
		grep -q 'authenticated with hash hmac(sha384) dhgroup ffdhe3072' /tmp/dmesg.new &&
		fio_4k_verify fio-dhchap "$dev" 8; then
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
	if grep -q 'qid 0: controller authenticated' /tmp/dmesg.new && fio_4k_verify fio-dhchap-bidi "$dev" 8; then
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
check_tls_psk_inserted "$HOST_TLS" "$SUB_TLS" "$TLS_KEY"
# read by the test, which derives the same key itself
[ -z "$serial" ] ||
	echo "TLS-PSK $(awk '$1 == "identity" { $1 = ""; print substr($0, 2) }' /tmp/tls-psk.out)|$(awk '$1 == "tls-psk" { print $2 }' /tmp/tls-psk.out)"

step "TLS: nvmet port $addr:4421 requires TLS 1.3"
if run_logged nvmet-tls nvmet-setup --nqn "$SUB_TLS" --addr "$addr" --port 4421 --size-mb 64 --tls \
	--host "$HOST_TLS" --host "$HOST_NOPSK"; then
	pass tls-target
else
	fail tls-target "nvmet-setup --tls failed"
fi

step "TLS: a plain connect to the TLS port"
if refused tls-plain "$sub" nvme connect -t tcp -a "$addr" -s 4421 -n "$sub" --hostnqn "$HOST_TLS"; then
	pass tls-plain-refused
else
	fail tls-plain-refused "a connect without TLS got through"
fi
dmesg_new 6

step "TLS: a host without a PSK in the keyring"
if refused tls-nopsk "$sub" nvme connect -t tcp --tls -a "$addr" -s 4421 -n "$sub" --hostnqn "$HOST_NOPSK"; then
	pass tls-no-psk-refused
else
	fail tls-no-psk-refused "a host without a PSK connected"
fi
dmesg_new 6

step "TLS: connect --tls (tlshd does both handshakes), fio verify"
handshakes=$(grep -c 'was successful' /run/tlshd.log)
t=$(now)
if run_logged tls-connect nvme connect -t tcp --tls -a "$addr" -s 4421 -n "$sub" --hostnqn "$HOST_TLS" &&
	dev=$(nvme-wait-ns "$sub" 20) && ctrl=$(ctrl_dir "$sub"); then
	echo "  connected in $(since "$t") s: $dev, $ctrl/tls_key = $(cat "$ctrl/tls_key"), queues $(cat "$ctrl/queue_count")"
	dmesg_new 8
	now_handshakes=$(grep -c 'was successful' /run/tlshd.log)
	echo "  tlshd: $((now_handshakes - handshakes)) successful handshakes (client and server side of each queue)"
	if [ -n "${serial:-}" ] && [ "$(cat "$ctrl/tls_key")" = "$(printf '%08x' "$serial")" ] &&
		[ $((now_handshakes - handshakes)) -ge $((2 * $(cat "$ctrl/queue_count"))) ] &&
		fio_4k_verify fio-tls "$dev" 8; then
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
