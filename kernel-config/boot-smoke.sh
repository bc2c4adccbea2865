#!/usr/bin/env bash
# boot-smoke.sh boots the guest kernel in $CACHE/kernel under QEMU (microvm,
# TCG unless KVM=1) with a throwaway initramfs: agent/initramfs/build.sh's
# layout with a busybox shell script as /init that loads /etc/veil/modules,
# prints `uname -r` and powers off. Each console line is prefixed with the
# milliseconds since QEMU was launched. A manual check of kernel + modules;
# needs root (mknod) and busybox-static.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${CACHE:=$REPO/.cache}"
TIMEOUT=${TIMEOUT:-60}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat >"$work/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox echo "init: started"
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
r=$(/bin/busybox uname -r)
/bin/busybox echo "uname -r: $r"
while read -r m; do
	/bin/busybox insmod "/lib/modules/$r/$m" || /bin/busybox echo "insmod $m FAILED"
done </etc/veil/modules
/bin/busybox echo "modules loaded: $(/bin/busybox wc -l </etc/veil/modules)"
/bin/busybox echo "virtio devices: $(/bin/busybox ls /sys/bus/virtio/devices 2>/dev/null | /bin/busybox wc -l)"
/bin/busybox echo "filesystems: $(/bin/busybox grep -E 'virtiofs|overlay' /proc/filesystems | /bin/busybox tr '\n\t' '  ')"
/bin/busybox poweroff -f
EOF
chmod +x "$work/init"
bash "$REPO/agent/initramfs/build.sh" "$work/init" "$CACHE/kernel" "$work/out" >/dev/null
# A second newc archive appended: the kernel unpacks both.
mkdir -p "$work/bb/bin"
cp /bin/busybox "$work/bb/bin/busybox"
(cd "$work/bb" && find . -mindepth 1 | cpio --quiet -o -H newc -R 0:0 >>"$work/out/initramfs.cpio")

# The host's TSC rate: without it about 1 TCG boot in 5 hangs calibrating.
khz=$(awk -F: '/^cpu MHz/ { printf "%d", $2 * 1000; exit }' /proc/cpuinfo)
tsc=${khz:+tsc_early_khz=$khz}
accel=tcg
[[ ${KVM:-0} == 1 ]] && accel=kvm
start=$(date +%s%N)
timeout "$TIMEOUT" qemu-system-x86_64 -M microvm,x-option-roms=off -accel "$accel" -m 256 -smp 1 \
	-nodefaults -no-user-config -display none -serial stdio -no-reboot \
	-object memory-backend-memfd,id=mem,size=256M,share=on -numa node,memdev=mem \
	-device virtio-rng-device \
	-kernel "$CACHE/kernel/vmlinux" -initrd "$work/out/initramfs.cpio" \
	-append "console=ttyS0 quiet panic=-1 tsc=reliable no_timer_check $tsc noreplace-smp" |
	while IFS= read -r line; do
		printf '%5d ms  %s\n' $((($(date +%s%N) - start) / 1000000)) "${line%$'\r'}"
	done
rc=${PIPESTATUS[0]}
echo "qemu exited $rc after $((($(date +%s%N) - start) / 1000000)) ms"
exit "$rc"
