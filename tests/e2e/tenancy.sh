#!/usr/bin/env bash
# The tenancy suite: two tenants share the pool and neither can reach the other, pick a
# priority or an admission an admin did not allow, or get at the service's credentials.
# Each script in tests/e2e/tenancy/ is a group of named checks (see groups.sh).
#
#   tests/e2e/tenancy.sh              every group
#   tests/e2e/tenancy.sh slurm web    only groups whose file name contains one of the words
#
# Needs the test bed (tests/testbed/up.sh --members 3 --gpu-nodes 8 --no-taint) and
#   cargo build -p computenet -p kubectl-computenet
here=$(cd "$(dirname "$0")" && pwd)
exec bash "$here/groups.sh" tenancy "$here/tenancy" "$@"
