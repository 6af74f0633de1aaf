#!/usr/bin/env bash
# Build the helm v3 client used by the chart tests (tests/e2e/helm.sh) from its Go module,
# and print the path of the binary on stdout (progress goes to stderr).
#
# Output: ${COMPUTENET_TESTBED_CACHE:-$HOME/.cache/computenet-testbed}/helm-<version>/bin/helm
# The folder is keyed by the helm version (HELM_VERSION overrides the pinned one): a
# version bump builds into a new folder, and a warm run only checks that the binary is
# there. The Go module and build caches stay at their defaults (GOMODCACHE ~/go/pkg/mod,
# GOCACHE ~/.cache/go-build), shared with build.sh.
#
# Usage: build-helm.sh [--print-bin]   (--print-bin: only print the path, build nothing)
set -euo pipefail

HELM_VERSION=${HELM_VERSION:-v3.22.0}
CACHE=${COMPUTENET_TESTBED_CACHE:-$HOME/.cache/computenet-testbed}
KEY="helm-${HELM_VERSION}"
BIN="$CACHE/$KEY/bin"
HELM="$BIN/helm"

if [ "${1:-}" = "--print-bin" ]; then echo "$HELM"; exit 0; fi
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0; fi

if [ -x "$HELM" ]; then
  echo "build-helm: $HELM present (0 s)" >&2
  echo "$HELM"
  exit 0
fi

command -v go >/dev/null 2>&1 || export PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null 2>&1 || { echo "build-helm.sh: Go toolchain not found (PATH or /usr/local/go/bin)" >&2; exit 1; }

t0=$(date +%s)
mkdir -p "$CACHE/$KEY"
TMP=$(mktemp -d "$CACHE/$KEY/tmp.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
echo "build-helm: go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION -> $BIN" >&2

# The Kubernetes version helm assumes offline (helm template, helm lint) is set at link
# time from the client-go module it is built with, as helm's own release build does;
# without it helm falls back to an old built-in default.
modroot=$(cd "$TMP" && GOFLAGS=-mod=mod go mod download -json "helm.sh/helm/v3@$HELM_VERSION" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
if [ -n "$modroot" ] && [ -f "$modroot/go.mod" ]; then
  cg=$(awk '$1 == "k8s.io/client-go" && $2 ~ /^v0\./ { print $2; exit }' "$modroot/go.mod")
  if [ -n "$cg" ]; then
    minor=${cg#v0.}; minor=${minor%%.*}
    for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
      ld+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$minor"
    done
  fi
fi

# `go install pkg@version` builds the module as released (its own go.mod and go.sum), in
# module mode, outside any local module; GOBIN puts the binary in the cache folder.
(cd "$TMP" && CGO_ENABLED=0 GOBIN="$TMP" GOFLAGS="-mod=mod -trimpath -buildvcs=false" \
  go install -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION") >&2
[ -x "$TMP/helm" ] || { echo "build-helm.sh: helm was not produced" >&2; exit 1; }
mkdir -p "$BIN"
mv -f "$TMP/helm" "$HELM"
echo "build-helm: done in $(( $(date +%s) - t0 )) s ($("$HELM" version --short 2>/dev/null || echo '?'))" >&2
echo "$HELM"
