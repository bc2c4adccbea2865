#!/usr/bin/env bash
# fetch-debian-kernel.sh puts Debian bookworm's cloud kernel into
# $CACHE/kernel as the guest kernel (called by test/setup/setup.sh):
#
#   vmlinux   uncompressed ELF with a PVH entry note (QEMU microvm / CH boot it directly)
#   release   its `uname -r`
#   modules/  lib/modules/<release> from the package, .ko uncompressed
#
# The package is the linux-image-6.1.0-*-cloud-amd64 that the
# linux-image-cloud-amd64 metapackage currently depends on, fetched with a
# private apt state under $CACHE/apt/bookworm (the system's is not touched).
# Set VEIL_KERNEL_REFRESH=1 to fetch the current one again.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${CACHE:=$REPO/.cache}"
export CACHE
# shellcheck source=../test/setup/lib.sh
source "$REPO/test/setup/lib.sh"

KDIR=$CACHE/kernel
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

if [[ ${VEIL_KERNEL_REFRESH:-0} != 1 && -s $KDIR/vmlinux && -s $KDIR/release && -s $KDIR/modules/modules.dep ]]; then
	step "guest kernel: $(cat "$KDIR/release") ($KDIR)"
	exit 0
fi

for tool in readelf file dpkg xz zstd gzip lz4 depmod; do
	command -v "$tool" >/dev/null || die "$tool missing: apt-get install binutils file dpkg xz-utils zstd gzip lz4 kmod"
done

mirror=$(debian_mirror)
security=$(debian_security_mirror)
papt_init bookworm "deb [signed-by=$KEYRING] $mirror bookworm main
deb [signed-by=$KEYRING] $mirror bookworm-updates main
deb [signed-by=$KEYRING] $security bookworm-security main"

pkg=$(papt bookworm apt-cache depends linux-image-cloud-amd64 |
	sed -n 's/^ *Depends: \(linux-image-6\.1\.0-[0-9]*-cloud-amd64\)$/\1/p' | head -n1 || true)
[[ -n $pkg ]] || die "linux-image-cloud-amd64 (bookworm) does not depend on a linux-image-6.1.0-*-cloud-amd64; check $CACHE/apt/bookworm/sources.list"
step "guest kernel: fetching $pkg"

work=$CACHE/kernel.tmp
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
papt_fetch bookworm "$work/root" "$pkg"

vmlinuz=$(ls "$work"/root/boot/vmlinuz-* 2>/dev/null | head -n1 || true)
[[ -n $vmlinuz ]] || die "$pkg has no /boot/vmlinuz-*"
release=${vmlinuz##*/vmlinuz-}

# The bzImage's setup header says where the compressed kernel lies:
# setup_sects (byte 0x1f1) sectors of real-mode setup follow the boot
# sector, and payload_offset (0x248) / payload_length (0x24c) are relative
# to the protected-mode code after them.
u8() { od -An -tu1 -j "$2" -N1 "$1" | tr -d ' '; }
u32() { od -An -tu4 -j "$2" -N4 "$1" | tr -d ' '; }
setup_sects=$(u8 "$vmlinuz" $((0x1f1)))
((setup_sects == 0)) && setup_sects=4
pm_start=$(((setup_sects + 1) * 512))
payload_offset=$(u32 "$vmlinuz" $((0x248)))
payload_length=$(u32 "$vmlinuz" $((0x24c)))
start=$((pm_start + payload_offset))
magic=$(od -An -tx1 -j "$start" -N6 "$vmlinuz" | tr -d ' \n')
case $magic in
1f8b*) dec=(gzip -dc) ;;
fd377a585a00) dec=(xz -dc) ;;
28b52ffd*) dec=(zstd -dcq) ;;
5d0000*) dec=(xz --format=lzma -dc) ;;
02214c18*) dec=(lz4 -dc) ;; # LZ4 legacy frame, what Debian's x86 kernels use
*) die "unknown compression magic $magic at offset $start of $vmlinuz (expected gzip, xz, zstd, lzma or lz4)" ;;
esac
tail -c +$((start + 1)) "$vmlinuz" | head -c "$payload_length" | "${dec[@]}" >"$work/vmlinux" 2>"$work/decompress.log" || {
	# zstd/xz complain about the trailing size word some kernels append; the ELF check decides.
	:
}
file "$work/vmlinux" | grep -q 'ELF 64-bit LSB executable, x86-64' ||
	die "decompressing $vmlinuz (${dec[*]}, magic $magic) did not give an x86-64 ELF: $(file -b "$work/vmlinux"); $(tail -n2 "$work/decompress.log")"
# PVH entry: a Xen ELF note of type XEN_ELFNOTE_PHYS32_ENTRY (18).
readelf -n "$work/vmlinux" | grep -A1 -E '^ +Xen ' | grep -qiE 'PHYS32_ENTRY|0x00000012' ||
	die "$vmlinuz has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY): the guest needs CONFIG_PVH=y"

# Modules: the package's tree, decompressed when the .ko are compressed.
mods=$work/root/lib/modules/$release
[[ -d $mods/kernel ]] || die "$pkg has no lib/modules/$release/kernel"
compressed=$(find "$mods" \( -name '*.ko.xz' -o -name '*.ko.zst' \) -print -quit)
if [[ -n $compressed ]]; then
	find "$mods" -name '*.ko.xz' -exec xz -d {} +
	find "$mods" -name '*.ko.zst' -exec zstd -dq --rm {} +
	sed -i -E 's/\.ko\.(xz|zst)/.ko/g' "$mods"/modules.dep "$mods"/modules.order 2>/dev/null || true
	rm -f "$mods"/modules.dep.bin
fi
cp "$work/root/boot/config-$release" "$mods/config" 2>/dev/null || true
# Debian's package ships no modules.dep (its postinst runs depmod).
depmod -b "$work/root" "$release" || die "depmod -b $work/root $release failed"
[[ -s $mods/modules.dep ]] || die "depmod wrote no $mods/modules.dep"

rm -rf "$KDIR"
mkdir -p "$KDIR"
mv "$work/vmlinux" "$KDIR/vmlinux"
mv "$mods" "$KDIR/modules"
printf '%s\n' "$release" >"$KDIR/release"
printf '%s\n' "$pkg" >"$KDIR/package"
step "guest kernel: $release, vmlinux $(($(stat -c %s "$KDIR/vmlinux") / 1024 / 1024)) MiB, PVH note ok ($KDIR)"
