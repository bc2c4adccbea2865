# Shared helpers for test/setup/setup.sh and kernel-config/fetch-debian-kernel.sh.
# Source it; it defines functions only (plus CACHE when unset).

: "${CACHE:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.cache}"

# step prints one progress line.
step() { printf '==> %s\n' "$*"; }

# die names what is missing and how to get it, then exits.
die() {
	printf 'setup: ERROR: %s\n' "$*" >&2
	exit 1
}

# debian_mirror prints the Debian archive URI this machine's apt uses for
# its main suite (not -security), read from /etc/apt/sources.list(.d).
debian_mirror() {
	local f uri
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -r $f ]] || continue
		uri=$(awk '$1 == "deb" { u = ""; for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/ && u == "") { u = $i; s = $(i+1) }
			if (u ~ /debian\/?$/ && s !~ /-security/) { print u; exit } }' "$f")
		[[ -n $uri ]] && { echo "${uri%/}"; return; }
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -r $f ]] || continue
		uri=$(awk 'tolower($1) == "uris:" && $2 ~ /debian\/?$/ { print $2; exit }' "$f")
		[[ -n $uri ]] && { echo "${uri%/}"; return; }
	done
	die "no Debian mirror found in /etc/apt/sources.list(.d); add a 'deb http://deb.debian.org/debian bookworm main' line"
}

# debian_security_mirror prints the URI of the -security archive, derived
# from the same sources (falls back to <mirror host>/debian-security).
debian_security_mirror() {
	local uri
	uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
		sed 's/#.*//' | grep -oiE 'https?://[^ ]+/debian-security/?' | head -n1 || true)
	if [[ -z $uri ]]; then
		uri="$(debian_mirror)-security"
	fi
	echo "${uri%/}"
}

# papt NAME CMD ARGS... runs apt-get/apt-cache (CMD) against a private apt
# state under $CACHE/apt/NAME whose sources.list must already exist. The
# system's apt state is only read (keyrings, apt.conf), never written.
papt() {
	local name=$1 cmd=$2
	shift 2
	local d=$CACHE/apt/$name
	mkdir -p "$d/lists/partial" "$d/cache/archives/partial" "$d/preferences.d"
	"$cmd" -q \
		-o Dir::Etc::sourcelist="$d/sources.list" \
		-o Dir::Etc::sourceparts=- \
		-o Dir::Etc::preferencesparts="$d/preferences.d" \
		-o Dir::Etc::preferences="$d/preferences" \
		-o Dir::State::Lists="$d/lists" \
		-o Dir::State::status=/dev/null \
		-o Dir::Cache="$d/cache" \
		-o APT::Architectures=amd64 \
		-o APT::Sandbox::User=root \
		-o Acquire::Languages=none \
		-o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false \
		-o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false \
		-o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false \
		-o Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false \
		-o Acquire::IndexTargets::deb::DEP-11-icons-large::DefaultEnabled=false \
		-o Acquire::IndexTargets::deb::DEP-11-icons-large-hidpi::DefaultEnabled=false \
		"$@"
}

# papt_init NAME LINES writes the private sources.list for NAME and runs
# apt-get update once (again only when the lists are missing).
papt_init() {
	local name=$1 lines=$2 d=$CACHE/apt/$1
	mkdir -p "$d"
	if [[ ! -f $d/sources.list ]] || [[ $(cat "$d/sources.list") != "$lines" ]]; then
		printf '%s\n' "$lines" >"$d/sources.list"
		rm -rf "$d/lists"
	fi
	: >"$d/preferences"
	if ! compgen -G "$d/lists/*_Packages*" >/dev/null; then
		step "apt-get update (private lists: $name)"
		papt "$name" apt-get update >"$d/update.log" 2>&1 ||
			die "apt-get update for $name failed (see $d/update.log); the Debian mirror must be reachable"
	fi
}

# papt_fetch NAME DEST PKG... downloads PKG (name or name=version) and
# extracts each into DEST with dpkg -x. Prints nothing on success.
papt_fetch() {
	local name=$1 dest=$2
	shift 2
	local dl=$CACHE/apt/$name/debs
	mkdir -p "$dl" "$dest"
	local p
	for p in "$@"; do
		(cd "$dl" && papt "$name" apt-get download "$p" >>"$CACHE/apt/$name/download.log" 2>&1) ||
			die "apt-get download $p ($name) failed (see $CACHE/apt/$name/download.log)"
	done
	local deb
	for p in "$@"; do
		deb=$(ls -t "$dl/${p%%=*}"_*.deb 2>/dev/null | head -n1 || true)
		[[ -n $deb ]] || die "downloaded package $p not found in $dl"
		dpkg -x "$deb" "$dest"
	done
}
