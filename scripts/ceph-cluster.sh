#!/bin/bash
# A throw-away one-node Ceph cluster on loopback for the rbd tests and benchmarks:
# one monitor, one manager, one bluestore OSD backed by a sparse file, cephx on, the
# pool "rbd" (size 1). Everything lives in DIR; nothing under /etc/ceph or
# /var/lib/ceph is read or written, and nothing is installed (the packages come from
# .ci/run: ceph-mon ceph-mgr ceph-osd ceph-common librbd-dev librados-dev).
#
#   scripts/ceph-cluster.sh start DIR    # prints CEPH_CONF=DIR/ceph.conf when healthy
#   scripts/ceph-cluster.sh stop DIR     # TERM (then KILL) by the daemons' pid files
#   scripts/ceph-cluster.sh status DIR   # exit 0 when every daemon of DIR is alive
#
# Environment: CEPH_V2_PORT / CEPH_V1_PORT (monitor ports, default 3300 / 6789: give
# other ones to run beside another cluster), CEPH_OSD_SIZE (bytes, default 2 GiB,
# sparse), CEPH_START_TIMEOUT (seconds to reach HEALTH_OK, default 120).
# Measured on the 2-CPU machine (docs/scale-out.md): start to HEALTH_OK in 6.3-6.7 s (9-12 s
# under load), about 0.86 GB resident for the three daemons after benchmarks.
#
# Settings that matter (found the hard way, see ../shared/ceph/README.md):
# - rbd default features = layering: with exclusive-lock (Ceph's default) a client
#   that dies holding the lock makes the next writer wait ~30 s for it to expire.
# - the OSD's memory is bounded by a fixed 64 MiB bluestore cache (autotune off) and
#   small rocksdb buffers; osd memory target below 896 MiB is silently ignored.
# - paxos propose interval, mgr stats/tick period, no fsck at mkfs: ~14 s -> ~8 s.
# - HEALTH_OK can come while PGs are still "unknown": wait for all active+clean.
# - mon data avail warn = 2: the default 30 % warns on a fuller disk.
set -euo pipefail

usage() {
	echo "usage: $0 start|stop|status DIR" >&2
	exit 2
}
(($# == 2)) || usage
CMD=$1
DIR=$2
[[ $DIR == /* ]] || DIR=$PWD/$DIR
CONF=$DIR/ceph.conf
DAEMONS=(osd.0 mgr.x mon.a) # stop order

alive() { # NAME -> 0 when its pid file names a live process
	local f=$DIR/run/$1.pid
	[[ -s $f ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

stop_cluster() {
	local n pid i
	for n in "${DAEMONS[@]}"; do
		alive "$n" || continue
		pid=$(cat "$DIR/run/$n.pid")
		kill -TERM "$pid" 2>/dev/null || continue
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			kill -KILL "$pid" 2>/dev/null || true
			echo "ceph-cluster: $n ($pid) killed after 10 s" >&2
		fi
	done
}

case $CMD in
stop)
	stop_cluster
	exit 0
	;;
status)
	for n in "${DAEMONS[@]}"; do alive "$n" || exit 1; done
	exit 0
	;;
start) ;;
*) usage ;;
esac

for tool in ceph ceph-mon ceph-mgr ceph-osd ceph-authtool monmaptool rbd uuidgen; do
	command -v "$tool" >/dev/null || {
		echo "ceph-cluster: $tool not found; install: apt-get install -y --no-install-recommends ceph-mon ceph-mgr ceph-osd ceph-common" >&2
		exit 1
	}
done

V2=${CEPH_V2_PORT:-3300}
V1=${CEPH_V1_PORT:-6789}
OSD_SIZE=${CEPH_OSD_SIZE:-2147483648}
DEADLINE=$((SECONDS + ${CEPH_START_TIMEOUT:-120}))
T0=$(date +%s%N)
step() { echo "ceph-cluster: [$(((($(date +%s%N) - T0) / 1000000)))ms] $*"; }
ceph_() { ceph -c "$CONF" --connect-timeout 15 "$@"; }
until_ok() { # WHAT COMMAND...: retry every 0.25 s until COMMAND succeeds or the deadline
	local what=$1
	shift
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS > DEADLINE)); then
			echo "ceph-cluster: timed out waiting for $what; logs in $DIR/log" >&2
			stop_cluster
			exit 1
		fi
		sleep 0.25
	done
}

for n in "${DAEMONS[@]}"; do
	if alive "$n"; then
		echo "ceph-cluster: $n of $DIR is still running; stop it first" >&2
		exit 1
	fi
done
rm -rf "$DIR"
mkdir -p "$DIR"/{run,log,crash,mon.a,mgr.x,osd.0}
FSID=$(uuidgen)

cat >"$CONF" <<EOF
[global]
fsid = $FSID
mon initial members = a
mon host = [v2:127.0.0.1:$V2,v1:127.0.0.1:$V1]
public network = 127.0.0.0/8
cluster network = 127.0.0.0/8
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
run dir = $DIR/run
admin socket = $DIR/run/\$cluster-\$name.asok
pid file = $DIR/run/\$name.pid
log file = $DIR/log/\$name.log
log to stderr = false
err to stderr = true
crash dir = $DIR/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
mgr initial modules = iostat
ms async op threads = 2
paxos propose interval = 0.1
mgr stats period = 1
mgr tick period = 1

[mon]
mon data = $DIR/mon.\$id
mon cluster log file = $DIR/log/cluster.log

[mgr]
mgr data = $DIR/mgr.\$id

[osd]
osd data = $DIR/osd.\$id
osd objectstore = bluestore
bluestore block create = true
bluestore block size = $OSD_SIZE
bluestore fsck on mount = false
bluestore fsck on mkfs = false
osd memory target = 939524096
bluestore cache autotune = false
bluestore cache size = 67108864
bluestore rocksdb options = compression=kNoCompression,max_write_buffer_number=2,min_write_buffer_number_to_merge=1,recycle_log_file_num=2,write_buffer_size=33554432,writable_file_max_buffer_size=0,compaction_readahead_size=2097152,max_background_compactions=1,max_total_wal_size=134217728
osd op num shards = 2
osd op num threads per shard = 1

[client]
keyring = $DIR/keyring
log file = $DIR/log/client.log
rbd default features = layering
admin socket = $DIR/run/\$cluster-\$name.\$pid.asok
EOF

# monitor: its keyring holds client.admin too, so the first ceph command is authorized
ceph-authtool --create-keyring "$DIR/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n client.admin \
	--cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
ceph-authtool "$DIR/mon.keyring" --import-keyring "$DIR/keyring" >/dev/null
monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:$V2,v1:127.0.0.1:$V1]" "$DIR/monmap" >/dev/null
ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/mon.keyring"
ceph-mon -c "$CONF" -i a # forks; its pid lands in run/mon.a.pid
until_ok "the monitor" ceph_ -s
step "monitor up on 127.0.0.1:$V2/$V1"

ceph_ auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' mds 'allow *' -o "$DIR/mgr.x/keyring"
ceph-mgr -c "$CONF" -i x
step "manager started"

OSD_UUID=$(uuidgen)
OSD_KEY=$(ceph-authtool --gen-print-key)
printf '[osd.0]\n\tkey = %s\n' "$OSD_KEY" >"$DIR/osd.0/keyring"
printf '{"cephx_secret": "%s"}\n' "$OSD_KEY" >"$DIR/osd.0/new.json"
OSD_ID=$(ceph_ osd new "$OSD_UUID" -i "$DIR/osd.0/new.json")
[[ $OSD_ID == 0 ]] || {
	echo "ceph-cluster: the monitor gave osd id $OSD_ID, expected 0" >&2
	stop_cluster
	exit 1
}
# mkfs prints its progress on stderr: keep it in the log unless it fails
if ! ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$OSD_UUID" >"$DIR/log/osd-mkfs.out" 2>&1; then
	cat "$DIR/log/osd-mkfs.out" >&2
	stop_cluster
	exit 1
fi
ceph-osd -c "$CONF" -i 0 2>>"$DIR/log/osd-start.err" # its first lines go to stderr
step "osd started"

osd_up() { ceph_ osd dump | grep -q '^osd.0 up'; }
mgr_available() { ceph_ mgr stat | grep -q '"available": true'; }
until_ok "osd.0 up" osd_up
until_ok "an active manager" mgr_available
step "osd up, manager active"

ceph_ osd pool create rbd 8 8 replicated --size 1 >/dev/null 2>&1 || ceph_ osd pool create rbd 8 8 replicated >/dev/null
rbd -c "$CONF" pool init rbd
step "pool rbd ready"

# placement groups come from the manager's stats, "unknown" for a while after it starts
pgs_clean() {
	local s
	s=$(ceph_ pg stat) || return 1
	[[ $s =~ ^([0-9]+)\ pgs:\ ([0-9]+)\ active\+clean\; ]] && [[ ${BASH_REMATCH[1]} == "${BASH_REMATCH[2]}" ]]
}
healthy() { [[ $(ceph_ health) == HEALTH_OK* ]]; }
until_ok "all placement groups active+clean" pgs_clean
until_ok "HEALTH_OK" healthy
step "HEALTH_OK"
echo "CEPH_CONF=$CONF"
