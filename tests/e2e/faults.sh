#!/usr/bin/env bash
# The fault suite: one bad object, one slow or hostile member, one lost reply or one
# deposed leader must not stop or fool the scheduler. Each script in tests/e2e/faults/
# is a group of named checks on the test bed (it starts its own `computenet serve`
# processes on its own ports and namespaces and cleans up after itself); this runs them
# all in name order and sums their checks.
#
#   tests/e2e/faults.sh              every group
#   tests/e2e/faults.sh lease slurm  only groups whose file name contains one of the words
#
# Needs the test bed (tests/testbed/up.sh --members 3 --gpu-nodes 8 --no-taint) and
#   cargo build -p computenet -p kubectl-computenet
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
total_passed=0 total_failed=0 failed_groups=()
for script in "$here"/faults/*.sh; do
  [ -e "$script" ] || continue
  group=$(basename "$script" .sh)
  if [ $# -gt 0 ]; then
    wanted=0
    for w in "$@"; do case $group in *"$w"*) wanted=1 ;; esac; done
    [ $wanted = 1 ] || continue
  fi
  echo "--- faults: $group"
  out=$(mktemp)
  bash "$script" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  p=$(grep -c '^ok - ' "$out") f=$(grep -c '^not ok - ' "$out")
  rm -f "$out"
  total_passed=$((total_passed + p)) total_failed=$((total_failed + f))
  # A group that dies before its checks still fails the suite.
  if [ "$rc" != 0 ] || [ "$f" != 0 ]; then failed_groups+=("$group"); [ "$f" = 0 ] && total_failed=$((total_failed + 1)); fi
done
echo "faults: $total_passed passed, $total_failed failed${failed_groups[*]:+ (groups: ${failed_groups[*]})}"
[ "$total_failed" = 0 ]
