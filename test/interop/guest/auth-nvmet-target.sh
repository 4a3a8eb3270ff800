#!/bin/bash
# Guest script (trixie image: kernel 6.12 with CONFIG_NVME_TARGET_AUTH): the kernel's
# target (nvmet) requiring DH-HMAC-CHAP, as the independent target for OUR host library
# (test/interop/host-library-auth.test.ts, which reaches guest port 4420 through a
# forwarded host port). Keys come from `nvme gen-dhchap-key`; the script hands them to
# the test over the control channel and waits there while the test connects.
#   SUBA: HOSTA must authenticate, hmac(sha512), ffdhe8192; nvmet also holds a
#         controller key for it (bidirectional when the host asks)
#   SUBB: HOSTB must authenticate, hmac(sha256), no DH exchange
# Env: CTL_PORT (the test's control channel on the host), SUBA, SUBB, HOSTA, HOSTB.
# Prints CHECK lines for the setup; the host-side checks are the test's.
set -u
# shellcheck source=lib.sh
source /guest/lib.sh || exit 2
host_reply_seconds=500 # the test's answer may take minutes

keyA=$(nvme gen-dhchap-key --hmac=3 --nqn="$HOSTA")
ctrlA=$(nvme gen-dhchap-key --hmac=2 --nqn="$SUBA")
keyB=$(nvme gen-dhchap-key --hmac=1 --nqn="$HOSTB")
echo "== nvmet with DH-HMAC-CHAP: $HOSTA on $SUBA (key $keyA, controller key $ctrlA), $HOSTB on $SUBB (key $keyB)"
if nvmet-setup --nqn "$SUBA" --port 4420 --size-mb 64 --host "$HOSTA" --dhchap-key "$keyA" \
	--dhchap-ctrl-key "$ctrlA" --dhchap-hash 'hmac(sha512)' --dhchap-dhgroup ffdhe8192 &&
	nvmet-setup --nqn "$SUBB" --port 4420 --size-mb 64 --host "$HOSTB" --dhchap-key "$keyB" \
		--dhchap-hash 'hmac(sha256)' --dhchap-dhgroup null; then
	pass nvmet-auth-target
else
	fail nvmet-auth-target "nvmet-setup failed"
fi
for h in /sys/kernel/config/nvmet/hosts/*; do
	echo "  $h: $(cat "$h/dhchap_hash") $(cat "$h/dhchap_dhgroup")"
done

echo "== the test connects with our host library"
seen=$(dmesg | wc -l)
if host_do ready "$keyA" "$ctrlA" "$keyB"; then
	pass host-library-ran
else
	fail host-library-ran "the test did not answer ready"
fi
echo "== what nvmet logged meanwhile"
dmesg | tail -n "+$((seen + 1))" | tail -n 60 | sed 's/^/  dmesg: /'

echo "failures: $failures"
exit $((failures > 0))
