#!/bin/bash
# setup: install the Debian packages the harness needs and build the guest image
# (kernel + initramfs with busybox, bash, nvme-cli, fio, kmod and the NVMe/TCP
# modules) into $NVMF_INTEROP_CACHE. Idempotent: it rebuilds only when an input
# changed (packages, this folder's scripts) or with --force.
set -euo pipefail
NI_PROG=setup-interop
# shellcheck source=../test/interop/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../test/interop/lib/common.sh"
SELF=$(realpath "${BASH_SOURCE[0]}")

usage() {
	cat <<EOF
usage: scripts/setup-interop.sh [--force]
  Installs: ${PKGS[*]}
  Builds:   \$NVMF_INTEROP_CACHE (now $NI_CACHE)/{vmlinuz,initramfs.img,manifest}
EOF
}

PKGS=(qemu-system-x86 linux-image-amd64 nvme-cli fio busybox-static kmod cpio xz-utils e2fsprogs)
# Modules copied into the guest (their modules.dep dependencies come along).
MODULES=(virtio_pci virtio_net virtio_rng e1000 configfs crc32c_generic crc32c_intel
	libcrc32c nvme_core nvme_fabrics nvme_tcp nvmet nvmet_tcp null_blk brd loop ext4)
REQUIRED_MODULES=(nvme_tcp nvmet_tcp null_blk virtio_net)
# Programs copied into the guest with the shared libraries ldd finds for them.
PROGRAMS=(/usr/sbin/nvme /usr/bin/fio /usr/bin/bash /usr/bin/kmod /usr/sbin/mke2fs /usr/sbin/e2fsck)
COMPRESS=${NVMF_INTEROP_COMPRESS:-none} # none | gzip | zstd (none boots fastest under TCG)

force=0
case ${1:-} in
--force) force=1 ;;
'') ;;
-h | --help) usage; exit 0 ;;
*) usage >&2; exit 2 ;;
esac
[[ $COMPRESS =~ ^(gzip|zstd|none)$ ]] || ni_die "NVMF_INTEROP_COMPRESS must be none, gzip or zstd"
((EUID == 0)) || ni_die "must run as root (apt-get, /var/cache)"
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
missing=()
for p in "${PKGS[@]}"; do
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
	ni_log "packages already installed: ${PKGS[*]}"
fi
if [[ $COMPRESS == zstd ]] && ! command -v zstd >/dev/null; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends zstd >/dev/null
fi

# 2. The Debian kernel the guest boots: the one linux-image-amd64 points at.
KVER=${NVMF_INTEROP_KVER:-$(dpkg-query -W -f='${Depends}' linux-image-amd64 | grep -o 'linux-image-[^ ,]*' | head -n1 | sed 's/^linux-image-//')}
[[ -n $KVER && -r /boot/vmlinuz-$KVER && -r /lib/modules/$KVER/modules.dep ]] ||
	ni_die "kernel '$KVER' not found in /boot and /lib/modules"
MODDIR=/lib/modules/$KVER

# 3. Up to date? The stamp covers package versions, module list and our own files.
stamp=$(
	{
		echo "$KVER $COMPRESS ${MODULES[*]}"
		dpkg-query -W -f='${Package} ${Version}\n' "linux-image-$KVER" nvme-cli fio busybox-static \
			kmod bash libc6 libnvme1 e2fsprogs 2>/dev/null
		sha256sum <"$SELF"
		cd "$NI_DIR" && sha256sum common.sh guest/init guest/bin/*
	} | sha256sum | cut -d' ' -f1
)
if ((!force)) && [[ -r $NI_CACHE/stamp && $(cat "$NI_CACHE/stamp") == "$stamp" &&
	-r $NI_CACHE/vmlinuz && -r $NI_CACHE/initramfs.img ]]; then
	ni_log "guest image up to date in $NI_CACHE (kernel $KVER); --force rebuilds"
	ni_log "done in $(ni_since "$t0") s"
	exit 0
fi

# 4. Build the initramfs tree in a scratch folder inside the cache.
t=$(ni_now)
build=$NI_CACHE/build
rm -rf "$build"
root=$build/root
mkdir -p "$root"/usr/{bin,sbin,lib,lib64} "$root"/{dev,proc,sys,tmp,run,root,guest,etc/nvme,usr/local/bin}
for l in bin sbin lib lib64; do ln -s "usr/$l" "$root/$l"; done # merged /usr, like the host

# Copy a host file to the same path in the guest, following symlinks.
put() { [[ -e $root$1 ]] || install -D -m "${2:-755}" "$(readlink -f "$1")" "$root$1"; }

# busybox applets as symlinks, except names that real programs take below
install -m755 /bin/busybox "$root/usr/bin/busybox"
for a in $(/bin/busybox --list); do
	case $a in busybox | bash | modprobe | insmod | rmmod | lsmod | depmod | modinfo) continue ;; esac
	ln -s busybox "$root/usr/bin/$a"
done

# programs and their shared libraries
libs=()
for p in "${PROGRAMS[@]}"; do
	put "$p"
	deps=$(ldd "$p")
	[[ $deps == *'not found'* ]] && ni_die "$p: missing shared libraries: $deps"
	while read -r lib; do libs+=("$lib"); done < <(awk '/=> \//{ print $3 } /^\t\/.*ld-linux/{ print $1 }' <<<"$deps")
done
mapfile -t libs < <(printf '%s\n' "${libs[@]}" | sort -u)
for lib in "${libs[@]}"; do put "$lib"; done
for tool in modprobe insmod rmmod lsmod depmod modinfo; do ln -s ../bin/kmod "$root/usr/sbin/$tool"; done
for fs in mkfs.ext4 mkfs.ext2; do ln -sf mke2fs "$root/usr/sbin/$fs"; done
put /etc/mke2fs.conf 644

# kernel modules: each requested module plus what modules.dep says it needs
nmods=0
for m in "${MODULES[@]}"; do
	deps=$(modprobe -S "$KVER" --show-depends "$m" 2>/dev/null) || {
		[[ " ${REQUIRED_MODULES[*]} " == *" $m "* ]] && ni_die "module $m missing from $MODDIR"
		ni_log "warning: module $m not available for $KVER, skipped"
		continue
	}
	while read -r kind path _; do
		[[ $kind == insmod && ! -e $root$path ]] || continue
		install -D -m644 "$path" "$root$path"
		nmods=$((nmods + 1))
	done <<<"$deps"
done
cp "$MODDIR"/modules.{order,builtin,builtin.modinfo} "$root$MODDIR/"
depmod -b "$root" "$KVER" # regenerate modules.dep & co. for this subset

# small config files; the init and helpers come from guest/ (run also refreshes them)
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
ln -s /proc/mounts "$root/etc/mtab"
install -m755 "$NI_DIR/guest/init" "$root/init"
for f in "$NI_DIR"/guest/bin/*; do install -m755 "$f" "$root/usr/local/bin/"; done

# 5. Pack: newc cpio, optional compression, padded to 512 bytes so per-run overlays
#    can be appended. Install atomically.
case $COMPRESS in
gzip) comp=(gzip -6 -n) ;;
zstd) comp=(zstd -q -T0 -10) ;;
none) comp=(cat) ;;
esac
(cd "$root" && find . -mindepth 1 | sort | cpio -o -H newc -R 0:0 --quiet --reproducible) |
	"${comp[@]}" >"$build/initramfs.img"
truncate -s %512 "$build/initramfs.img"
cp "/boot/vmlinuz-$KVER" "$build/vmlinuz"
# Also the uncompressed ELF kernel (for PVH boot under TCG): the XZ payload of the bzImage.
vmlinux=no
off=$(grep -abo $'\xfd7zXZ' "$build/vmlinuz" | head -n1 | cut -d: -f1 || true)
if [[ -n $off ]] && grep -q '^CONFIG_PVH=y' "/boot/config-$KVER"; then
	tail -c +"$((off + 1))" "$build/vmlinuz" | xz -dc >"$build/vmlinux" 2>/dev/null || true # trailing data: xz complains
	if [[ $(head -c 4 "$build/vmlinux") == $'\x7fELF' ]]; then
		vmlinux=yes
	else
		rm -f "$build/vmlinux"
	fi
fi
{
	echo "kernel: $KVER"
	echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "compression: $COMPRESS"
	echo "pvh-vmlinux: $vmlinux"
	echo "initramfs-bytes: $(stat -c %s "$build/initramfs.img")"
	echo "tree-bytes: $(du -sb "$root" | cut -f1)"
	dpkg-query -W -f='package: ${Package} ${Version}\n' "linux-image-$KVER" nvme-cli fio busybox-static kmod bash
	echo "modules: $(cd "$root$MODDIR" && find kernel -name '*.ko*' | sed 's|.*/||; s|\.ko.*||' | sort | tr '\n' ' ')"
	echo "libraries: ${#libs[@]}"
} >"$build/manifest"
mv -f "$build/vmlinuz" "$NI_CACHE/vmlinuz"
if [[ $vmlinux == yes ]]; then mv -f "$build/vmlinux" "$NI_CACHE/vmlinux"; else rm -f "$NI_CACHE/vmlinux"; fi
mv -f "$build/initramfs.img" "$NI_CACHE/initramfs.img"
mv -f "$build/manifest" "$NI_CACHE/manifest"
echo "$stamp" >"$NI_CACHE/stamp"
rm -rf "$build"

size=$(du -h "$NI_CACHE/initramfs.img" | cut -f1)
ni_log "built guest image for kernel $KVER in $(ni_since "$t") s: initramfs $size ($COMPRESS), $nmods modules, ${#libs[@]} libraries"
ni_log "cache: $NI_CACHE (manifest lists contents)"
ni_log "done in $(ni_since "$t0") s"
