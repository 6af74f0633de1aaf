#!/usr/bin/env bash
# Stop the job-kind controllers of the given AI members (default: all) by pid file, and, while
# the test bed stays up, delete their webhook configurations from the member: they have
# failurePolicy Fail, so with the controllers gone the apiserver would refuse every JobSet,
# TrainJob, runtime and PyTorchJob, and every pod carrying the JobSet label. CRDs, namespaces
# and objects stay. down.sh stops the controllers itself (first), then everything else.
#
#   stop.sh [MEMBER...]
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
shopt -s nullglob

members=("$@")
if [ ${#members[@]} -eq 0 ]; then
  for f in "$PIDS/$JOBSET_BIN_NAME"@*.pid "$PIDS/$TRAINER_BIN_NAME"@*.pid "$PIDS/$TRAINING_OPERATOR_BIN_NAME"@*.pid; do
    m=$(basename "$f" .pid); m=${m#*@}
    [[ " ${members[*]} " == *" $m "* ]] || members+=("$m")
  done
fi
for m in "${members[@]}"; do
  kc=$RUN/kubeconfig-$m
  if [ -s "$kc" ]; then
    kubectl --kubeconfig="$kc" delete --ignore-not-found --request-timeout=5s \
      "${JK_MUTATING_WEBHOOKS[@]/#/mutatingwebhookconfiguration/}" \
      "${JK_VALIDATING_WEBHOOKS[@]/#/validatingwebhookconfiguration/}" >/dev/null 2>&1 || true
  fi
  stop_pidfiles 10 "$PIDS/$JOBSET_BIN_NAME@$m.pid" "$PIDS/$TRAINER_BIN_NAME@$m.pid" \
    "$PIDS/$TRAINING_OPERATOR_BIN_NAME@$m.pid"
  rm -f "$PIDS/$JOBSET_BIN_NAME@$m.pid" "$PIDS/$TRAINER_BIN_NAME@$m.pid" "$PIDS/$TRAINING_OPERATOR_BIN_NAME@$m.pid"
  rm -rf "${RUN:?}/jobkinds/$m"
  echo "jobkinds: $m: controllers stopped"
done
