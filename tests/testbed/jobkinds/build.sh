#!/usr/bin/env bash
# Build the job-kind controllers from the pinned Go modules in go-jobset/, go-trainer/ and
# go-training-operator/ (one wrapper module each: they want different k8s.io and
# controller-runtime versions, 0.34 / 0.32 / 0.29):
#   jobset-controller           sigs.k8s.io/jobset (main package = module root)
#   trainer-controller-manager  github.com/kubeflow/trainer/v2/cmd/trainer-controller-manager
#   training-operator           github.com/kubeflow/training-operator/cmd/training-operator.v1
#
# Output: ${COMPUTENET_JOBKINDS_CACHE:-$HOME/.cache/computenet-jobkinds}/<key>/bin, where <key>
# holds the three versions and a hash of the go.mod/go.sum files. Binaries already present are
# skipped. The Go module and build caches stay at their defaults.
#
# Usage: build.sh [--print-bin]   (--print-bin: only print the bin folder, build nothing)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ -z "$JOBSET_VERSION" ] || [ -z "$TRAINER_VERSION" ] || [ -z "$TRAINING_OPERATOR_VERSION" ]; then
  echo "jobkinds/build.sh: cannot read pinned versions from go-*/go.mod" >&2
  exit 1
fi
HASH=$(cat "$JK"/go-jobset/go.{mod,sum} "$JK"/go-trainer/go.{mod,sum} "$JK"/go-training-operator/go.{mod,sum} \
  | sha256sum | cut -c1-10)
KEY="jobset-${JOBSET_VERSION}_trainer-${TRAINER_VERSION}_training-operator-${TRAINING_OPERATOR_VERSION}_${HASH}"
CACHE=${COMPUTENET_JOBKINDS_CACHE:-$HOME/.cache/computenet-jobkinds}
BIN="$CACHE/$KEY/bin"

if [ "${1:-}" = "--print-bin" ]; then echo "$BIN"; exit 0; fi
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0; fi

missing=()
for p in "${JK_BINARIES[@]}"; do [ -x "$BIN/$p" ] || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then
  echo "jobkinds build: all binaries present in $BIN (0 s)"
  exit 0
fi
command -v go >/dev/null 2>&1 || { echo "jobkinds/build.sh: Go toolchain not found (PATH or /usr/local/go/bin)" >&2; exit 1; }

t0=$(date +%s)
mkdir -p "$BIN"
TMP=$(mktemp -d "$CACHE/$KEY/tmp.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
export CGO_ENABLED=0
# -mod=readonly: build exactly what go.mod/go.sum pin; never rewrite them.
GOFLAGS_BUILD=(-trimpath -mod=readonly -buildvcs=false -ldflags "-s -w")
echo "jobkinds build: $KEY -> $BIN (missing: ${missing[*]})"

build_one() { # binary wrapper-dir main-package
  local t1
  [[ " ${missing[*]} " == *" $1 "* ]] || return 0
  t1=$(date +%s)
  echo "jobkinds build: go build $3"
  (cd "$JK/$2" && go build "${GOFLAGS_BUILD[@]}" -o "$TMP/$1" "$3")
  mv -f "$TMP/$1" "$BIN/$1"
  echo "jobkinds build: $1 in $(( $(date +%s) - t1 )) s"
}
build_one "$JOBSET_BIN_NAME" go-jobset "$JOBSET_MODULE"
build_one "$TRAINER_BIN_NAME" go-trainer "$TRAINER_MODULE/cmd/trainer-controller-manager"
build_one "$TRAINING_OPERATOR_BIN_NAME" go-training-operator "$TRAINING_OPERATOR_MODULE/cmd/training-operator.v1"
echo "jobkinds build: done in $(( $(date +%s) - t0 )) s -> $BIN"
