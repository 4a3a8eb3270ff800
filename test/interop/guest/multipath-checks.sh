#!/bin/bash
# Guest script: the Linux kernel host multipathing across two nvmf-ts gateways that
# export one Ceph RBD image under one subsystem NQN and namespace identity, with ANA
# reporting (gateway 1 optimized, gateway 2 non-optimized). Each check prints exactly
#   CHECK <name> PASS            or   CHECK <name> FAIL <why>
# (test/interop/multipath.test.ts turns each into a test). Marker lines tell the host
# side when to sample the gateways' I/O counters and when to act:
#   MP-IO-1-START / MP-IO-1-DONE    fio with gateway 1 preferred
#   MP-FLIP-1                        host: gateway 1 non-optimized, gateway 2 optimized
#   MP-IO-2-START / MP-IO-2-DONE    fio with gateway 2 preferred
#   MP-FLIP-2                        host: back to gateway 1 optimized
#   FAILOVER-WINDOW-OPEN / -CLOSED  fio verify while the host kills gateway 1
#   PATTERN <md5> <offset> <length> written through the surviving path last
#
# Env: TARGET_ADDR (default $HOST_IP), PORT1 PORT2, NQN, NS_BYTES,
#      CNTLID1 CNTLID2 ("min-max" of each gateway), FAILOVER_MB, CMD_TIMEOUT
set -u
# shellcheck source=lib.sh
source /guest/lib.sh || exit 2
run_timeout=${CMD_TIMEOUT:-180} dmesg_lines=20
addr=${TARGET_ADDR:-$HOST_IP}
port1=${PORT1:?PORT1} port2=${PORT2:?PORT2} nqn=${NQN:?NQN}
ns_bytes=${NS_BYTES:?NS_BYTES}

ctrl_of_port() { # PORT: the controller (nvmeN) connected to that port
	local d
	for d in /sys/class/nvme/nvme*; do
		[ "$(cat "$d/subsysnqn" 2>/dev/null)" = "$nqn" ] || continue
		grep -qE "trsvcid=$1(,|\$)" "$d/address" 2>/dev/null && {
			echo "${d##*/}"
			return 0
		}
	done
	return 1
}
path_of_port() { # PORT: the hidden per-path namespace device (nvmeXcYnZ) through that port
	local c p
	c=$(ctrl_of_port "$1") || return 1
	for p in /sys/class/nvme/"$c"/nvme*c*n*; do
		[ -e "$p" ] && {
			echo "${p##*/}"
			return 0
		}
	done
	return 1
}
ana_of_port() { # PORT: that path's ANA state as the host sees it
	local p
	p=$(path_of_port "$1") || return 1
	cat "/sys/block/$p/ana_state"
}
wait_ana() { # PORT STATE SECONDS
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		[ "$(ana_of_port "$1")" = "$2" ] && return 0
		sleep 0.1
	done
	return 1
}
in_range() { # VALUE "MIN-MAX"
	local lo=${2%-*} hi=${2#*-}
	[ "$1" -ge "$lo" ] && [ "$1" -le "$hi" ]
}
mp_fio_verify() { # NAME OFFSET-MiB SIZE-MiB [extra fio args]: fio_verify of 16 KiB random writes on $dev
	fio_verify "$1" "$dev" "${3}M" --rw=randwrite --bs=16k --iodepth=8 --offset=$(($2 * 1048576)) "${@:4}"
}

step "native multipath"
if [ "$(cat /sys/module/nvme_core/parameters/multipath 2>/dev/null)" = Y ]; then
	pass mp-multipath-on
else fail mp-multipath-on "nvme_core.multipath is not Y"; fi

step "connect both gateways ($addr:$port1 and $addr:$port2, $nqn)"
dev=''
if run_logged connect-1 nvme connect -t tcp -a "$addr" -s "$port1" -n "$nqn" --reconnect-delay=2 --ctrl-loss-tmo=60 &&
	run_logged connect-2 nvme connect -t tcp -a "$addr" -s "$port2" -n "$nqn" --reconnect-delay=2 --ctrl-loss-tmo=60 &&
	dev=$(nvme-wait-ns "$nqn" 30) && path_of_port "$port1" >/dev/null && path_of_port "$port2" >/dev/null; then
	pass mp-connect
else
	dmesg_tail 30
	fail mp-connect "connecting both paths failed"
fi

if [ -n "$dev" ]; then
	head=${dev#/dev/}
	# the per-path devices of head nvme<S>n<N> are nvme<S>c<ctrl>n<N>, one under each controller
	sub=${head#nvme}
	sub=${sub%%n*}
	nsid=${head##*n}
	ls -d /sys/class/nvme/nvme*/nvme"${sub}"c*n"${nsid}" 2>&1 | sed 's/^/  /'
	npaths=$(ls -d /sys/class/nvme/nvme*/nvme"${sub}"c*n"${nsid}" 2>/dev/null | wc -l)
	heads=$(ls -d /sys/class/nvme-subsystem/*/nvme*n* 2>/dev/null | wc -l)
	size=$(blockdev --getsize64 "$dev")
	echo "head $dev: $npaths paths, $size bytes; namespace heads in all subsystems: $heads"
	if [ "$npaths" = 2 ] && [ "$heads" = 1 ] && [ "$size" = "$ns_bytes" ]; then
		pass mp-one-namespace
	else
		dmesg_tail 30
		fail mp-one-namespace "want one namespace head of $ns_bytes bytes with 2 paths"
	fi

	c1=$(cat "/sys/class/nvme/$(ctrl_of_port "$port1")/cntlid")
	c2=$(cat "/sys/class/nvme/$(ctrl_of_port "$port2")/cntlid")
	echo "cntlid through gateway 1: $c1 (range ${CNTLID1:-?}), through gateway 2: $c2 (range ${CNTLID2:-?})"
	if in_range "$c1" "${CNTLID1:?}" && in_range "$c2" "${CNTLID2:?}"; then pass mp-cntlid; else
		fail mp-cntlid "controller IDs outside their gateways' ranges"
	fi

	s1=$(ana_of_port "$port1") s2=$(ana_of_port "$port2")
	policy=$(cat /sys/class/nvme-subsystem/*/iopolicy 2>/dev/null | head -n1)
	echo "ANA: gateway 1 $s1, gateway 2 $s2; iopolicy $policy"
	if [ "$s1" = optimized ] && [ "$s2" = non-optimized ]; then pass mp-ana-initial; else
		fail mp-ana-initial "want optimized / non-optimized"
	fi

	step "I/O takes the optimized path (gateway 1)"
	echo "MP-IO-1-START"
	if mp_fio_verify mp-io-1 8 8; then pass mp-io-1; else
		dmesg_tail
		fail mp-io-1 "fio verify failed"
	fi
	echo "MP-IO-1-DONE"

	step "nvmf_subsystem_listener_set_ana_state: gateway 2 preferred"
	echo "MP-FLIP-1"
	if wait_ana "$port1" non-optimized 30 && wait_ana "$port2" optimized 30; then pass mp-ana-follow; else
		dmesg_tail
		fail mp-ana-follow "the host's ANA states are $(ana_of_port "$port1") / $(ana_of_port "$port2")"
	fi
	echo "MP-IO-2-START"
	if mp_fio_verify mp-io-2 16 8; then pass mp-io-2; else
		dmesg_tail
		fail mp-io-2 "fio verify failed"
	fi
	echo "MP-IO-2-DONE"

	step "back to gateway 1 preferred"
	echo "MP-FLIP-2"
	if wait_ana "$port1" optimized 30 && wait_ana "$port2" non-optimized 30; then pass mp-ana-back; else
		fail mp-ana-back "the host's ANA states are $(ana_of_port "$port1") / $(ana_of_port "$port2")"
	fi

	step "gateway 1 killed under fio verify"
	echo "FAILOVER-WINDOW-OPEN"
	# 1 MiB/s: the write phase outlasts the kill; the verify reads everything back through gateway 2
	if mp_fio_verify mp-failover 32 "${FAILOVER_MB:-6}" --rw=write --bs=64k --iodepth=4 --rate=,1m; then
		pass mp-failover-fio
	else
		dmesg_tail 30
		fail mp-failover-fio "fio verify across the loss of gateway 1 failed"
	fi
	echo "FAILOVER-WINDOW-CLOSED"
	dmesg | grep -i nvme | tail -n 12 | sed 's/^/  dmesg: /'
	st1=$(cat "/sys/class/nvme/$(ctrl_of_port "$port1")/state" 2>/dev/null)
	st2=$(cat "/sys/class/nvme/$(ctrl_of_port "$port2")/state" 2>/dev/null)
	echo "controller states: gateway 1 '$st1', gateway 2 '$st2'"
	if [ "$st1" != live ] && [ "$st2" = live ]; then pass mp-path-states; else
		fail mp-path-states "want gateway 1 not live and gateway 2 live"
	fi

	head -c 4194304 /dev/urandom >/tmp/pattern
	if run_logged mp-pattern dd if=/tmp/pattern of="$dev" bs=1M seek=48 oflag=direct conv=fsync; then
		echo "PATTERN $(md5sum </tmp/pattern | cut -d' ' -f1) $((48 * 1048576)) 4194304"
		pass mp-pattern
	else fail mp-pattern "dd through the surviving path failed"; fi

	if run_logged disconnect nvme disconnect -n "$nqn"; then pass mp-disconnect; else
		fail mp-disconnect "nvme disconnect failed"
	fi
else
	not_run "no multipath namespace" mp-one-namespace mp-cntlid mp-ana-initial mp-io-1 mp-ana-follow mp-io-2 \
		mp-ana-back mp-failover-fio mp-path-states mp-pattern mp-disconnect
fi

echo "multipath checks: $failures failed"
[ "$failures" = 0 ]
