#!/usr/bin/env bash
# setup.sh prepares a Debian 12 host for building and testing Veil (run by
# `make setup`). It is idempotent: every step checks its result first and
# everything fetched goes under $CACHE (default <repo>/.cache), except the
# Debian packages below, which are installed with apt-get.
#
#   host packages   apt-get install (only the missing ones)
#   virtiofsd       trixie's, run through trixie's ld-linux ($CACHE/bin/virtiofsd)
#   vhost-device-vsock  sid's ($CACHE/bin/vhost-device-vsock)
#   containerd, ctr, containerd-shim-runc-v2  go install @v2.4.2 into $CACHE/bin
#   guest kernel    kernel-config/fetch-debian-kernel.sh -> $CACHE/kernel
#   $CACHE/veil-config.toml  a Veil config pointing at all of the above
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
: "${CACHE:=$REPO/.cache}"
: "${OUT:=$REPO/_output}"
CACHE=$(mkdir -p "$CACHE" && cd "$CACHE" && pwd)
export CACHE
# shellcheck source=lib.sh
source "$REPO/test/setup/lib.sh"

CONTAINERD_VERSION=2.4.2
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
HOST_PACKAGES=(qemu-system-x86 protobuf-compiler cpio busybox-static libseccomp-dev
	iproute2 xz-utils zstd lz4 gcc runc psmisc util-linux binutils file kmod)

mkdir -p "$CACHE/bin"

host_packages() {
	local missing=() p
	for p in "${HOST_PACKAGES[@]}"; do
		dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
	done
	if ((${#missing[@]} == 0)); then
		step "host packages: all ${#HOST_PACKAGES[@]} installed"
		return
	fi
	step "host packages: installing ${missing[*]}"
	[[ $(id -u) == 0 ]] || die "installing ${missing[*]} needs root: run 'sudo apt-get install ${missing[*]}'"
	DEBIAN_FRONTEND=noninteractive apt-get update -q >"$CACHE/apt-update.log" 2>&1 ||
		die "apt-get update failed (see $CACHE/apt-update.log)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
		>"$CACHE/apt-install.log" 2>&1 ||
		die "apt-get install ${missing[*]} failed (see $CACHE/apt-install.log)"
}

# link_from_path links a working binary already on PATH into $CACHE/bin.
# It returns 1 when there is none or it does not run.
link_from_path() {
	local name=$1 check=$2 p
	p=$(PATH=${PATH//"$CACHE/bin:"/} command -v "$name" 2>/dev/null) || return 1
	[[ $p == "$CACHE/bin/$name" ]] && return 1
	"$p" "$check" >/dev/null 2>&1 || return 1
	ln -sfn "$p" "$CACHE/bin/$name"
}

fetch_virtiofsd() {
	local bin=$CACHE/bin/virtiofsd
	if [[ -x $bin ]] && "$bin" --version >/dev/null 2>&1; then
		step "virtiofsd: $("$bin" --version 2>&1 | head -n1) ($bin)"
		return
	fi
	if link_from_path virtiofsd --version; then
		step "virtiofsd: using $(readlink "$bin") from PATH"
		return
	fi
	step "virtiofsd: fetching from Debian trixie into $CACHE/trixie"
	papt_init trixie "deb [signed-by=$KEYRING] $(debian_mirror) trixie main"
	local root=$CACHE/trixie
	rm -rf "$root"
	# virtiofsd needs trixie's glibc (2.39+); its other libraries come along.
	papt_fetch trixie "$root" virtiofsd libc6 libcap-ng0 libseccomp2 libgcc-s1
	local real=$root/usr/libexec/virtiofsd
	[[ -x $real ]] || real=$root/usr/bin/virtiofsd
	[[ -x $real ]] || die "virtiofsd binary not found in trixie's package (looked in $root/usr/libexec, $root/usr/bin)"
	local libs=$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu
	local ld
	ld=$(ls "$root"/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$root"/lib64/ld-linux-x86-64.so.2 2>/dev/null | head -n1 || true)
	[[ -n $ld ]] || die "trixie's ld-linux-x86-64.so.2 missing from $root (libc6 package layout changed?)"
	# Every library virtiofsd links must come from the trixie tree.
	local need
	for need in $(readelf -d "$real" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
		compgen -G "$root/usr/lib/x86_64-linux-gnu/$need" >/dev/null ||
			compgen -G "$root/lib/x86_64-linux-gnu/$need" >/dev/null ||
			die "virtiofsd needs $need, not in the fetched trixie packages: add its package to the papt_fetch list in test/setup/setup.sh"
	done
	cat >"$bin" <<EOF
#!/bin/sh
# virtiofsd from Debian trixie, run with trixie's own glibc (written by test/setup/setup.sh).
exec "$ld" --library-path "$libs" "$real" "\$@"
EOF
	chmod +x "$bin"
	"$bin" --version >/dev/null 2>&1 || die "$bin --version fails: $("$bin" --version 2>&1 | tail -n3)"
	step "virtiofsd: $("$bin" --version 2>&1 | head -n1)"
}

fetch_vhost_device_vsock() {
	local bin=$CACHE/bin/vhost-device-vsock
	if [[ -x $bin ]] && "$bin" --help >/dev/null 2>&1; then
		step "vhost-device-vsock: $("$bin" --version 2>&1 | head -n1) ($bin)"
		return
	fi
	if link_from_path vhost-device-vsock --help; then
		step "vhost-device-vsock: using $(readlink "$bin") from PATH"
		return
	fi
	step "vhost-device-vsock: fetching from Debian sid into $CACHE/sid"
	papt_init sid "deb [signed-by=$KEYRING] $(debian_mirror) sid main"
	local root=$CACHE/sid
	rm -rf "$root"
	papt_fetch sid "$root" vhost-device-vsock
	[[ -x $root/usr/bin/vhost-device-vsock ]] || die "vhost-device-vsock not found in sid's package under $root/usr/bin"
	ln -sfn "$root/usr/bin/vhost-device-vsock" "$bin"
	"$bin" --help >/dev/null 2>&1 || die "$bin --help fails: $("$bin" --help 2>&1 | tail -n3)"
	step "vhost-device-vsock: $("$bin" --version 2>&1 | head -n1)"
}

build_containerd() {
	local ok=1 b
	for b in containerd ctr; do
		"$CACHE/bin/$b" --version 2>/dev/null | grep -q " $CONTAINERD_VERSION" || ok=0
	done
	"$CACHE/bin/containerd-shim-runc-v2" -v 2>/dev/null | grep -q " $CONTAINERD_VERSION" || ok=0
	if ((ok)); then
		step "containerd: $CONTAINERD_VERSION ($CACHE/bin)"
		return
	fi
	command -v go >/dev/null || die "go missing: install Go 1.26 (https://go.dev/dl) to build containerd"
	step "containerd: go install containerd, ctr, containerd-shim-runc-v2 @v$CONTAINERD_VERSION (about 2 min cold)"
	local m=github.com/containerd/containerd/v2/cmd
	(cd "$CACHE" && GOBIN=$CACHE/bin GOFLAGS=-trimpath go install \
		"$m/containerd@v$CONTAINERD_VERSION" "$m/ctr@v$CONTAINERD_VERSION" \
		"$m/containerd-shim-runc-v2@v$CONTAINERD_VERSION" >"$CACHE/containerd-install.log" 2>&1) ||
		die "go install containerd failed (see $CACHE/containerd-install.log); the Go module proxy must be reachable"
	step "containerd: $("$CACHE/bin/containerd" --version)"
}

fetch_kernel() {
	bash "$REPO/kernel-config/fetch-debian-kernel.sh"
}

veil_config() {
	local qemu cfg=$CACHE/veil-config.toml
	qemu=$(command -v qemu-system-x86_64) || die "qemu-system-x86_64 missing: apt-get install qemu-system-x86"
	local tmp
	tmp=$(mktemp "$cfg.XXXX")
	cat >"$tmp" <<EOF
# Veil config for this checkout, written by test/setup/setup.sh.
state_dir = "/run/veil/sandboxes"

[hypervisor]
name = "qemu"
qemu_path = "$qemu"
vhost_vsock_path = "$CACHE/bin/vhost-device-vsock"

[guest]
kernel = "$CACHE/kernel-veil/vmlinux"
initrd = "$OUT/guest/initramfs.cpio"

[virtiofs]
path = "$CACHE/bin/virtiofsd"
EOF
	mv "$tmp" "$cfg"
	step "veil config: $cfg"
}

host_packages
fetch_virtiofsd
fetch_vhost_device_vsock
build_containerd
fetch_kernel
veil_config
step "setup done (cache: $CACHE)"
