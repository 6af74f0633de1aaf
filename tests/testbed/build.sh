#!/usr/bin/env bash
# Build the test bed's control-plane programs (kube-apiserver, kube-controller-manager,
# kube-scheduler, etcd, kwok) from the pinned Go modules in go/ and go-kwok/.
#
# Output: ${COMPUTENET_TESTBED_CACHE:-$HOME/.cache/computenet-testbed}/<versions-key>/bin
# Binaries already present are skipped, so this is a quick no-op once built. The key
# contains the pinned versions and a hash of the go.mod/go.sum files: a version bump
# builds into a new folder. The Go module and build caches stay at their defaults
# (GOMODCACHE ~/go/pkg/mod, GOCACHE ~/.cache/go-build) so they are reused.
#
# Usage: build.sh [--print-bin]   (--print-bin: only print the bin folder, build nothing)
set -euo pipefail

TB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

modver() { # module go.mod-file -> version in a require line
  awk -v m="$1" '$1 == m && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$2"
}
K8S_VERSION=$(modver k8s.io/kubernetes "$TB/go/go.mod")
ETCD_VERSION=$(modver go.etcd.io/etcd/server/v3 "$TB/go/go.mod")
KWOK_VERSION=$(modver sigs.k8s.io/kwok "$TB/go-kwok/go.mod")
if [ -z "$K8S_VERSION" ] || [ -z "$ETCD_VERSION" ] || [ -z "$KWOK_VERSION" ]; then
  echo "build.sh: cannot read pinned versions from go/go.mod and go-kwok/go.mod" >&2
  exit 1
fi
HASH=$(cat "$TB/go/go.mod" "$TB/go/go.sum" "$TB/go-kwok/go.mod" "$TB/go-kwok/go.sum" \
  | sha256sum | cut -c1-10)
KEY="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_${HASH}"
CACHE=${COMPUTENET_TESTBED_CACHE:-$HOME/.cache/computenet-testbed}
BIN="$CACHE/$KEY/bin"

if [ "${1:-}" = "--print-bin" ]; then echo "$BIN"; exit 0; fi
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0; fi

K8S_PROGS=(kube-apiserver kube-controller-manager kube-scheduler)
ALL=("${K8S_PROGS[@]}" etcd kwok)
missing=()
for p in "${ALL[@]}"; do [ -x "$BIN/$p" ] || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then
  echo "build: all binaries present in $BIN (0 s)"
  exit 0
fi

command -v go >/dev/null 2>&1 || export PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null 2>&1 || { echo "build.sh: Go toolchain not found (PATH or /usr/local/go/bin)" >&2; exit 1; }

t0=$(date +%s)
mkdir -p "$BIN"
TMP=$(mktemp -d "$CACHE/$KEY/tmp.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
export CGO_ENABLED=0
# -mod=readonly: build exactly what go.mod/go.sum pin; never rewrite them.
GOFLAGS_BUILD=(-trimpath -mod=readonly -buildvcs=false)
echo "build: $KEY -> $BIN (missing: ${missing[*]})"

need() { local p; for p in "$@"; do [[ " ${missing[*]} " == *" $p "* ]] && return 0; done; return 1; }

if need "${K8S_PROGS[@]}" etcd; then
  minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  pkgs=()
  for p in "${K8S_PROGS[@]}"; do need "$p" && pkgs+=("k8s.io/kubernetes/cmd/$p"); done
  need etcd && pkgs+=("go.etcd.io/etcd/server/v3")
  ld="-s -w"
  for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
  done
  echo "build: go build ${pkgs[*]}"
  (cd "$TB/go" && go build "${GOFLAGS_BUILD[@]}" -ldflags "$ld" -o "$TMP/" "${pkgs[@]}")
  # go names the etcd binary after the package path (go.etcd.io/etcd/server/v3 -> server)
  for n in server v3; do [ -f "$TMP/$n" ] && mv "$TMP/$n" "$TMP/etcd"; done
fi
if need kwok; then
  echo "build: go build sigs.k8s.io/kwok/cmd/kwok"
  (cd "$TB/go-kwok" && go build "${GOFLAGS_BUILD[@]}" -ldflags "-s -w" -o "$TMP/kwok" sigs.k8s.io/kwok/cmd/kwok)
fi
for p in "${missing[@]}"; do
  [ -x "$TMP/$p" ] || { echo "build.sh: $p was not produced" >&2; exit 1; }
  mv -f "$TMP/$p" "$BIN/$p"
done
echo "build: done in $(( $(date +%s) - t0 )) s -> $BIN"
