#!/usr/bin/env bash
# `cargo deny check` (advisories, bans, licenses, sources) against deny.toml, offline: the
# RustSec advisory database is read from a local copy, never fetched.
#
#   tests/deny/check.sh [CHECK...]      default: advisories bans licenses sources
#
# Without a database the advisories are skipped with a notice (COMPUTENET_REQUIRE_ADVISORIES=1:
# an error). The database comes from $COMPUTENET_ADVISORY_DB if set (a folder with crates/, such as a
# clone of rustsec/advisory-db, or a git copy of it, bare or not), else from the subset
# kept in tests/deny/advisory-db (see tests/deny/README.md). cargo-deny reads a database
# only as a git working copy and judges its age by its HEAD, so the advisories are laid out
# in a temporary git repository whose one commit carries the source commit's date: the
# `maximum-db-staleness` of deny.toml then applies to the data itself.
set -euo pipefail
cd "$(dirname "$0")/../.."

checks=("$@")
[ ${#checks[@]} -gt 0 ] || checks=(advisories bans licenses sources)
command -v cargo-deny >/dev/null 2>&1 || { echo "cargo-deny not found (see tests/run.sh)" >&2; exit 1; }

need_db=0
for c in "${checks[@]}"; do [ "$c" = advisories ] && need_db=1; done
src=${COMPUTENET_ADVISORY_DB:-tests/deny/advisory-db}
if [ "$need_db" = 1 ] && [ ! -d "$src" ] && [ "${COMPUTENET_REQUIRE_ADVISORIES:-0}" != 1 ]; then
  # The database lives on GitHub, which this project's machines and CI do not reach, and no
  # package registry ships it: without a local copy the other checks still run, and the
  # gap is said out loud. COMPUTENET_REQUIRE_ADVISORIES=1 makes it an error instead.
  echo "advisories: NOT CHECKED: no RustSec advisory database at $src; point" \
    "COMPUTENET_ADVISORY_DB at a clone of rustsec/advisory-db (tests/deny/README.md) to check them" >&2
  mapfile -t checks < <(printf '%s\n' "${checks[@]}" | grep -vx advisories)
  need_db=0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ "$need_db" = 1 ]; then
  if [ ! -d "$src" ]; then
    echo "no advisory database at $src: run tests/deny/update-advisories.sh with a git copy of" >&2
    echo "rustsec/advisory-db, or point COMPUTENET_ADVISORY_DB at one (tests/deny/README.md)" >&2
    exit 1
  fi
  # cargo-deny's folder for db-urls' one URL under db-path: the URL's last segment and a hash
  # of it (as logged by `cargo deny -L debug check advisories`).
  db="$work/advisory-db-3157b0e258782691"
  mkdir -p "$db"
  if [ -d "$src/crates" ]; then
    cp -R "$src/crates" "$db/"
  else
    git -C "$src" archive --format=tar HEAD crates | tar -x -C "$db"
  fi
  if [ -f "$src/SOURCE" ]; then
    commit=$(sed -n 's/^commit = "\(.*\)"$/\1/p' "$src/SOURCE")
    date=$(sed -n 's/^commit-date = "\(.*\)"$/\1/p' "$src/SOURCE")
  else
    commit=$(git -C "$src" rev-parse HEAD)
    date=$(git -C "$src" log -1 --format=%cI HEAD)
  fi
  if [ -z "$commit" ] || [ -z "$date" ]; then
    echo "$src: source commit or its date unknown" >&2
    exit 1
  fi
  g() { git -C "$db" -c user.name=advisory-db -c user.email=advisory-db@localhost \
    -c commit.gpgsign=false -c core.hooksPath=/dev/null "$@"; }
  g init -q -b main
  g add -A
  GIT_AUTHOR_DATE=$date GIT_COMMITTER_DATE=$date g commit -q -m "rustsec/advisory-db $commit"
  touch -d "$date" "$db/.git/HEAD"
  if [ -f "$src/CRATES" ]; then
    mapfile -t new < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.lock | LC_ALL=C sort -u |
      LC_ALL=C comm -23 - "$src/CRATES")
    if [ "${#new[@]}" -gt 0 ]; then
      echo "warning: ${#new[@]} crates joined Cargo.lock after the advisory subset was taken, and" \
        "their advisories are not checked until tests/deny/update-advisories.sh runs again: ${new[*]}" >&2
    fi
  fi
  age=$(( ($(date +%s) - $(date -d "$date" +%s)) / 86400 ))
  echo "advisory database: rustsec/advisory-db @ ${commit:0:12} ($date, $age days old)," \
    "$(find "$db/crates" -name '*.md' | wc -l) advisories of $(find "$db/crates" -mindepth 1 -maxdepth 1 | wc -l) crates"
fi

# --frozen: Cargo.lock as it is, and no network: neither crates nor databases are fetched
# (the crates are fetched first, which is a no-op once the build has them).
cargo fetch --locked --quiet
COMPUTENET_ADVISORY_DBS="$work" cargo deny --frozen check "${checks[@]}"
