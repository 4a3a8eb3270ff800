#!/bin/bash
# Guest script: two host identities of the Linux NVMe/TCP host (two controllers of one
# subsystem, different host NQNs and host IDs) against a target outside the guest, driving
# reservations with nvme-cli's resv-* commands, then namespace masking. Each check prints
#   CHECK <name> PASS            or   CHECK <name> FAIL <why>
# which test/interop/reservations.test.ts turns into one test each.
#
# The guest asks the test for what only the host side can do by printing one line
#   REQUEST <what>
# (restart-target, ns-add-host, ns-remove-host) and then waits for its effect, with a limit.
#
# Env: TARGET_ADDR (default $HOST_IP), TARGET_PORT, TARGET_NQN: subsystem with namespace 1
#      (shared, PTPL file) and namespace 2 (no_auto_visible); only its listener on the port.
#      CMD_TIMEOUT limit for each command, seconds (default 60)
#
# With native multipath (Debian's default) both controllers share one /dev/nvmeXn1, so each
# host's commands go through its own controller's character device (/dev/nvmeX -n NSID):
# nvme-cli's resv-* and io-passthru reach exactly that controller and its host ID.
set -u
# shellcheck source=lib.sh
source /guest/lib.sh || exit 2
run_timeout=${CMD_TIMEOUT:-60} dmesg_lines=15
addr=${TARGET_ADDR:-$HOST_IP}
port=${TARGET_PORT:?TARGET_PORT}
nqn=${TARGET_NQN:?TARGET_NQN}
HOST_A=nqn.2014-08.org.nvmexpress:uuid:aaaaaaaa-1111-4111-8111-111111111111
HOSTID_A=aaaaaaaa-1111-4111-8111-111111111111
HOST_B=nqn.2014-08.org.nvmexpress:uuid:bbbbbbbb-2222-4222-8222-222222222222
HOSTID_B=bbbbbbbb-2222-4222-8222-222222222222
KEY_A=0xa1a1
KEY_B=0xb2b2

# field NAME FILE: the value of "NAME : value" in nvme-cli's normal output
field() { sed -n "s/^$1 *: *//p" "$2" | head -n 1; }
report() { # LABEL CTRL: extended Reservation Report of namespace 1 through CTRL
	run_logged "$1" nvme resv-report "$2" -n 1 --eds
}
blk=/tmp/block
head -c 512 /dev/urandom >"$blk"
io() { # LABEL CTRL NSID read|write [LBA]: one block through that controller
	local label=$1 ctrl=$2 nsid=$3 dir=$4 lba=${5:-0}
	if [ "$dir" = write ]; then
		run_logged "$label" nvme io-passthru "$ctrl" --opcode=0x01 --namespace-id="$nsid" --data-len=512 \
			--write --input-file="$blk" --cdw10="$lba" --cdw12=0
	else
		run_logged "$label" nvme io-passthru "$ctrl" --opcode=0x02 --namespace-id="$nsid" --data-len=512 \
			--read --cdw10="$lba" --cdw12=0
	fi
}
# nvme-cli 2.3 prints "NVMe status: Reservation Conflict: ...(0x4083)" (DNR with SC 83h)
CONFLICT_RE='Reservation Conflict\|RESERVATION_CONFLICT\|(0x[04]*83)'
conflict() { grep -qi "$CONFLICT_RE" "/tmp/$1.out"; }
# wait_for SECONDS CMD...: until CMD succeeds (polled every 0.2 s)
wait_for() {
	local limit=$1 i=0
	shift
	while [ $i -lt $((limit * 5)) ]; do
		"$@" && return 0
		sleep 0.2
		i=$((i + 1))
	done
	return 1
}

# has_ns SYSDIR NSID: the controller at SYSDIR has namespace NSID (a path, or a device without multipath)
has_ns() { ls -d "$1"/nvme*c*n"$2" >/dev/null 2>&1 || ls -d "$1"/nvme*n"$2" >/dev/null 2>&1; }
listed() { grep -q ":0x$1\$" "$2"; } # listed NSID FILE: nvme list-ns output names NSID

step "discovery through the NVM subsystem's only listener"
if run_logged discover nvme discover -t tcp -a "$addr" -s "$port" && grep -q "subnqn: *$nqn" /tmp/discover.out; then
	pass discover-nvm-listener
else
	fail discover-nvm-listener "nvme discover on the NVM listener did not list $nqn"
fi

step "two host identities on one subsystem"
if run_logged connect-a nvme connect -t tcp -a "$addr" -s "$port" -n "$nqn" --hostnqn="$HOST_A" \
	--hostid="$HOSTID_A" --ctrl-loss-tmo=60 --reconnect-delay=1 &&
	fabrics_connect fabrics "transport=tcp,traddr=$addr,trsvcid=$port,nqn=$nqn,hostnqn=$HOST_B,hostid=$HOSTID_B,ctrl_loss_tmo=60,reconnect_delay=1" &&
	ca=$(ctrl_of "$nqn" "$HOST_A") && cb=$(ctrl_of "$nqn" "$HOST_B") && [ "$ca" != "$cb" ] &&
	wait_for 20 has_ns "/sys/class/nvme/${ca#/dev/}" 1 && wait_for 20 has_ns "/sys/class/nvme/${cb#/dev/}" 1 &&
	run_logged list-ns-a nvme list-ns "$ca" && run_logged list-ns-b nvme list-ns "$cb"; then
	echo "host A: $ca, host B: $cb"
	pass connect-two-hosts
else
	dmesg_new
	fail connect-two-hosts "could not connect the two host identities"
	echo "reservation-checks: $failures failed"
	exit 1
fi

step "register both hosts (host A asks Persist Through Power Loss)"
if run_logged reg-a nvme resv-register "$ca" -n 1 --nrkey="$KEY_A" --rrega=0 --cptpl=3 &&
	run_logged reg-b nvme resv-register "$cb" -n 1 --nrkey="$KEY_B" --rrega=0 &&
	report report-reg "$cb" && [ "$(field regctl /tmp/report-reg.out)" = 2 ] &&
	[ "$(field rtype /tmp/report-reg.out)" = 0 ] && [ "$(field ptpls /tmp/report-reg.out)" = 1 ] &&
	grep -qi "${HOSTID_A//-/}" /tmp/report-reg.out && grep -qi "${HOSTID_B//-/}" /tmp/report-reg.out; then
	pass register
else
	fail register "want 2 registrants (both host IDs), no reservation, PTPL on"
fi
# registering again with another key is a conflict (the key is the registrant's)
if ! run_logged reg-a-again nvme resv-register "$ca" -n 1 --nrkey=0x1234 --rrega=0 && conflict reg-a-again; then
	pass register-wrong-key-conflict
else
	fail register-wrong-key-conflict "a second registration with another key must be a Reservation Conflict"
fi

step "host A acquires Write Exclusive"
if run_logged acquire-a nvme resv-acquire "$ca" -n 1 --crkey="$KEY_A" --rtype=1 --racqa=0 &&
	report report-acq "$ca" && [ "$(field rtype /tmp/report-acq.out)" = 1 ]; then
	pass acquire-write-exclusive
else
	fail acquire-write-exclusive "want rtype 1 after host A's acquire"
fi
if ! run_logged acquire-b nvme resv-acquire "$cb" -n 1 --crkey="$KEY_B" --rtype=1 --racqa=0 && conflict acquire-b; then
	pass second-acquire-conflict
else
	fail second-acquire-conflict "host B's acquire of a held reservation must be a Reservation Conflict"
fi

step "under Write Exclusive: the holder writes; the other host reads but may not write"
if io write-a "$ca" 1 write 8 && io read-b "$cb" 1 read 8 && ! io write-b "$cb" 1 write 8 && conflict write-b; then
	pass non-holder-write-conflict
else
	dmesg_new 5
	fail non-holder-write-conflict "want: holder write ok, other host read ok, other host write Reservation Conflict"
fi

step "target restart (SIGKILL): the reservation persists (PTPL file)"
echo "REQUEST restart-target"
# the controllers reconnect by themselves (reconnect_delay 1 s); the report through B then
# shows the reservation the new target process restored from the PTPL file
restored() {
	report report-restart "$cb" >/dev/null 2>&1 && [ "$(field rtype /tmp/report-restart.out)" = 1 ] &&
		[ "$(field regctl /tmp/report-restart.out)" = 2 ]
}
# first the old process must be gone: wait for B's controller to leave "live"
wait_for 30 sh -c "[ \"\$(cat /sys/class/nvme/${cb#/dev/}/state)\" != live ]"
if wait_for 60 restored && report report-restart "$cb" && io write-a2 "$ca" 1 write 9 &&
	! io write-b2 "$cb" 1 write 9 && conflict write-b2; then
	pass ptpl-survives-restart
else
	dmesg_new
	fail ptpl-survives-restart "after the restart want rtype 1, 2 registrants, the same conflicts"
fi

step "host B preempts and aborts host A while A writes"
: >/tmp/a-writes
# A's writes run back to back in the background, in four streams so that some are in the
# target when the preempt lands; each result (ok, conflict, other) goes to a file
a_writes() { # STREAM
	local i out=/tmp/a-write-$1.out
	for i in $(seq 1 200); do
		if timeout 10 nvme io-passthru "$ca" --opcode=0x01 --namespace-id=1 --data-len=512 --write \
			--input-file="$blk" --cdw10=$((100 + $1 * 64 + i % 64)) --cdw12=0 >"$out" 2>&1; then
			echo ok >>/tmp/a-writes
		elif grep -qi "$CONFLICT_RE" "$out"; then
			echo conflict >>/tmp/a-writes
		elif grep -qi 'Preempt' "$out"; then
			echo aborted >>/tmp/a-writes # Command Aborted due to Preempt and Abort (a parked one)
		else
			echo "other $(head -c 200 "$out" | tr '\n' ' ')" >>/tmp/a-writes
		fi
	done
}
writers=''
for stream in 0 1 2 3; do
	a_writes $stream &
	writers="$writers $!"
done
wait_for 30 grep -q ok /tmp/a-writes
if run_logged preempt-b nvme resv-acquire "$cb" -n 1 --crkey="$KEY_B" --prkey="$KEY_A" --rtype=1 --racqa=2 &&
	wait_for 30 sh -c '[ "$(tail -n 4 /tmp/a-writes | grep -c conflict)" = 4 ]'; then
	kill $writers 2>/dev/null
	wait $writers 2>/dev/null
	echo "host A's writes: $(grep -c ok /tmp/a-writes) written, $(grep -c conflict /tmp/a-writes) conflicts, $(grep -c aborted /tmp/a-writes) aborted, $(grep -c other /tmp/a-writes) other"
	grep other /tmp/a-writes | head -n 3
	if report report-preempt "$cb" && [ "$(field rtype /tmp/report-preempt.out)" = 1 ] &&
		[ "$(field regctl /tmp/report-preempt.out)" = 1 ] && ! grep -qi "${HOSTID_A//-/}" /tmp/report-preempt.out &&
		io write-b3 "$cb" 1 write 10 && ! grep -q other /tmp/a-writes; then
		pass preempt-and-abort
	else
		fail preempt-and-abort "after preempt-and-abort want host B the only registrant and holder, A's writes refused"
	fi
else
	kill $writers 2>/dev/null
	wait $writers 2>/dev/null
	dmesg_new
	fail preempt-and-abort "host B's preempt-and-abort failed or host A kept writing"
fi

step "release and clear"
if run_logged release-b nvme resv-release "$cb" -n 1 --crkey="$KEY_B" --rtype=1 --rrela=0 &&
	report report-release "$cb" && [ "$(field rtype /tmp/report-release.out)" = 0 ] &&
	io write-a4 "$ca" 1 write 11 &&
	run_logged clear-b nvme resv-release "$cb" -n 1 --crkey="$KEY_B" --rtype=0 --rrela=1 &&
	report report-clear "$cb" && [ "$(field regctl /tmp/report-clear.out)" = 0 ]; then
	pass release-and-clear
else
	fail release-and-clear "release must end the reservation (A writes again), clear every registration"
fi

step "masking: namespace 2 (no_auto_visible) for host A only"
sys_a=/sys/class/nvme/${ca#/dev/}
sys_b=/sys/class/nvme/${cb#/dev/}
if has_ns "$sys_a" 2 || has_ns "$sys_b" 2 || listed 2 /tmp/list-ns-a.out || listed 2 /tmp/list-ns-b.out; then
	fail masked-before "namespace 2 was visible before nvmf_ns_add_host"
else
	pass masked-before
fi
echo "REQUEST ns-add-host"
# no rescan here: the kernel finds namespace 2 by the Namespace Attribute Changed AEN
if wait_for 30 has_ns "$sys_a" 2 && run_logged list-ns-a2 nvme list-ns "$ca" && listed 2 /tmp/list-ns-a2.out; then
	ls -d "$sys_a"/nvme*n2 2>/dev/null
	pass ns-visible-after-add-host
else
	dmesg_new
	fail ns-visible-after-add-host "host A's controller did not get namespace 2 without a reconnect"
fi
# host B: not in its active list, Identify zeroed, no device (the kernel itself then refuses
# I/O to it; the target's refusal is test/integration/reservations.test.ts's)
if run_logged list-ns-b2 nvme list-ns "$cb" && ! listed 2 /tmp/list-ns-b2.out && ! has_ns "$sys_b" 2 &&
	run_logged id-ns-b2 nvme id-ns "$cb" -n 2 && [ "$(field nsze /tmp/id-ns-b2.out)" = 0 ]; then
	pass ns-hidden-from-other-host
else
	fail ns-hidden-from-other-host "host B must not see namespace 2"
fi
echo "REQUEST ns-remove-host"
gone2() { ! has_ns "$sys_a" 2; }
if wait_for 30 gone2; then
	pass ns-gone-after-remove-host
else
	dmesg_new
	fail ns-gone-after-remove-host "namespace 2 stayed on host A after nvmf_ns_remove_host"
fi

nvme disconnect-all >/dev/null 2>&1
echo "reservation-checks: $failures failed"
[ $failures = 0 ]
