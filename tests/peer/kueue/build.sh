#!/usr/bin/env bash
# Build the Kueue manager (sigs.k8s.io/kueue/cmd/kueue, version pinned in go/go.mod) from the
# Go module proxy, in two variants, for tests/e2e/bench-peer.sh:
#
#   stock    exactly the released code
#   patched  the same plus remote-qps.patch: MultiKueue's clients to the worker clusters take
#            their QPS / burst from KUEUE_REMOTE_QPS / KUEUE_REMOTE_BURST (unset: as stock)
#
# Output: ${COMPUTENET_PEERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/computenet-peers}/
#         kueue-<version>_<hash>/{stock,patched}/kueue     (<hash>: go.mod, go.sum, the patch)
#         kueue-<version>_<hash>/crds/                    (the release's CRDs, for start.sh)
# Binaries already present are skipped. Cold build of stock: about 8 min on 2 cores; patched
# then rebuilds only Kueue's own packages (about 2 min). The Go module and build caches stay
# at their defaults.
#
# Usage: build.sh [stock|patched|all] [--print-dir]     (default all)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
what=all print=0
for a in "$@"; do
  case $a in
    stock|patched|all) what=$a ;;
    --print-dir) print=1 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
VERSION=$(awk '$1 == "require" && $2 == "sigs.k8s.io/kueue" { print $3 }' "$here/go/go.mod")
[ -n "$VERSION" ] || { echo "build.sh: no sigs.k8s.io/kueue version in go/go.mod" >&2; exit 1; }
HASH=$(cat "$here/go/go.mod" "$here/go/go.sum" "$here/remote-qps.patch" | sha256sum | cut -c1-10)
DIR=${COMPUTENET_PEERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/computenet-peers}/kueue-${VERSION}_$HASH
if [ $print = 1 ]; then echo "$DIR"; exit 0; fi

command -v go >/dev/null 2>&1 || export PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null 2>&1 || { echo "build.sh: Go toolchain not found (PATH or /usr/local/go/bin)" >&2; exit 1; }
export CGO_ENABLED=0
FLAGS=(-trimpath -mod=readonly -buildvcs=false -ldflags "-s -w")
mkdir -p "$DIR"
TMP=$(mktemp -d "$DIR/tmp.XXXXXX")
trap 'chmod -R u+w "$TMP" 2>/dev/null; rm -rf "$TMP"' EXIT

build_stock() {
  [ -x "$DIR/stock/kueue" ] && { echo "kueue build: stock present in $DIR/stock"; return; }
  local t0; t0=$(date +%s)
  echo "kueue build: go build sigs.k8s.io/kueue/cmd/kueue@$VERSION (stock; ~8 min cold on 2 cores)"
  (cd "$here/go" && go build "${FLAGS[@]}" -o "$TMP/kueue-stock" sigs.k8s.io/kueue/cmd/kueue)
  mkdir -p "$DIR/stock" && mv "$TMP/kueue-stock" "$DIR/stock/kueue"
  echo "kueue build: stock done in $(( $(date +%s) - t0 )) s"
}
build_patched() {
  [ -x "$DIR/patched/kueue" ] && { echo "kueue build: patched present in $DIR/patched"; return; }
  local t0 src mod; t0=$(date +%s)
  # The module source as the proxy serves it, patched, used through a replace directive in a
  # copy of the wrapper module (the committed go.mod/go.sum stay untouched).
  src=$(cd "$here/go" && go mod download -json sigs.k8s.io/kueue | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  cp -r "$src" "$TMP/kueue-src" && chmod -R u+w "$TMP/kueue-src"
  patch -s -d "$TMP/kueue-src" -p1 < "$here/remote-qps.patch"
  mod=$TMP/module && mkdir -p "$mod" && cp "$here/go/go.mod" "$here/go/go.sum" "$here/go/tools.go" "$mod/"
  (cd "$mod" && go mod edit -replace "sigs.k8s.io/kueue=$TMP/kueue-src")
  echo "kueue build: go build with remote-qps.patch (patched; ~2 min after stock)"
  (cd "$mod" && go build "${FLAGS[@]}" -o "$TMP/kueue-patched" sigs.k8s.io/kueue/cmd/kueue)
  mkdir -p "$DIR/patched" && mv "$TMP/kueue-patched" "$DIR/patched/kueue"
  echo "kueue build: patched done in $(( $(date +%s) - t0 )) s"
}
crds() { # the CRDs of the same module version, so that start.sh needs no Go toolchain
  [ -s "$DIR/crds/kueue.x-k8s.io_workloads.yaml" ] && return
  local src; src=$(cd "$here/go" && go mod download -json sigs.k8s.io/kueue | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  mkdir -p "$TMP/crds" && cp "$src"/config/components/crd/bases/*.yaml "$TMP/crds/" && chmod u+w "$TMP"/crds/*
  rm -rf "$DIR/crds" && mv "$TMP/crds" "$DIR/crds"
}
crds
case $what in
  stock) build_stock ;;
  patched) build_patched ;;
  all) build_stock; build_patched ;;
esac
