#!/bin/bash
# Guest script (trixie image: kernel 6.12, nvme-cli 2.13, tlshd): the Linux host's
# NVMe/TCP secure channel against OUR nvmf_tgt's --secure-channel listener (on the host,
# reached as 10.0.2.2). The PSKs go into the .nvme keyring with nvme-tls-psk (derived as
# the specification and SPDK derive them; nvme-cli 2.13's own derivation differs), tlshd
# does the TLS 1.3 handshake for nvme-tcp. Each check prints one line
#   CHECK <name> PASS            or   CHECK <name> FAIL <why>
# for test/interop/linux-tls.test.ts; the rest is evidence for a human.
#
# Env: TARGET_ADDR, TARGET_PORT  our TLS listener
#      PLAIN_PORT   our plain listener with the discovery subsystem
#      SUB_TLS      the subsystem behind the TLS listener
#      HOST_TLS     host NQN whose PSK (TLS_KEY) the target has
#      HOST_OTHER   host NQN the target allows but has no PSK for
#      TLS_KEY      the interchange key of HOST_TLS; WRONG_KEY another one
set -u
# shellcheck source=lib.sh
source /guest/lib.sh || exit 2
tlshd_seen=0
tlshd_new() {
	local total
	total=$(wc -l </run/tlshd.log)
	tail -n "$((total - tlshd_seen))" /run/tlshd.log | grep -v 'name resolution' | tail -n "${1:-10}" | sed 's/^/  tlshd: /'
	tlshd_seen=$total
}
conn=(-t tcp -a "$TARGET_ADDR" -s "$TARGET_PORT" -n "$SUB_TLS")

step "the trixie image"
echo "kernel $(uname -r), $(nvme version | head -n1), tlshd pid $(cat /run/tlshd.pid 2>/dev/null)"
if uname -r | grep -q '^6\.12\.' && nvme version | grep -q 'version 2\.13' && kill -0 "$(cat /run/tlshd.pid)" &&
	grep -q ' \.nvme: ' /proc/keys && command -v keyctl >/dev/null; then
	pass trixie-image
else
	fail trixie-image "want kernel 6.12, nvme-cli 2.13, tlshd running, the .nvme keyring, keyctl"
fi

step "discovery (plain port $PLAIN_PORT): the TLS port's entry says secure channel required, TLS 1.3"
if run_logged discover nvme discover -t tcp -a "$TARGET_ADDR" -s "$PLAIN_PORT" --hostnqn "$HOST_TLS"; then
	# the entry of SUB_TLS: from its "subnqn:" line back to the entry's start and on to the next
	awk -v want="$SUB_TLS" '/^=====Discovery Log Entry/ { if (keep) print block; block = ""; keep = 0 }
		{ block = block $0 "\n" } $1 == "subnqn:" && $2 == want { keep = 1 }
		END { if (keep) print block }' /tmp/discover.out >/tmp/discover-tls.out
	if grep -Eq '^treq: +required' /tmp/discover-tls.out && grep -Eq '^sectype: +tls13' /tmp/discover-tls.out &&
		grep -Eq "^trsvcid: +$TARGET_PORT\$" /tmp/discover-tls.out; then
		pass discover-tls-entry
	else
		fail discover-tls-entry "no entry for $SUB_TLS on port $TARGET_PORT with treq required and sectype tls13"
	fi
else
	fail discover-tls-entry "nvme discover failed"
fi

step "a plain connect to the TLS listener"
if refused plain "$SUB_TLS" nvme connect "${conn[@]}" --hostnqn "$HOST_TLS"; then
	pass tls-plain-refused
else
	fail tls-plain-refused "a connect without TLS got through"
fi
dmesg_new 6

step "a host without a PSK in the keyring"
if refused nopsk "$SUB_TLS" nvme connect "${conn[@]}" --tls --hostnqn "$HOST_OTHER"; then
	pass tls-no-psk-refused
else
	fail tls-no-psk-refused "a host without a PSK connected"
fi
dmesg_new 6

step "a host whose PSK the target does not have (its identity is unknown there)"
run_logged other-psk nvme-tls-psk --insert "$HOST_OTHER" "$SUB_TLS" "$WRONG_KEY" >/dev/null
tlshd_new 0 >/dev/null
if refused unknown "$SUB_TLS" nvme connect "${conn[@]}" --tls --hostnqn "$HOST_OTHER"; then
	pass tls-unknown-identity-refused
else
	fail tls-unknown-identity-refused "a host the target has no PSK for connected"
fi
tlshd_new
dmesg_new 6

step "the right identity with a wrong PSK"
run_logged wrong-psk nvme-tls-psk --insert "$HOST_TLS" "$SUB_TLS" "$WRONG_KEY" >/dev/null
if refused wrong "$SUB_TLS" nvme connect "${conn[@]}" --tls --hostnqn "$HOST_TLS"; then
	pass tls-wrong-psk-refused
else
	fail tls-wrong-psk-refused "a wrong PSK connected"
fi
tlshd_new
dmesg_new 6

step "the PSK of $HOST_TLS (replaces the wrong one: same identity)"
check_tls_psk_inserted "$HOST_TLS" "$SUB_TLS" "$TLS_KEY"

step "connect --tls (tlshd shakes hands for every queue), fio verify"
handshakes=$(grep -c 'was successful' /run/tlshd.log)
t=$(now)
if run_logged connect nvme connect "${conn[@]}" --tls --hostnqn "$HOST_TLS" -i 2 &&
	dev=$(nvme-wait-ns "$SUB_TLS" 20) && ctrl=$(ctrl_dir "$SUB_TLS"); then
	queues=$(cat "$ctrl/queue_count")
	echo "  connected in $(since "$t") s: $dev, $ctrl/tls_key = $(cat "$ctrl/tls_key" 2>/dev/null), queues $queues"
	dmesg_new 8 | tee /tmp/dmesg.connect
	now_handshakes=$(grep -c 'was successful' /run/tlshd.log)
	echo "  tlshd: $((now_handshakes - handshakes)) successful handshakes"
	if [ "$(cat "$ctrl/tls_key" 2>/dev/null)" = "$(printf '%08x' "${serial:-0}")" ] &&
		[ $((now_handshakes - handshakes)) -ge "$queues" ] && fio_4k_verify fio-tls "$dev" 8; then
		pass tls-connect-fio-verify
	else
		fail tls-connect-fio-verify "tls_key is not the inserted key, tlshd did not shake hands for every queue, or fio failed"
	fi
	# the 6.12 host drops a queue on a NewSessionTicket ("unhandled TLS record 22")
	if dmesg | grep -q 'unhandled TLS record'; then
		dmesg | grep 'unhandled TLS record' | sed 's/^/  /'
		fail tls-no-session-ticket "the host saw a TLS record it does not handle (a session ticket)"
	else
		pass tls-no-session-ticket
	fi
	if nvme disconnect -n "$SUB_TLS" >/dev/null && ! ctrl_dir "$SUB_TLS" >/dev/null; then
		pass tls-disconnect
	else
		fail tls-disconnect "the controller is still there"
	fi
else
	dmesg_new
	tlshd_new 20
	fail tls-connect-fio-verify "nvme connect --tls failed"
	fail tls-no-session-ticket "no TLS connection to look at"
	fail tls-disconnect "nothing connected"
fi

echo "failures: $failures"
exit $((failures > 0))
