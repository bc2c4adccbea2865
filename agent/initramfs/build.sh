#!/usr/bin/env bash
# build.sh AGENT_BINARY KERNEL_DIR OUT_DIR builds OUT_DIR/initramfs.cpio,
# the guest's initramfs (run by `make guest`):
#
#   /init                       AGENT_BINARY (static veil-agent)
#   /proc /sys /dev /tmp /run /etc /sys/fs/cgroup   empty mount points
#   /dev/console /dev/null      device nodes (needs root for mknod)
#   /lib/modules/<release>/...  the modules below and their dependencies
#   /etc/veil/modules           load order, dependencies first, one path
#                               relative to /lib/modules/<release>/ per line
#   /bin/busybox + /bin/<applet>  Debian's busybox-static (BUSYBOX, default
#                               /bin/busybox) and symlinks for the APPLETS
#                               below, for `veil sandbox exec` (DebugExec's
#                               default PATH includes /bin) and the shell of
#                               WarmUp's throwaway container (a copy in its
#                               own rootfs); containers never see them
#
# KERNEL_DIR is what kernel-config/fetch-debian-kernel.sh writes: release
# (uname -r) and modules/ (lib/modules/<release> with modules.dep), or
# what kernel-config/build-kernel.sh writes: a kernel with everything built
# in and no modules/, for which the archive holds no modules and an empty
# /etc/veil/modules.
# The archive is uncompressed newc (boots ~40 ms faster under TCG than a
# compressed one) and reproducible (fixed mtimes, owner 0:0, sorted). It is
# rebuilt only when an input changed.
set -euo pipefail

if (($# != 3)); then
	echo "usage: $0 AGENT_BINARY KERNEL_DIR OUT_DIR" >&2
	exit 2
fi
agent=$1 kdir=$2 out=$3

# Modules the agent needs: vsock over virtio, virtio-fs, overlay and the
# virtio-mmio devices of QEMU's microvm. Any that the kernel has built in
# (modules.builtin) or lacks entirely is skipped.
WANT=(virtio_mmio virtio_console virtio-rng virtio_blk virtio_net
	vmw_vsock_virtio_transport virtiofs overlay)

# Debugging tools for the guest (not for containers): busybox applets
# linked in /bin.
busybox=${BUSYBOX:-/bin/busybox}
APPLETS=(sh ls cat ps uname mount dmesg ip free top df du find grep head
	tail env sleep kill)

die() {
	echo "initramfs: ERROR: $*" >&2
	exit 1
}

[[ -x $agent ]] || die "agent binary $agent missing or not executable: run 'make build'"
[[ -s $kdir/release ]] || die "$kdir/release missing: run 'make setup' (kernel-config/fetch-debian-kernel.sh)"
release=$(cat "$kdir/release")
mods=$kdir/modules
if [[ -e $mods ]]; then
	[[ -s $mods/modules.dep ]] || die "$mods/modules.dep missing: run 'make setup'"
else
	WANT=() # built-in kernel: nothing to load
fi
command -v cpio >/dev/null || die "cpio missing: apt-get install cpio"
[[ -x $busybox ]] || die "busybox $busybox missing: apt-get install busybox-static (or set BUSYBOX)"
command -v readelf >/dev/null || die "readelf missing: apt-get install binutils"
if readelf -l "$busybox" | grep -q 'program interpreter'; then
	die "$busybox is dynamically linked; the guest has no libc: apt-get install busybox-static (or set BUSYBOX to a static busybox)"
fi
have_applets=" $("$busybox" --list | tr '\n' ' ') "
for a in "${APPLETS[@]}"; do
	[[ $have_applets == *" $a "* ]] || die "$busybox lacks the applet $a"
done
[[ $(id -u) == 0 ]] || die "must run as root (it creates /dev/console and /dev/null with mknod)"
mkdir -p "$out"
out=$(cd "$out" && pwd)

# Resolve the load order from modules.dep: each module after all of its
# dependencies, each once.
declare -A deps=() seen=()
while IFS= read -r line; do
	deps[${line%%:*}]=${line#*:}
done < <(((${#WANT[@]} == 0)) || cat "$mods/modules.dep")

declare -A byname=()
for path in "${!deps[@]}"; do
	base=${path##*/}
	base=${base%.ko}
	byname[$base]=$path
	byname[${base//-/_}]=$path
done

order=()
visit() {
	local m=$1 d
	[[ -n ${seen[$m]:-} ]] && return
	seen[$m]=1
	for d in ${deps[$m]}; do
		visit "$d"
	done
	order+=("$m")
}

for name in "${WANT[@]}"; do
	if path=${byname[$name]:-} && [[ -n $path ]]; then
		visit "$path"
	elif grep -qE "/${name}\.ko$|/${name//_/-}\.ko$" "$mods/modules.builtin" 2>/dev/null; then
		: # built in
	else
		die "module $name neither in $mods/modules.dep nor built in (kernel $release lacks it)"
	fi
done

# Cache: skip when the agent, busybox, the module set and this script are
# unchanged.
stamp=$out/initramfs.inputs
inputs=$({
	sha256sum "$agent" "${BASH_SOURCE[0]}" "$busybox" | cut -d' ' -f1
	echo "$release"
	for m in "${order[@]}"; do sha256sum "$mods/$m"; done
})
if [[ -s $out/initramfs.cpio && -f $stamp && $(cat "$stamp") == "$inputs" ]]; then
	echo "initramfs: up to date: $out/initramfs.cpio ($(($(stat -c %s "$out/initramfs.cpio") / 1024)) KiB, ${#order[@]} modules)"
	exit 0
fi

stage=$(mktemp -d "$out/.stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT

mkdir -p "$stage"/{bin,proc,sys,dev,tmp,run,etc/veil,sys/fs/cgroup,lib/modules/"$release"}
chmod 1777 "$stage/tmp"
mknod -m 600 "$stage/dev/console" c 5 1
mknod -m 666 "$stage/dev/null" c 1 3
install -m 0755 "$agent" "$stage/init"
install -m 0755 "$busybox" "$stage/bin/busybox"
for a in "${APPLETS[@]}"; do
	ln -s busybox "$stage/bin/$a"
done
for m in "${order[@]}"; do
	install -D -m 0644 "$mods/$m" "$stage/lib/modules/$release/$m"
done
: >"$stage/etc/veil/modules"
((${#order[@]} == 0)) || printf '%s\n' "${order[@]}" >"$stage/etc/veil/modules"

find "$stage" -exec touch -h -d @0 {} +
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort |
	cpio --quiet -o -H newc -R 0:0 --reproducible >"$out/initramfs.cpio.tmp")
mv "$out/initramfs.cpio.tmp" "$out/initramfs.cpio"
printf '%s\n' "$inputs" >"$stamp"
echo "initramfs: $out/initramfs.cpio $(($(stat -c %s "$out/initramfs.cpio") / 1024)) KiB (uncompressed newc; kernel $release; modules: ${order[*]##*/}; busybox applets: ${APPLETS[*]})"
