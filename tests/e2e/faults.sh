#!/usr/bin/env bash
# The fault suite: one bad object, one slow or hostile member, one lost reply or one
# deposed leader must not stop or fool the scheduler. Each script in tests/e2e/faults/
# is a group of named checks (see groups.sh).
#
#   tests/e2e/faults.sh              every group
#   tests/e2e/faults.sh lease slurm  only groups whose file name contains one of the words
#
# Needs the test bed (tests/testbed/up.sh --members 3 --gpu-nodes 8 --no-taint) and
#   cargo build -p computenet -p kubectl-computenet
here=$(cd "$(dirname "$0")" && pwd)
exec bash "$here/groups.sh" faults "$here/faults" "$@"
