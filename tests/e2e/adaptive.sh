#!/usr/bin/env bash
# The adaptive suite: running restartable jobs are moved and resized on real members,
# stopped gracefully before their next attempt starts, and keep their progress. Each
# script in tests/e2e/adaptive/ is a group of named checks (see groups.sh).
#
#   tests/e2e/adaptive.sh               every group
#   tests/e2e/adaptive.sh move slurm    only groups whose file name contains one of the words
#
# Needs the test bed (tests/testbed/up.sh --members 3 --gpu-nodes 8 --no-taint) and
#   cargo build -p computenet -p kubectl-computenet
here=$(cd "$(dirname "$0")" && pwd)
exec bash "$here/groups.sh" adaptive "$here/adaptive" "$@"
