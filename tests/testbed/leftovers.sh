#!/usr/bin/env bash
# Checks that a suite left no work on the shared test bed: no pods on the Kubernetes
# members (outside kube-system) and no batch jobs pending or running on Slurm, once
# WAIT_S seconds (default 120) have passed for what is still stopping.
#
# The e2e suites share one test bed, and each expects the members' devices free: a pod
# left running holds its GPUs, and the service charges them to the node, rightly. Checked
# after every suite, a leftover fails at the suite that left it, with its name, instead of
# as a capacity shortfall in a later suite.
#
# Usage: tests/testbed/leftovers.sh AFTER [WAIT_S]     (AFTER names the suite, for the message)
set -uo pipefail
case "${1:-}" in -h|--help|'') sed -n '2,11p' "$0"; exit 0 ;; esac
after=$1 wait_s=${2:-120}
# shellcheck source=tests/testbed/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ -s "$RUN/env" ] || { echo "leftovers.sh: $RUN/env not found: start the test bed with up.sh first" >&2; exit 2; }
# shellcheck disable=SC1091
source "$RUN/env"

# leftovers: one line per pod or batch job still there ("MEMBER namespace/name" or
# "slurm job ID (user, name, state)").
leftovers() {
  local m var kind kc
  for m in $MEMBER_NAMES; do
    var=$(env_prefix "$m")
    kind=${var}_KIND
    case ${!kind:-} in
      kubernetes)
        kc=${var}_KUBECONFIG
        KUBECONFIG=${!kc} kubectl get pods -A --field-selector=metadata.namespace!=kube-system \
          -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name}{"\n"}{end}' 2>&1 |
          sed "/^$/d; s|^|$m |"
        ;;
      slurm)
        command -v squeue >/dev/null 2>&1 &&
          squeue -h -t PENDING,RUNNING,SUSPENDED,CONFIGURING -o '%i %u %j %T' 2>&1 |
          sed "/^$/d; s|^|$m job |"
        ;;
    esac
  done
}

deadline=$(( $(date +%s) + wait_s ))
while :; do
  left=$(leftovers)
  [ -z "$left" ] && exit 0
  [ "$(date +%s)" -ge "$deadline" ] && break
  sleep 3
done
echo "not ok - $after left work on the test bed after ${wait_s} s (it would hold devices later suites expect free):" >&2
echo "$left" | sed 's/^/    /' >&2
exit 1
