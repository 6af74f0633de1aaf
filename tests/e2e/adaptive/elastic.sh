#!/usr/bin/env bash
# Adaptive group "elastic": an elastic job (spec.elastic 2..4, restartable) grows from 2
# to 4 replicas when capacity frees, and shrinks back to 2 when a higher-priority pending
# job of its queue needs the room.
#
# One member, a-el (ai-1, site a-el), whose 4 H800 nodes of 8 GPUs the jobs use. A rigid
# blocker holds 2; the elastic job starts with 2 (WORLD_SIZE 2, PET_NNODES 2:4). The
# blocker is deleted: a round (--adapt-interval-s 5) resizes the job to 4 (a new attempt,
# reason Resized; its member Job made again with 4 completions, WORLD_SIZE 4), the old pods
# gone before the new ones start. A rigid job of 2 nodes and priority 5 then waits: the next
# round gives the 2 borrowed replicas back (attempt 3, 2 replicas) and the newcomer runs.
#
# Needs the test bed (tests/testbed/up.sh --members 3 --gpu-nodes 8 --no-taint) and
#   cargo build -p computenet
# Port 18301. About 1 minute.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$here/lib.sh"
# shellcheck source=tests/e2e/adaptive/lib.bash
. "$here/adaptive/lib.bash"
use_testbed
started_at=$(date +%s)
tmp=$(mktemp -d)
NS=a-el
QUEUE=a-el-q
M=a-el
MEMBER_PREFIX=a-el-jobs
MEMBER_NS=$MEMBER_PREFIX-$NS
PORT=18301
PIDS=() SERVE_PID=''
export KUBECONFIG_AI=$AI_1_KUBECONFIG

cleanup() {
  stop_all
  kubectl get tj -n "$NS" -o name 2>/dev/null | xargs -r kubectl patch -n "$NS" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
  kubectl delete ns "$NS" --wait=false >/dev/null 2>&1
  kubectl delete cnq "$QUEUE" --ignore-not-found >/dev/null 2>&1
  kubectl delete mcl "$M" --ignore-not-found >/dev/null 2>&1
  KUBECONFIG=$KUBECONFIG_AI kubectl delete ns "$MEMBER_NS" --wait=false >/dev/null 2>&1
  if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

kubectl apply --server-side --force-conflicts -f "$root/deploy/crds/" >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=30s >/dev/null
wait_for 90 bash -c "! kubectl get ns $NS >/dev/null 2>&1" || { echo "namespace $NS still terminating" >&2; exit 1; }
wait_for 90 bash -c "! KUBECONFIG=$KUBECONFIG_AI kubectl get ns $MEMBER_NS >/dev/null 2>&1" ||
  { echo "member namespace $MEMBER_NS still terminating" >&2; exit 1; }
{ tenant_queue "$NS" a-el "$QUEUE"; echo "  priorityRange: {min: 0, max: 10}"; cat <<EOT
---
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: $M}
spec:
  kind: AI
  site: $M
  kubernetes: {kubeconfigSecretRef: {name: ai-1-kubeconfig, namespace: computenet-system, key: kubeconfig}, namespace: $MEMBER_PREFIX}
EOT
} | kubectl apply -f - >/dev/null

# rigid NAME REPLICAS [PRIORITY]: a gang of 8-GPU H800 replicas that runs for long.
rigid() {
  cat <<EOT
apiVersion: computenet.io/v1alpha1
kind: TrainingJob
metadata: {name: $1, namespace: $NS, annotations: {computenet.io/run-seconds: "3600"}}
spec:
  queueName: $QUEUE
  priority: ${3:-0}
  replicas: $2
  resources: {cpu: "4", memory: 16Gi, accelerators: {count: 8, types: [H800]}}
  workload: {image: example/train:1.0, command: [python, train.py]}
  work: {gpuHours: 10000000}
  placement: {sites: [$M]}
EOT
}
field() { kubectl get tj "$1" -n "$NS" -o jsonpath="$2" 2>/dev/null; }
running() { is "$(field "$1" '{.status.phase}')" Running; }
# pods_of UID ATTEMPT: how many pods of the attempt exist on the member.
pods_of() { KUBECONFIG=$KUBECONFIG_AI kubectl get pods -A -l "computenet.io/job-uid=$1,computenet.io/attempt=$2" -o name 2>/dev/null | wc -l; }
# job_env UID NAME: the value of NAME in the member Job's container.
job_env() {
  KUBECONFIG=$KUBECONFIG_AI kubectl get jobs -A -l "computenet.io/job-uid=$1" -o json |
    python3 -c "import json,sys; j=json.load(sys.stdin)['items'][0]; print(j['spec']['completions'], {e['name']: e.get('value') for e in j['spec']['template']['spec']['containers'][0]['env']}.get('$2'))"
}

COMPUTENET_TEST_NAMESPACE_PREFIX=a-el serve_adaptive "$tmp/serve.log" --no-leader-election --hub-id a-el \
  --listen "127.0.0.1:$PORT"
check "the service is ready" wait_show 60 curl -sf "http://127.0.0.1:$PORT/readyz"
rigid blocker 2 | kubectl apply -f - >/dev/null
check "a blocker holds 2 of the 4 H800 nodes" wait_show 60 bash -c "$(declare -f field running is); NS=$NS; running blocker"
kubectl apply -f - >/dev/null <<EOT
apiVersion: computenet.io/v1alpha1
kind: TrainingJob
metadata: {name: elastic, namespace: $NS, annotations: {computenet.io/run-seconds: "3600"}}
spec:
  queueName: $QUEUE
  replicas: 2
  elastic: {minReplicas: 2, maxReplicas: 4}
  checkpoint: {restartable: true, gracePeriodSeconds: 5, restartCostSeconds: 60}
  resources: {cpu: "4", memory: 16Gi, accelerators: {count: 8, types: [H800]}}
  workload: {image: example/train:1.0, command: [torchrun, train.py]}
  work: {gpuHours: 50000}
  placement: {sites: [$M]}
EOT
check "the elastic job runs with 2 replicas" wait_show 60 bash -c "
  $(declare -f field is); NS=$NS; is \"\$(field elastic '{.status.phase} {.status.placement.replicas} {.status.attempt}')\" 'Running 2 1'"
UID_E=$(field elastic '{.metadata.uid}')
check "its member Job: 2 completions, WORLD_SIZE 2, PET_NNODES 2:4" bash -c "
  $(declare -f job_env is); KUBECONFIG_AI=$KUBECONFIG_AI
  is \"\$(job_env $UID_E WORLD_SIZE)\" '2 2' && is \"\$(job_env $UID_E PET_NNODES)\" '2 2:4'"
podwatch "$KUBECONFIG_AI" "$UID_E" "$tmp/pods"
sleep 1

kubectl delete tj blocker -n "$NS" --wait=false >/dev/null
check "capacity frees: it grows to 4 replicas (attempt 2, reason Resized)" wait_show 60 bash -c "
  $(declare -f field is); NS=$NS
  is \"\$(field elastic '{.status.phase} {.status.placement.replicas} {.status.placement.gpus} {.status.attempt} {.status.attempts[0].reason} {.status.attempts[0].replicas}')\" 'Running 4 32 2 Resized 2'"
check "grown: the member Job has 4 completions and WORLD_SIZE 4; 4 pods of attempt 2 run" wait_show 30 bash -c "
  $(declare -f job_env pods_of is); KUBECONFIG_AI=$KUBECONFIG_AI
  is \"\$(job_env $UID_E WORLD_SIZE)\" '4 4' && is \"\$(pods_of $UID_E 2)\" 4"
check "grown: old pods stopped before new ones start" pods_in_order "$tmp/pods" 1 2
check "grown: the round's sentence is in the history" bash -c "
  $(declare -f field); NS=$NS; field elastic '{.status.attempts[0].message}' | grep -q 'resizes from 2 to 4 replicas'"

rigid newcomer 2 5 | kubectl apply -f - >/dev/null
check "a higher-priority pending job needs room: the elastic job shrinks back to 2 (attempt 3)" wait_show 60 bash -c "
  $(declare -f field is); NS=$NS
  is \"\$(field elastic '{.status.placement.replicas} {.status.attempt} {.status.attempts[1].reason} {.status.attempts[1].replicas}')\" '2 3 Resized 4'"
check "shrunk: the history says for whom" bash -c "
  $(declare -f field); NS=$NS; field elastic '{.status.attempts[1].message}' | grep -q 'gives back 2 borrowed replicas'"
check "shrunk: the newcomer runs, and so does the elastic job with 2 replicas" wait_show 60 bash -c "
  $(declare -f field running is job_env pods_of); NS=$NS KUBECONFIG_AI=$KUBECONFIG_AI
  running newcomer && running elastic && is \"\$(job_env $UID_E WORLD_SIZE)\" '2 2' && is \"\$(pods_of $UID_E 3)\" 2"
check "shrunk: old pods stopped before new ones start" pods_in_order "$tmp/pods" 2 3
check "shrunk: the progress is carried through both resizes" bash -c "
  $(declare -f field); NS=$NS
  awk -v a=\"\$(field elastic '{.status.attempts[0].completed}')\" -v b=\"\$(field elastic '{.status.attempts[1].completed}')\" -v p=\"\$(field elastic '{.status.progress.completed}')\" \
    'BEGIN { exit !(a > 0 && b >= a && p == b) }'"
sleep 6
check "no thrashing: the next round leaves it as it is" bash -c "
  $(declare -f field is); NS=$NS; is \"\$(field elastic '{.status.attempt}')\" 3"

echo "    group run time: $(( $(date +%s) - started_at )) s"
summary
