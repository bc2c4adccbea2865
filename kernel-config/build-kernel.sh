#!/usr/bin/env bash
# build-kernel.sh builds Veil's own guest kernel (run by `make kernel`; not
# by `make setup`, since the compile takes about 5 min on 2 cores): a
# vmlinux with everything the guest needs built in and no modules, from
# Debian's linux-source-6.1 package. It writes $CACHE/kernel-veil:
#
#   vmlinux   uncompressed ELF with a PVH entry note (QEMU microvm / CH boot it directly),
#             symbols stripped (objcopy --strip-all)
#   System.map  the symbol addresses the stripped vmlinux no longer carries
#   release   its `uname -r` (<version>-veil)
#   config    the .config it was built with
#   inputs    hash of the source version, the fragments and this script;
#             the build is skipped while it matches (VEIL_KERNEL_REBUILD=1 forces it)
#
# The configuration is `make tinyconfig` plus the fragments in
# kernel-config/fragments/*.config, merged with merge_config.sh and
# completed by `make olddefconfig`. Every CONFIG_*=y a fragment asks for
# must then be =y in .config (a dependency it lacks drops it silently):
# the build fails naming the missing ones, except those in
# optional.config, which are only reported.
#
# Usage: build-kernel.sh [--config-only]
#   --config-only   install the packages, extract, configure and verify; no compile
# Environment: CACHE (default <repo>/.cache), JOBS (default nproc),
# VEIL_KERNEL_REBUILD=1.
# The source tree and objects stay in $CACHE/kernel-build, so a changed
# fragment recompiles only what it affects.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${CACHE:=$REPO/.cache}"
CACHE=$(mkdir -p "$CACHE" && cd "$CACHE" && pwd)
export CACHE
# shellcheck source=../test/setup/lib.sh
source "$REPO/test/setup/lib.sh"

SRC_PKG=linux-source-6.1
TARBALL=/usr/src/$SRC_PKG.tar.xz
BUILD_PACKAGES=("$SRC_PKG" build-essential bc bison flex libelf-dev libssl-dev xz-utils binutils)
LOCALVERSION=-veil
FRAGDIR=$REPO/kernel-config/fragments
BUILD=$CACHE/kernel-build
SRC=$BUILD/$SRC_PKG
OBJ=$BUILD/obj
KDIR=$CACHE/kernel-veil
JOBS=${JOBS:-$(nproc)}

config_only=0
case ${1:-} in
"") ;;
--config-only) config_only=1 ;;
*) die "usage: $0 [--config-only]" ;;
esac

fragments=("$FRAGDIR"/*.config)
[[ -e ${fragments[0]} ]] || die "no fragments in $FRAGDIR"

install_packages() {
	local missing=() p
	for p in "${BUILD_PACKAGES[@]}"; do
		dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
	done
	if ((${#missing[@]} == 0)); then
		return
	fi
	step "kernel: installing ${missing[*]}"
	[[ $(id -u) == 0 ]] || die "installing ${missing[*]} needs root: run 'sudo apt-get install ${missing[*]}'"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
		>"$CACHE/kernel-apt.log" 2>&1 || {
		DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$CACHE/kernel-apt.log" 2>&1 &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
				>>"$CACHE/kernel-apt.log" 2>&1
	} || die "apt-get install ${missing[*]} failed (see $CACHE/kernel-apt.log)"
}

# inputs_hash identifies a build: the source package version, every
# fragment (name and content) and this script.
inputs_hash() {
	{
		echo "$SRC_PKG $(dpkg-query -W -f='${Version}' "$SRC_PKG")"
		for f in "${fragments[@]}"; do
			echo "${f##*/} $(sha256sum <"$f" | cut -d' ' -f1)"
		done
		sha256sum <"${BASH_SOURCE[0]}" | cut -d' ' -f1
	} | sha256sum | cut -d' ' -f1
}

# extract unpacks the source tarball into $SRC unless that version is
# already there.
extract() {
	local version
	version=$(dpkg-query -W -f='${Version}' "$SRC_PKG")
	if [[ -d $SRC && $(cat "$BUILD/source-version" 2>/dev/null) == "$version" ]]; then
		return
	fi
	[[ -s $TARBALL ]] || die "$TARBALL missing although $SRC_PKG is installed (dpkg -L $SRC_PKG)"
	step "kernel: extracting $SRC_PKG $version into $BUILD (about 1 min)"
	rm -rf "$SRC" "$OBJ" "$BUILD/extract.tmp"
	mkdir -p "$BUILD/extract.tmp"
	tar -xf "$TARBALL" -C "$BUILD/extract.tmp" || die "extracting $TARBALL into $BUILD/extract.tmp failed (disk space?)"
	[[ -f $BUILD/extract.tmp/$SRC_PKG/Makefile ]] || die "$TARBALL holds no $SRC_PKG/Makefile"
	mv "$BUILD/extract.tmp/$SRC_PKG" "$SRC"
	rmdir "$BUILD/extract.tmp"
	printf '%s\n' "$version" >"$BUILD/source-version"
}

kmake() {
	make -C "$SRC" O="$OBJ" "$@"
}

# configure writes $OBJ/.config: tinyconfig, the fragments, olddefconfig.
configure() {
	step "kernel: configuring (tinyconfig + ${#fragments[@]} fragments: ${fragments[*]##*/})"
	mkdir -p "$OBJ"
	kmake -s tinyconfig >"$BUILD/config.log" 2>&1 || die "make tinyconfig failed: $(tail -n5 "$BUILD/config.log")"
	local local_frag=$BUILD/localversion.config
	printf 'CONFIG_LOCALVERSION="%s"\n# CONFIG_LOCALVERSION_AUTO is not set\n' "$LOCALVERSION" >"$local_frag"
	(cd "$SRC" && scripts/kconfig/merge_config.sh -m -O "$OBJ" "$OBJ/.config" "${fragments[@]}" "$local_frag") \
		>>"$BUILD/config.log" 2>&1 || die "merge_config.sh failed: $(tail -n5 "$BUILD/config.log")"
	kmake -s olddefconfig >>"$BUILD/config.log" 2>&1 || die "make olddefconfig failed: $(tail -n5 "$BUILD/config.log")"
}

# verify checks that every CONFIG_*=y of the fragments is =y in .config,
# every other CONFIG_*=<value> has that value, and every
# '# CONFIG_* is not set' is off.
verify() {
	local f line opt missing=() optional=() total=0 where d
	# Where an option is defined, for the message: other architectures'
	# Kconfig files left out.
	local exclude=()
	for d in "$SRC"/arch/*/; do
		d=${d%/}
		[[ ${d##*/} == x86 ]] || exclude+=(--exclude-dir="${d##*/}")
	done
	for f in "${fragments[@]}"; do
		while IFS= read -r line; do
			if [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
				opt=${BASH_REMATCH[1]}
				total=$((total + 1))
				grep -qE "^$opt=[ym]" "$OBJ/.config" && missing+=("$opt must be off (${f##*/}) but is on")
				continue
			fi
			if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.+)$ && ${BASH_REMATCH[2]} != y ]]; then
				opt=${BASH_REMATCH[1]}
				total=$((total + 1))
				grep -qxF "$line" "$OBJ/.config" || missing+=("$opt must be ${BASH_REMATCH[2]} (${f##*/}) but is: $(grep -E "^(# )?$opt[= ]" "$OBJ/.config" || echo absent)")
				continue
			fi
			[[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=y$ ]] || continue
			opt=${BASH_REMATCH[1]}
			total=$((total + 1))
			grep -qx "$opt=y" "$OBJ/.config" && continue
			where=$(grep -rn --include='Kconfig*' "${exclude[@]}" -m1 -E "^(menu)?config ${opt#CONFIG_}\$" "$SRC" 2>/dev/null | head -n1 | sed "s|^$SRC/||;s|:[^:]*\$||" || true)
			if [[ ${f##*/} == optional.config ]]; then
				optional+=("$opt (${where:-no Kconfig entry})")
			else
				missing+=("$opt (${f##*/}; defined in ${where:-no Kconfig entry}; now: $(grep -E "^(# )?$opt[= ]" "$OBJ/.config" || echo absent))")
			fi
		done <"$f"
	done
	local o
	for o in "${optional[@]}"; do
		step "kernel: optional option not set (a dependency is missing): $o"
	done
	if ((${#missing[@]})); then
		printf 'kernel: ERROR: %d of %d requested options are not as asked after olddefconfig (a dependency is off: add it to a fragment):\n' \
			"${#missing[@]}" "$total" >&2
		printf '  %s\n' "${missing[@]}" >&2
		exit 1
	fi
	step "kernel: config verified: all $((total - ${#optional[@]})) required options as asked (${#optional[@]} optional missing)"
}

compile() {
	local log=$BUILD/build.log start n=0 line
	start=$(date +%s)
	step "kernel: make -j$JOBS vmlinux (about 5 min with 2 cores; log: $log)"
	set +e
	kmake -j"$JOBS" vmlinux 2>&1 | tee "$log" | while IFS= read -r line; do
		[[ $line == *" CC "* ]] || continue
		n=$((n + 1))
		if ((n % 250 == 0)); then
			step "kernel: $n files compiled, $(($(date +%s) - start)) s"
		fi
	done
	local rc=${PIPESTATUS[0]}
	set -e
	((rc == 0)) || die "make vmlinux failed (exit $rc): $(grep -m5 -E 'error|Error' "$log" || tail -n5 "$log")"
	step "kernel: compiled in $(($(date +%s) - start)) s"
}

install_output() {
	local release tmp
	release=$(kmake -s kernelrelease)
	[[ -n $release ]] || die "make kernelrelease printed nothing"
	tmp=$CACHE/kernel-veil.tmp
	rm -rf "$tmp"
	mkdir -p "$tmp"
	# Symbols stripped: QEMU's ELF loader reads, sorts and keeps every
	# symbol of the kernel it loads (on the host, KVM or not); System.map
	# beside it keeps the addresses for debugging.
	objcopy --strip-all "$OBJ/vmlinux" "$tmp/vmlinux"
	readelf -n "$tmp/vmlinux" | grep -A1 -E '^ +Xen ' | grep -qiE 'PHYS32_ENTRY|0x00000012' ||
		die "the stripped $OBJ/vmlinux has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY): is CONFIG_PVH=y in $OBJ/.config?"
	cp "$OBJ/System.map" "$tmp/System.map"
	cp "$OBJ/.config" "$tmp/config"
	printf '%s\n' "$release" >"$tmp/release"
	printf '%s\n' "$1" >"$tmp/inputs"
	rm -rf "$KDIR"
	mv "$tmp" "$KDIR"
	step "kernel: $release, vmlinux $(($(stat -c %s "$KDIR/vmlinux") / 1024 / 1024)) MiB, PVH note ok ($KDIR)"
}

install_packages
hash=$(inputs_hash)
if ((!config_only)) && [[ ${VEIL_KERNEL_REBUILD:-0} != 1 && -s $KDIR/vmlinux && $(cat "$KDIR/inputs" 2>/dev/null) == "$hash" ]]; then
	step "kernel: up to date: $(cat "$KDIR/release") ($KDIR)"
	exit 0
fi
mkdir -p "$BUILD"
extract
configure
verify
if ((config_only)); then
	step "kernel: configured ($OBJ/.config); --config-only: not compiling"
	exit 0
fi
compile
install_output "$hash"
