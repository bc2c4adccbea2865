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
#   CNI plugins     bridge, host-local, loopback, portmap: go install into $CACHE/cni/bin
#   crictl          go install into $CACHE/bin
#   CRI test images Debian's dynamic busybox, extracted into $CACHE/criimage/busybox
#   guest kernel    kernel-config/fetch-debian-kernel.sh -> $CACHE/kernel
#   $CACHE/veil-config.toml  a Veil config pointing at all of the above
#
# `setup.sh critest` builds only critest (the CRI conformance suite, about
# 3 min cold) into $CACHE/bin; `make conformance` runs it.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
: "${CACHE:=$REPO/.cache}"
: "${OUT:=$REPO/_output}"
CACHE=$(mkdir -p "$CACHE" && cd "$CACHE" && pwd)
export CACHE
# shellcheck source=lib.sh
source "$REPO/test/setup/lib.sh"

CONTAINERD_VERSION=2.4.2
CNI_PLUGINS_VERSION=v1.9.1
CRI_TOOLS_VERSION=v1.37.0
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
HOST_PACKAGES=(qemu-system-x86 protobuf-compiler cpio busybox-static libseccomp-dev
	iproute2 xz-utils zstd lz4 gcc runc psmisc util-linux binutils file kmod
	iptables procps)

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

# build_cni installs the CNI reference plugins the CRI tests' conflist uses.
build_cni() {
	local dir=$CACHE/cni/bin stamp=$CACHE/cni/version p ok=1
	local plugins=(main/bridge ipam/host-local main/loopback meta/portmap)
	for p in "${plugins[@]}"; do
		[[ -x $dir/${p#*/} ]] || ok=0
	done
	if ((ok)) && [[ $(cat "$stamp" 2>/dev/null) == "$CNI_PLUGINS_VERSION" ]]; then
		step "CNI plugins: $CNI_PLUGINS_VERSION ($dir)"
		return
	fi
	step "CNI plugins: go install ${plugins[*]} @$CNI_PLUGINS_VERSION"
	mkdir -p "$dir"
	local m=github.com/containernetworking/plugins/plugins args=()
	for p in "${plugins[@]}"; do
		args+=("$m/$p@$CNI_PLUGINS_VERSION")
	done
	(cd "$CACHE" && GOBIN=$dir GOFLAGS=-trimpath CGO_ENABLED=0 go install "${args[@]}" >"$CACHE/cni-install.log" 2>&1) ||
		die "go install CNI plugins failed (see $CACHE/cni-install.log); the Go module proxy must be reachable"
	echo "$CNI_PLUGINS_VERSION" >"$stamp"
}

# cri_tools_module prepares a scratch module that requires cri-tools, so
# critest (a test binary) can be built with `go test -c`.
cri_tools_module() {
	local mod=$CACHE/cri-tools
	mkdir -p "$mod"
	if [[ $(cat "$mod/ready" 2>/dev/null) != "$CRI_TOOLS_VERSION" ]]; then
		rm -f "$mod/go.mod" "$mod/go.sum" "$mod/ready"
		(cd "$mod" && go mod init veil-cri-tools && go get -t "sigs.k8s.io/cri-tools/cmd/critest@$CRI_TOOLS_VERSION" \
			"sigs.k8s.io/cri-tools/cmd/crictl@$CRI_TOOLS_VERSION" && echo "$CRI_TOOLS_VERSION" >ready) \
			>"$mod/get.log" 2>&1 ||
			die "go get sigs.k8s.io/cri-tools@$CRI_TOOLS_VERSION failed (see $mod/get.log)"
	fi
	echo "$mod"
}

build_crictl() {
	local bin=$CACHE/bin/crictl
	if "$bin" --version 2>/dev/null | grep -q "${CRI_TOOLS_VERSION#v}"; then
		step "crictl: $CRI_TOOLS_VERSION ($bin)"
		return
	fi
	step "crictl: go install @$CRI_TOOLS_VERSION"
	local mod
	mod=$(cri_tools_module)
	(cd "$mod" && GOBIN=$CACHE/bin GOFLAGS=-trimpath go install \
		-ldflags "-X sigs.k8s.io/cri-tools/pkg/version.Version=${CRI_TOOLS_VERSION#v}" \
		sigs.k8s.io/cri-tools/cmd/crictl >"$mod/crictl.log" 2>&1) ||
		die "go install crictl failed (see $mod/crictl.log)"
}

# build_critest builds the CRI conformance suite (not part of the default
# setup: `make conformance` asks for it).
build_critest() {
	local bin=$CACHE/bin/critest stamp=$CACHE/bin/.critest-version
	if [[ -x $bin && $(cat "$stamp" 2>/dev/null) == "$CRI_TOOLS_VERSION" ]]; then
		step "critest: $CRI_TOOLS_VERSION ($bin)"
		return
	fi
	step "critest: go test -c sigs.k8s.io/cri-tools/cmd/critest @$CRI_TOOLS_VERSION (about 3 min cold)"
	local mod
	mod=$(cri_tools_module)
	(cd "$mod" && go test -c -trimpath -o "$bin" sigs.k8s.io/cri-tools/cmd/critest >"$mod/critest.log" 2>&1) ||
		die "building critest failed (see $mod/critest.log)"
	echo "$CRI_TOOLS_VERSION" >"$stamp"
}

# fetch_busybox extracts Debian's dynamically linked busybox, the base of
# the CRI test images (test/criimage): its applets behave like upstream
# busybox images' (the static build runs some applets inside the shell).
fetch_busybox() {
	local root=$CACHE/criimage/busybox
	if [[ -x $root/bin/busybox ]] && "$root/bin/busybox" true 2>/dev/null; then
		step "busybox (CRI images): $("$root/bin/busybox" | head -n1 | cut -d' ' -f1,2) ($root)"
		return
	fi
	step "busybox (CRI images): apt-get download busybox into $CACHE/criimage"
	local dl=$CACHE/criimage/debs
	rm -rf "$root" "$dl"
	mkdir -p "$dl"
	if ! apt-cache show busybox >/dev/null 2>&1; then
		DEBIAN_FRONTEND=noninteractive apt-get update -q >"$CACHE/apt-update.log" 2>&1 ||
			die "apt-get update failed (see $CACHE/apt-update.log)"
	fi
	(cd "$dl" && apt-get download busybox >"$CACHE/criimage/download.log" 2>&1) ||
		die "apt-get download busybox failed (see $CACHE/criimage/download.log)"
	dpkg -x "$dl"/busybox_*.deb "$root"
	"$root/bin/busybox" true || die "$root/bin/busybox does not run"
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

if [[ ${1:-} == critest ]]; then
	build_critest
	exit 0
fi
host_packages
fetch_virtiofsd
fetch_vhost_device_vsock
build_containerd
build_cni
build_crictl
fetch_busybox
fetch_kernel
veil_config
step "setup done (cache: $CACHE)"
