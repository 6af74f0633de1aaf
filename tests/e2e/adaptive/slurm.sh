#!/usr/bin/env bash
# Adaptive group "slurm": on a Slurm member a restartable job is signalled, requeued and
# resumed.
#
# One member, a-sl (the test bed's Slurm through slurmrestd, site a-sl), whose two H800
# nodes the jobs use; a queue that lets higher priorities preempt lower ones. The
# restartable job "victim" (2 x 8 H800, priority 0) runs a command that traps SIGTERM. A job
# of priority 5 that needs the same nodes arrives: the victim is preempted gracefully
# (DELETE job?signal=SIGTERM, not a cancel): its batch job ends FAILED by the signal (a
# cancel would end it CANCELLED), its status records attempt 1 (reason Preempted, the
# progress made) and keeps the progress. (srun, which the batch script runs, ends the step
# on SIGTERM: the tasks' own trap does not get to run; see README, Known limits.) When the preemptor has finished, the victim
# resumes as attempt 2: a new batch job (its comment says attempt=2), started after the
# first one ended, the progress carried.
#
# Needs the test bed with Slurm (tests/testbed/up.sh --members 3 --gpu-nodes 8 --no-taint)
# and cargo build -p computenet
# Port 18302. About 1 minute.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$here/lib.sh"
# shellcheck source=tests/e2e/adaptive/lib.bash
. "$here/adaptive/lib.bash"
use_testbed
export SLURM_CONF
[ -n "${SLURMRESTD_URL:-}" ] || { echo "the test bed runs without Slurm (up.sh --no-slurm?)" >&2; exit 1; }
started_at=$(date +%s)
tmp=$(mktemp -d)
NS=a-sl
QUEUE=a-sl-q
M=a-sl
PORT=18302
PIDS=() SERVE_PID=''
MARK=a-sl-term-$$

cleanup() {
  stop_all
  kubectl get tj -n "$NS" -o name 2>/dev/null | xargs -r kubectl patch -n "$NS" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
  kubectl delete ns "$NS" --wait=false >/dev/null 2>&1
  kubectl delete cnq "$QUEUE" --ignore-not-found >/dev/null 2>&1
  kubectl delete mcl "$M" --ignore-not-found >/dev/null 2>&1
  for id in $(squeue -h -o '%i %k' 2>/dev/null | awk '/hub=a-sl /{print $1}'); do scancel "$id" 2>/dev/null; done
  rm -f "$SLURM_JOB_DIR/$MARK".* 2>/dev/null
  if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

kubectl apply --server-side --force-conflicts -f "$root/deploy/crds/" >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=30s >/dev/null
wait_for 90 bash -c "! kubectl get ns $NS >/dev/null 2>&1" || { echo "namespace $NS still terminating" >&2; exit 1; }
{ tenant_queue "$NS" a-sl "$QUEUE"; cat <<EOT
  priorityRange: {min: 0, max: 10}
  preemption: {withinQueue: LowerPriority}
---
EOT
  slurm_member "$M" "$M"
} | kubectl apply -f - >/dev/null

# job NAME PRIORITY RESTARTABLE COMMAND_JSON
job() {
  cat <<EOT
apiVersion: computenet.io/v1alpha1
kind: TrainingJob
metadata: {name: $1, namespace: $NS}
spec:
  queueName: $QUEUE
  priority: $2
  replicas: 2
  resources: {cpu: "2", memory: 1Gi, accelerators: {count: 8, types: [H800]}}
  workload: {image: example/train:1.0, command: $4}
  work: {gpuHours: 20}
  placement: {sites: [$M]}
  maxRunSeconds: 900
EOT
  [ "$3" = yes ] && echo "  checkpoint: {restartable: true, gracePeriodSeconds: 10, restartCostSeconds: 30}"
}
field() { kubectl get tj "$1" -n "$NS" -o jsonpath="$2" 2>/dev/null; }
running() { is "$(field "$1" '{.status.phase}')" Running; }
slurm_state() { scontrol show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }
slurm_field() { scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | grep "^$2=" | cut -d= -f2-; }

COMPUTENET_TEST_NAMESPACE_PREFIX=a-sl serve_adaptive "$tmp/serve.log" --no-leader-election --hub-id a-sl \
  --listen "127.0.0.1:$PORT"
check "the service is ready" wait_show 60 curl -sf "http://127.0.0.1:$PORT/readyz"
# On SIGTERM each task writes a file named after its attempt and rank, then exits.
job victim 0 yes "[bash, -c, 'trap \"echo TERM > $MARK.\$COMPUTENET_ATTEMPT.\$RANK; exit 0\" TERM; sleep 600 & wait']" | kubectl apply -f - >/dev/null
check "the restartable job runs on Slurm (attempt 1)" wait_show 60 bash -c "
  $(declare -f field is); NS=$NS; is \"\$(field victim '{.status.phase} {.status.attempt}')\" 'Running 1'"
J1=$(field victim '{.status.remote.name}')
echo "    attempt 1: batch job $J1"
sleep 8 # some progress
job preemptor 5 no "[sleep, '15']" | kubectl apply -f - >/dev/null
check "a job of priority 5 preempts it: attempt 1 recorded as Preempted with its progress" wait_show 60 bash -c "
  $(declare -f field is); NS=$NS
  is \"\$(field victim '{.status.admitted} {.status.attempts[0].attempt} {.status.attempts[0].reason}')\" 'false 1 Preempted' &&
  awk -v c=\"\$(field victim '{.status.attempts[0].completed}')\" -v p=\"\$(field victim '{.status.progress.completed}')\" 'BEGIN { exit !(c > 0 && p == c) }'"
check "its batch job $J1 was signalled, not cancelled: it ended FAILED (a cancel ends CANCELLED)" wait_show 30 bash -c "
  s=\$(scontrol show job $J1 2>/dev/null | grep -o 'JobState=[A-Z_]*'); echo \$s; [ \"\$s\" = JobState=FAILED ]"
echo "    batch job $J1: $(slurm_state "$J1"), ended $(slurm_field "$J1" EndTime)"
check "the preemptor runs, then finishes" wait_show 90 bash -c "$(declare -f field is); NS=$NS; is \"\$(field preemptor '{.status.phase}')\" Succeeded"
check "the victim resumes as attempt 2 on Slurm" wait_show 60 bash -c "
  $(declare -f field is); NS=$NS; is \"\$(field victim '{.status.phase} {.status.attempt}')\" 'Running 2'"
J2=$(field victim '{.status.remote.name}')
echo "    attempt 2: batch job $J2"
check "attempt 2 is a new batch job, tagged attempt=2" bash -c "
  [ -n '$J2' ] && [ '$J2' != '$J1' ] && scontrol show job $J2 | grep -q 'attempt=2'"
check "attempt 2 started after attempt 1 ended" bash -c "
  e=\$(date -d \"\$(scontrol show job $J1 | grep -o 'EndTime=[^ ]*' | cut -d= -f2)\" +%s) &&
  s=\$(date -d \"\$(scontrol show job $J2 | grep -o 'StartTime=[^ ]*' | cut -d= -f2)\" +%s) && echo \"\$e <= \$s\" && [ \"\$e\" -le \"\$s\" ]"
check "the progress is carried into attempt 2" bash -c "
  $(declare -f field); NS=$NS
  [ \"\$(field victim '{.status.progress.completed}')\" = \"\$(field victim '{.status.attempts[0].completed}')\" ]"
check "the Preempted condition and Event name the preemptor" bash -c "
  kubectl get events -n $NS --field-selector involvedObject.name=victim,reason=Preempted -o jsonpath='{.items[*].message}' | grep -q preemptor"

echo "    group run time: $(( $(date +%s) - started_at )) s"
summary
