#!/usr/bin/env bash
# Regenerates generated/ (the Cloud Hypervisor API client and models) from
# openapi/cloud-hypervisor.yaml with a pinned go-swagger.
#
# Called by `make generate`; safe to run by hand from anywhere:
#   CACHE=/path/to/cache bash openapi/generate.sh
#
# Steps: install go-swagger $SWAGGER_VERSION into $CACHE/tools unless the one
# there already reports that version; validate the spec; generate into a
# scratch directory; gofmt; then replace the contents of generated/ with the
# result, so a failed run never leaves generated/ half written. The output
# depends only on the spec and the go-swagger version: two runs are
# byte-identical.
set -euo pipefail

SWAGGER_VERSION=v0.36.7
# The module path generated code imports itself under; must match go.mod.
MODULE=github.com/veil-runtime/veil
# Name of the generated client type (client.CloudHypervisor).
CLIENT_NAME=CloudHypervisor

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${CACHE:-$ROOT/.cache}
TOOLS=$CACHE/tools
SWAGGER=$TOOLS/swagger
SPEC=$ROOT/openapi/cloud-hypervisor.yaml
OUTDIR=$ROOT/generated
GO=${GO:-go}

die() { echo "openapi/generate.sh: $*" >&2; exit 1; }

module=$(cd "$ROOT" && "$GO" list -m)
[[ $module == "$MODULE" ]] || die "go.mod module is $module, script expects $MODULE"

installed=""
if [[ -x $SWAGGER ]]; then
	installed=$("$SWAGGER" version 2>/dev/null | awk '$1 == "version:" {print $2}') || installed=""
fi
if [[ $installed != "$SWAGGER_VERSION" ]]; then
	echo "installing go-swagger $SWAGGER_VERSION into $TOOLS (had: ${installed:-none})"
	mkdir -p "$TOOLS"
	GOBIN=$TOOLS "$GO" install "github.com/go-swagger/go-swagger/cmd/swagger@$SWAGGER_VERSION" ||
		die "go install go-swagger $SWAGGER_VERSION failed"
	installed=$("$SWAGGER" version | awk '$1 == "version:" {print $2}')
	[[ $installed == "$SWAGGER_VERSION" ]] || die "$SWAGGER reports version '$installed', want $SWAGGER_VERSION"
fi

"$SWAGGER" validate --quiet "$SPEC" >/dev/null 2>&1 || {
	"$SWAGGER" validate "$SPEC" >&2 || true
	die "$SPEC is not a valid Swagger 2.0 document"
}

# Generate inside a scratch module carrying the same module path, so the
# generated imports read $MODULE/generated/... without touching the tree.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/veil-openapi.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
printf 'module %s\n\ngo 1.26\n' "$MODULE" >"$scratch/go.mod"
mkdir -p "$scratch/generated"

(cd "$scratch" && "$SWAGGER" generate client \
	--quiet \
	--spec "$SPEC" \
	--target generated \
	--name "$CLIENT_NAME" \
	--client-package client \
	--model-package models \
	>"$scratch/swagger.log" 2>&1) || {
	tail -n 40 "$scratch/swagger.log" >&2
	die "swagger generate client failed (log tail above)"
}

gofmt -w "$scratch/generated"

# Every generated file must carry the standard generated-code marker so
# linters and reviewers skip it.
missing=$(grep -rL --include='*.go' '^// Code generated .* DO NOT EDIT\.$' "$scratch/generated" || true)
[[ -z $missing ]] || die "generated files lack a 'Code generated ... DO NOT EDIT.' header: $missing"

mkdir -p "$OUTDIR"
find "$OUTDIR" -mindepth 1 -delete
cp -R "$scratch/generated/." "$OUTDIR/"

(cd "$ROOT" && "$GO" build ./generated/...) || die "generated code does not build: are the go-openapi modules in go.mod?"
echo "generated $(find "$OUTDIR" -name '*.go' | wc -l) files in $OUTDIR with go-swagger $SWAGGER_VERSION"
