#!/usr/bin/env bash
# Runs a suite made of groups: each script in DIR is a group of named checks on the test
# bed ("ok - NAME" / "not ok - NAME") that starts its own `computenet serve` processes on
# its own ports and namespaces and cleans up after itself. Runs them in name order and
# sums their checks; a group that dies before its checks still fails the suite.
#
#   tests/e2e/groups.sh SUITE DIR [WORD...]   only groups whose file name contains a WORD
set -uo pipefail
suite=$1 dir=$2; shift 2
total_passed=0 total_failed=0 failed_groups=()
for script in "$dir"/*.sh; do
  [ -e "$script" ] || continue
  group=$(basename "$script" .sh)
  if [ $# -gt 0 ]; then
    wanted=0
    for w in "$@"; do case $group in *"$w"*) wanted=1 ;; esac; done
    [ $wanted = 1 ] || continue
  fi
  echo "--- $suite: $group"
  out=$(mktemp)
  bash "$script" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  p=$(grep -c '^ok - ' "$out") f=$(grep -c '^not ok - ' "$out")
  rm -f "$out"
  total_passed=$((total_passed + p)) total_failed=$((total_failed + f))
  if [ "$rc" != 0 ] || [ "$f" != 0 ]; then failed_groups+=("$group"); [ "$f" = 0 ] && total_failed=$((total_failed + 1)); fi
done
echo "$suite: $total_passed passed, $total_failed failed${failed_groups[*]:+ (groups: ${failed_groups[*]})}"
[ "$total_failed" = 0 ]
