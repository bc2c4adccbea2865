#!/usr/bin/env bash
# build.sh builds the Kubernetes and etcd binaries the Kubernetes suite
# (test/kubernetes) runs (`make k8s`): kube-apiserver, kubelet and kubectl
# of Kubernetes $K8S_VERSION and etcd $ETCD_VERSION, from the Go module
# proxy, into $CACHE/kubernetes-$K8S_VERSION/bin.
#
# This directory is a Go module of its own: Kubernetes' ~200 dependencies
# and its pinned cri-api stay out of Veil's go.mod. Its go.mod requires
# k8s.io/kubernetes and replaces each of Kubernetes' ./staging modules
# with the published k8s.io/<name> v0.x of the same release.
#
# The build is skipped while the binaries and the inputs (go.mod, go.sum,
# this script) match what built them. It reuses Go's build cache: about
# 1,000 CPU-seconds cold, seconds to relink when warm. It writes into a
# temporary directory renamed into place, so an interrupted build is never
# taken for a finished one.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
: "${CACHE:=$REPO/.cache}"
mkdir -p "$CACHE"
# shellcheck source=../../setup/lib.sh
source "$REPO/test/setup/lib.sh"

K8S_VERSION=v1.34.4
ETCD_VERSION=v3.6.4
OUT=$CACHE/kubernetes-$K8S_VERSION
BINS=(kube-apiserver kubelet kubectl etcd)

inputs=$(cat "$HERE/go.mod" "$HERE/go.sum" "$0" | sha256sum | cut -d' ' -f1)
if [[ -f $OUT/inputs && $(cat "$OUT/inputs") == "$inputs" ]]; then
	ok=1
	for b in "${BINS[@]}"; do [[ -x $OUT/bin/$b ]] || ok=0; done
	if ((ok)); then
		step "kubernetes: up to date: $K8S_VERSION, etcd $ETCD_VERSION ($OUT/bin)"
		exit 0
	fi
fi

major=${K8S_VERSION#v}; major=${major%%.*}
minor=${K8S_VERSION#v*.}; minor=${minor%%.*}
ver() {
	local p=$1
	printf -- '-X %s.gitVersion=%s -X %s.gitMajor=%s -X %s.gitMinor=%s -X %s.gitTreeState=clean -X %s.buildDate=1970-01-01T00:00:00Z ' \
		"$p" "$K8S_VERSION" "$p" "$major" "$p" "$minor" "$p" "$p"
}
LDFLAGS="-s -w $(ver k8s.io/component-base/version)$(ver k8s.io/client-go/pkg/version)"

tmp=$(mktemp -d "$CACHE/kubernetes-build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin"
cd "$HERE"
export CGO_ENABLED=0
for b in "${BINS[@]}"; do
	case $b in
	etcd) pkg=go.etcd.io/etcd/server/v3 ;;
	*) pkg=k8s.io/kubernetes/cmd/$b ;;
	esac
	step "kubernetes: building $b ($pkg)"
	start=$SECONDS
	go build -trimpath -ldflags "$LDFLAGS" -o "$tmp/bin/$b" "$pkg"
	step "kubernetes: $b built in $((SECONDS - start)) s"
done
echo "$inputs" >"$tmp/inputs"
rm -rf "$OUT"
mv "$tmp" "$OUT"
trap - EXIT
step "kubernetes: $("$OUT/bin/kubelet" --version), etcd $("$OUT/bin/etcd" --version | head -1 | awk '{print $3}') in $OUT/bin"
