#!/bin/bash
# Guest script: the Linux host's NVMe 2.0 controller bring-up against two targets: one that
# does not advertise CAP.CSS bit 6 (I/O command sets; the default, as SPDK without ZNS) and
# one that does (nvmf_set_config cap_css_iocs). Linux writes CC.CSS = 000b to the first and
# 110b to the second; both must come up and do verified I/O.
# Each check prints one line CHECK <name> PASS|FAIL <why> (test/interop/nvme2.test.ts).
#
# Env: TARGET_ADDR (default $HOST_IP), TARGET_NQN, PORT_NVM (no CAP.CSS bit 6),
#      PORT_IOCS (CAP.CSS bit 6), CMD_TIMEOUT (default 60)
set -u
# shellcheck source=lib.sh
source /guest/lib.sh || exit 2
run_timeout=${CMD_TIMEOUT:-60} run_lines=20
addr=${TARGET_ADDR:-$HOST_IP}
nqn=${TARGET_NQN:?TARGET_NQN}
# prop NAME CTRL OFFSET: the property's value (hex digits, no 0x) as nvme-cli 2.3 prints it
prop() {
	run_logged "$1" nvme get-property "$2" --offset="$3" >/dev/null &&
		sed -n 's/.*value: *\(0x\)\{0,1\}\([0-9a-fA-F]*\).*/\2/p' "/tmp/$1.out" | head -n 1
}
# one_target LABEL PORT WANT_CSS WANT_CAP_IOCS: connect, registers, verified I/O, disconnect
one_target() {
	local label=$1 port=$2 want_css=$3 want_iocs=$4 ctrl dev cap cc vs
	step "$label: port $port"
	if ! run_logged "$label-connect" nvme connect -t tcp -a "$addr" -s "$port" -n "$nqn" --ctrl-loss-tmo=20; then
		fail "$label" "nvme connect failed"
		return
	fi
	for d in /sys/class/nvme/nvme*; do
		[ "$(cat "$d/address" 2>/dev/null | sed -n 's/.*trsvcid=\([0-9]*\).*/\1/p')" = "$port" ] && ctrl=/dev/${d##*/}
	done
	dev=$(nvme-wait-ns "$nqn" 20)
	cap=$(prop "$label-cap" "$ctrl" 0x0)
	cc=$(prop "$label-cc" "$ctrl" 0x14)
	vs=$(prop "$label-vs" "$ctrl" 0x8)
	echo "$ctrl $dev: CAP 0x$cap CC 0x$cc VS 0x$vs"
	local css=$(((0x$cc >> 4) & 7)) iocs=$(((0x$cap >> 43) & 1)) crwms=$(((0x$cap >> 59) & 1))
	head -c 262144 /dev/urandom >/tmp/pattern
	if [ -n "$dev" ] && [ "$css" = "$want_css" ] && [ "$iocs" = "$want_iocs" ] && [ "$crwms" = 1 ] &&
		[ "$((0x$vs))" = $((0x20000)) ] && [ $((0x$cc & 1)) = 1 ] &&
		dd if=/tmp/pattern of="$dev" bs=64k oflag=direct 2>/dev/null &&
		dd if="$dev" of=/tmp/back bs=64k count=4 iflag=direct 2>/dev/null && cmp /tmp/pattern /tmp/back; then
		echo "CC.CSS ${css} (want $want_css), CAP.CSS bit 6 = $iocs, CRWMS $crwms, VS 2.0, 256 KiB written and read back"
		pass "$label"
	else
		dmesg_tail 8
		fail "$label" "want CC.CSS $want_css, CAP.CSS bit 6 = $want_iocs, CRWMS, VS 2.0, CC.EN and verified I/O; got CC 0x$cc CAP 0x$cap VS 0x$vs"
	fi
	nvme disconnect -n "$nqn" >/dev/null 2>&1
	# the next target's subsystem has the same NQN: wait until this controller is gone
	local i=0
	while [ -e "/sys/class/nvme/${ctrl#/dev/}" ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
}
one_target css-nvm "${PORT_NVM:?PORT_NVM}" 0 0
one_target css-all-iocs "${PORT_IOCS:?PORT_IOCS}" 6 1
echo "nvme2-checks: $failures failed"
[ $failures = 0 ]
