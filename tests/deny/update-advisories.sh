#!/usr/bin/env bash
# Refreshes the offline subset of the RustSec advisory database that `cargo deny check
# advisories` reads (see tests/deny/README.md): the advisories of every crate named in
# Cargo.lock, copied from a local git copy of rustsec/advisory-db (a clone or a bare
# repository; its HEAD is used), with the source commit and its date recorded in SOURCE.
# Run it again after Cargo.lock gains crates, and whenever a newer database is at hand.
#
#   tests/deny/update-advisories.sh ADVISORY_DB_GIT_DIR [DEST]
#
# DEST defaults to tests/deny/advisory-db; it is replaced as a whole.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
  sed -n '2,9p' "$0" >&2
  exit 2
fi
src=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/../.." && pwd)
dest=${2:-$root/tests/deny/advisory-db}

git -C "$src" rev-parse --verify -q HEAD >/dev/null ||
  { echo "$src: not a git copy of the advisory database" >&2; exit 1; }
commit=$(git -C "$src" rev-parse HEAD)
date=$(git -C "$src" log -1 --format=%cI HEAD)
git -C "$src" cat-file -e HEAD:crates 2>/dev/null ||
  { echo "$src: HEAD has no crates/ folder" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Every crate name in the lock file (kept as CRATES: check.sh names those added since), and
# those of them that have a folder in the database.
sed -n 's/^name = "\(.*\)"$/\1/p' "$root/Cargo.lock" | LC_ALL=C sort -u >"$tmp/CRATES"
mapfile -t paths < <(
  LC_ALL=C comm -12 \
    "$tmp/CRATES" \
    <(git -C "$src" ls-tree --name-only HEAD crates/ | sed 's#^crates/##' | LC_ALL=C sort -u) |
    sed 's#^#crates/#'
)
[ "${#paths[@]}" -gt 0 ] || { echo "no crate of Cargo.lock has an advisory: nothing to keep" >&2; exit 1; }

git -C "$src" archive --format=tar HEAD LICENSE.txt LICENSES "${paths[@]}" | tar -x -C "$tmp"
cat >"$tmp/SOURCE" <<EOF
# A subset of the RustSec advisory database, made by tests/deny/update-advisories.sh:
# the advisories (crates/NAME/*.md) of the crates named in this project's Cargo.lock,
# which CRATES lists as it was then.
# Licence: CC0-1.0; advisories imported from GitHub's advisory database CC-BY-4.0, as
# each one's own license field says (LICENSE.txt, LICENSES/).
url = "https://github.com/rustsec/advisory-db"
commit = "$commit"
commit-date = "$date"
crates-with-advisories = ${#paths[@]}
advisories = $(find "$tmp/crates" -name '*.md' | wc -l)
EOF
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
mv "$tmp" "$dest"
trap - EXIT
chmod -R u+rwX,go+rX "$dest"
echo "$dest: ${#paths[@]} crates, $(find "$dest/crates" -name '*.md' | wc -l) advisories, advisory-db @ ${commit:0:12} ($date)"
