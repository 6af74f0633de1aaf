#!/usr/bin/env bash
# Slurm members on the test bed: computenet serve against the real Slurm (slurmctld, slurmd
# x4, slurmrestd with JWT) beside the Kubernetes member ai-1, driven with kubectl, sinfo and
# scontrol as users and admins would.
#
# Needs the test bed up with Slurm (the default): tests/testbed/up.sh --members 3 --gpu-nodes 8 --no-taint
# (Slurm: node1-2 with gpu:a100:8, node3-4 with gpu:h800:8, 32 CPUs each).
# COMPUTENET_BIN points at the computenet binary (default: target/debug/computenet).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
use_testbed
export SLURM_CONF
[ -n "${SLURMRESTD_URL:-}" ] || { echo "the test bed runs without Slurm (up.sh --no-slurm?)" >&2; exit 1; }
NS=slurm-e2e
tmp=$(mktemp -d)
SERVE_PID=

restd_pid() { cat "$TESTBED_RUN_DIR/pids/slurmrestd.pid" 2>/dev/null; }
restd_up() { curl -sf -o /dev/null -H "X-SLURM-USER-NAME: $SLURM_USER_NAME" -H "X-SLURM-USER-TOKEN: $SLURM_USER_TOKEN" "$SLURMRESTD_URL/slurm/$SLURM_API_VERSION/ping"; }
restd_start() { # as the test bed starts it (see tests/testbed/up.sh)
  restd_up && return 0
  SLURM_JWT=daemon setsid /usr/sbin/slurmrestd -a rest_auth/jwt -s "openapi/$SLURM_API_VERSION" -u nobody \
    "${SLURMRESTD_URL#http://}" </dev/null >>"$TESTBED_RUN_DIR/logs/slurm/slurmrestd.log" 2>&1 &
  echo $! > "$TESTBED_RUN_DIR/pids/slurmrestd.pid"
  wait_for 20 restd_up
}
cleanup() {
  kubectl delete tj --all -n "$NS" --timeout=60s >/dev/null 2>&1
  [ -n "$SERVE_PID" ] && { kill "$SERVE_PID" 2>/dev/null; wait "$SERVE_PID" 2>/dev/null; }
  kubectl get tj -n "$NS" -o name 2>/dev/null | xargs -r -n1 kubectl patch -n "$NS" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
  restd_start >/dev/null 2>&1
  scontrol update partitionname=debug state=up >/dev/null 2>&1
  scontrol update nodename=node4 state=resume >/dev/null 2>&1
  # Nothing of this test keeps running on Slurm.
  squeue -h -o %i -n "$(squeue -h -o '%j' | grep '^cn-' | sort -u | paste -sd, -)" 2>/dev/null | xargs -r scancel 2>/dev/null
  kubectl delete ns "$NS" --wait=false >/dev/null 2>&1
  kubectl delete mcl slurm slurm-bogus slurm-empty >/dev/null 2>&1
  kubectl -n computenet-system delete secret slurm-e2e-tokens >/dev/null 2>&1
  kubectl delete cnq hpc >/dev/null 2>&1
  if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

field() { kubectl get tj "$1" -n "$NS" -o jsonpath="$2" 2>/dev/null; }
phase_is() { [ "$(field "$1" '{.status.phase}')" = "$2" ]; }
wait_phase() { wait_for "$3" phase_is "$1" "$2"; }
mcl_field() { kubectl get mcl "$1" -o jsonpath="$2" 2>/dev/null; }
ready_is() { [ "$(mcl_field "$1" '{.status.conditions[?(@.type=="Ready")].status}')" = "$2" ]; }
slurm_state() { scontrol show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }

# tj NAME KINDS REPLICAS GPUS COMMAND [EXTRA_SPEC] [RUN_SECONDS on Kubernetes]
tj() {
  local name=$1 kinds=$2 replicas=$3 gpus=$4 command=$5 extra=${6:-} run=${7:-3}
  cat <<EOT
---
apiVersion: computenet.io/v1alpha1
kind: TrainingJob
metadata:
  name: $name
  namespace: $NS
  annotations: {computenet.io/run-seconds: "$run"}
spec:
  queueName: hpc
  replicas: $replicas
  resources: {cpu: "2", memory: 1Gi, accelerators: {count: $gpus}}
  workload: {image: example/train:1.0, command: $command, env: [{name: GREETING, value: "hello slurm"}]}
  work: {gpuHours: 1}
  placement: {clusterKinds: [$kinds]}
  maxRunSeconds: 600
$extra
EOT
}

kubectl apply -f "$root/deploy/crds/" >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=30s >/dev/null
wait_for 60 bash -c "! kubectl get ns $NS >/dev/null 2>&1" || { echo "namespace $NS still terminating" >&2; exit 1; }
# Only the two members of this test take part.
kubectl delete mcl --all >/dev/null 2>&1
{ cat <<EOT
apiVersion: v1
kind: Namespace
metadata: {name: $NS, labels: {computenet.io/tenant: hpc-e2e}}
---
apiVersion: computenet.io/v1alpha1
kind: ComputeQueue
metadata: {name: hpc}
spec:
  namespaceSelector: {matchLabels: {computenet.io/tenant: hpc-e2e}}
  quotas: [{resource: nvidia.com/gpu, nominal: 256}]
---
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: ai-1}
spec:
  kind: AI
  site: west
  kubernetes: {kubeconfigSecretRef: {name: ai-1-kubeconfig, namespace: computenet-system, key: kubeconfig}, namespace: computenet-jobs}
  efficiency: {pue: 1.6, energyPricePerKWh: 1.2}
---
EOT
  slurm_member slurm east
  echo "  efficiency: {pue: 1.05, energyPricePerKWh: 0.3}"
} | kubectl apply -f - >/dev/null

setsid "$BIN" serve --kubeconfig "$HUB_KUBECONFIG" --no-leader-election --interval-ms 500 --member-timeout-s 5 \
  > "$tmp/serve.log" 2>&1 &
SERVE_PID=$!

# --- Capacity: what sinfo reports.
sinfo_gpus() { # free/total GPUs of schedulable nodes, as sinfo sees them
  sinfo -h -N -O "NodeList:20,Gres:30,GresUsed:40,StateLong:20" | awk '
    { split($2, g, ":"); total += g[3]; split($3, u, ":"); sub(/\(.*/, "", u[3]);
      if ($4 !~ /drain|down|not_responding|fail|maint/) free += g[3] - u[3] }
    END { printf "%d/%d", free, total }'
}
sinfo_cpus() { sinfo -h -o %C | awk -F/ '{ printf "%d/%d", $2, $4 }'; }
check "the Slurm member turns Ready" wait_for 30 ready_is slurm True
check "its GPUs free/total match sinfo ($(sinfo_gpus))" wait_for 20 bash -c '[ "$(kubectl get mcl slurm -o jsonpath={.status.gpus})" = "$1" ]' _ "$(sinfo_gpus)"
check "its CPUs free/total match sinfo ($(sinfo_cpus))" wait_for 20 bash -c '[ "$(kubectl get mcl slurm -o jsonpath={.status.cpus})" = "$1" ]' _ "$(sinfo_cpus)"
check "GPU types come from gres (A100-80G and H800, 16 each)" bash -c '
  [ "$(kubectl get mcl slurm -o jsonpath="{.status.accelerators[?(@.accelerator==\"H800\")].total}")" = 16 ] &&
  [ "$(kubectl get mcl slurm -o jsonpath="{.status.accelerators[?(@.accelerator==\"A100-80G\")].total}")" = 16 ]'
check "kubectl get mcl shows it as HPC" bash -c 'kubectl get mcl slurm | tail -1 | grep -E "slurm +HPC +east +True"'

# --- Credentials Slurm refuses: NotReady with a reason that says so, never a crash.
kubectl -n computenet-system create secret generic slurm-e2e-tokens --from-literal=bogus=not-a-token \
  --from-literal=empty= --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n computenet-system label secret slurm-e2e-tokens computenet.io/credentials=true --overwrite >/dev/null
for key in bogus empty; do cat <<EOT
---
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: slurm-$key}
spec:
  kind: HPC
  site: nowhere
  slurm: {endpoint: "$SLURMRESTD_URL", insecureHTTP: true, userName: "$SLURM_USER_NAME", tokenSecretRef: {name: slurm-e2e-tokens, namespace: computenet-system, key: $key}}
EOT
done | kubectl apply -f - >/dev/null
check "a token slurmctld rejects: NotReady, ServerError, with a hint to check the Secret" wait_for 30 bash -c '
  [ "$(kubectl get mcl slurm-bogus -o jsonpath="{.status.conditions[?(@.type==\"Ready\")].status} {.status.conditions[?(@.type==\"Ready\")].reason}")" = "False ServerError" ] &&
  kubectl get mcl slurm-bogus -o jsonpath="{.status.conditions[?(@.type==\"Ready\")].message}" | grep -q "check the user name and the token"'
check "an empty token: NotConnected, naming the Secret" wait_for 30 bash -c '
  [ "$(kubectl get mcl slurm-empty -o jsonpath="{.status.conditions[?(@.type==\"Ready\")].status} {.status.conditions[?(@.type==\"Ready\")].reason}")" = "False NotConnected" ] &&
  kubectl get mcl slurm-empty -o jsonpath="{.status.conditions[?(@.type==\"Ready\")].message}" | grep -q "slurm-e2e-tokens.*is empty"'
kubectl delete mcl slurm-bogus slurm-empty >/dev/null
kubectl -n computenet-system delete secret slurm-e2e-tokens >/dev/null

scontrol update nodename=node4 state=drain reason=computenet-e2e
check "a drained node's GPUs leave the free capacity (24/32)" wait_for 20 bash -c '[ "$(kubectl get mcl slurm -o jsonpath={.status.gpus})" = 24/32 ]'
scontrol update nodename=node4 state=resume
check "resumed, they come back (32/32)" wait_for 20 bash -c '[ "$(kubectl get mcl slurm -o jsonpath={.status.gpus})" = 32/32 ]'

# --- A job restricted to HPC runs on Slurm; one that exits non-zero fails with its code.
tj hpc-ok HPC 2 4 '["bash", "-c", "echo \"$GREETING: rank $RANK of $WORLD_SIZE via $MASTER_ADDR:$MASTER_PORT\""]' | kubectl apply -f - >/dev/null
tj hpc-fail HPC 1 1 '["bash", "-c", "exit 3"]' | kubectl apply -f - >/dev/null
check "an HPC-only job reaches Succeeded on Slurm" wait_phase hpc-ok Succeeded 60
check "it ran as a Slurm batch job named by its UID" bash -c '
  [ "$(kubectl get tj hpc-ok -n '"$NS"' -o jsonpath="{.status.placement.cluster} {.status.remote.kind}")" = "slurm SlurmJob" ]'
id=$(field hpc-ok '{.status.remote.name}')
check "every rank ran once with the training environment" bash -c '
  out=$(cat "$1"/cn-*-"$2".out) && echo "$out" | grep -q "hello slurm: rank 0 of 2 via .*:29500" && echo "$out" | grep -q "hello slurm: rank 1 of 2" &&
  [ "$(echo "$out" | grep -c "rank")" = 2 ]' _ "$SLURM_JOB_DIR" "$id"
check "Slurm says COMPLETED" bash -c '[ "$(scontrol show job "$1" | grep -o "JobState=[A-Z]*")" = JobState=COMPLETED ]' _ "$id"
check "its placement lists the nodes Slurm ran it on" bash -c '
  nodes=$(kubectl get tj hpc-ok -n '"$NS"' -o jsonpath="{.status.placement.nodes[*].node}")
  [ "$(echo $nodes | wc -w)" = 2 ] && echo "$nodes" | grep -Eq "^node[1-4] node[1-4]$"'
check "a job that exits 3 reaches Failed with exit code 3" wait_phase hpc-fail Failed 60
check "its condition says why" bash -c '
  [ "$(kubectl get tj hpc-fail -n '"$NS"' -o jsonpath="{.status.exitCode}")" = 3 ] &&
  kubectl get tj hpc-fail -n '"$NS"' -o jsonpath="{.status.conditions[?(@.type==\"Finished\")].reason} {.status.conditions[?(@.type==\"Finished\")].message}" | grep -E "^NonZeroExitCode .*exit code 3"'

# --- Deleting a running TrainingJob cancels its Slurm job.
tj hpc-long HPC 1 8 '["sleep", "300"]' | kubectl apply -f - >/dev/null
check "a long HPC job runs" wait_phase hpc-long Running 60
long=$(field hpc-long '{.status.remote.name}')
check "Slurm runs it ($long)" bash -c '[ "$(scontrol show job "$1" | grep -o "JobState=[A-Z]*")" = JobState=RUNNING ]' _ "$long"
kubectl delete tj hpc-long -n "$NS" --timeout=30s >/dev/null 2>&1
check "deleting the TrainingJob cancels the Slurm job" wait_for 20 bash -c '[ "$(scontrol show job "$1" | grep -o "JobState=[A-Z]*")" = JobState=CANCELLED ]' _ "$long"
check "and the TrainingJob is gone" wait_for 20 bash -c '! kubectl get tj hpc-long -n '"$NS"

# --- slurmrestd stops: NotReady with a reason; a job not yet started there moves to ai-1.
# The partition is down, so Slurm keeps the batch job PENDING (dispatched, not started).
kubectl patch mcl ai-1 --type=merge -p '{"spec":{"cordoned":true}}' >/dev/null
scontrol update partitionname=debug state=down
tj moved "HPC, AI" 1 8 '["sleep", "2"]' | kubectl apply -f - >/dev/null
check "a job allowed on HPC and AI is dispatched to Slurm while ai-1 is cordoned" wait_for 45 bash -c '
  [ "$(kubectl get tj moved -n '"$NS"' -o jsonpath="{.status.phase} {.status.placement.cluster}")" = "Dispatched slurm" ]'
first=$(field moved '{.status.remote.name}')
check "Slurm holds it PENDING ($first)" bash -c '[ "$(scontrol show job "$1" | grep -o "JobState=[A-Z]*")" = JobState=PENDING ]' _ "$first"
kubectl patch mcl ai-1 --type=merge -p '{"spec":{"cordoned":false}}' >/dev/null
kill "$(restd_pid)"
check "slurmrestd stopped: the member turns NotReady with a reason" wait_for 30 bash -c '
  [ "$(kubectl get mcl slurm -o jsonpath="{.status.conditions[?(@.type==\"Ready\")].status} {.status.conditions[?(@.type==\"Ready\")].reason}")" = "False Unreachable" ] &&
  kubectl get mcl slurm -o jsonpath="{.status.conditions[?(@.type==\"Ready\")].message}" | grep -qi "listing"'
check "its not-yet-started job is placed on ai-1 and succeeds there" wait_for 60 bash -c '
  [ "$(kubectl get tj moved -n '"$NS"' -o jsonpath="{.status.phase} {.status.placement.cluster} {.status.requeues}")" = "Succeeded ai-1 1" ]'
check "the scheduler never panicked" bash -c '! grep -q panicked "$1"' _ "$tmp/serve.log"
restd_start
check "slurmrestd back: the member turns Ready again" wait_for 30 ready_is slurm True
check "the first attempt's batch job is cancelled, so the job runs exactly once" wait_for 60 bash -c '[ "$(scontrol show job "$1" | grep -o "JobState=[A-Z]*")" = JobState=CANCELLED ]' _ "$first"
scontrol update partitionname=debug state=up

# --- A mixed workload across ai-1 and Slurm: each job where the core says, all complete.
for i in 1 2 3 4 5 6; do
  case $((i % 3)) in 0) kinds=AI ;; 1) kinds=HPC ;; 2) kinds="HPC, AI" ;; esac
  tj "mix-$i" "$kinds" 2 4 '["sleep", "2"]' "" 2
done | kubectl apply -f - >/dev/null
all_done() {
  for i in 1 2 3 4 5 6; do phase_is "mix-$i" Succeeded || return 1; done
}
check "a mixed workload of 6 jobs all succeed" wait_for 120 all_done
check "each ran on the member the core placed it on, of an allowed kind" bash -c '
  for i in 1 2 3 4 5 6; do
    read -r cluster remote kind <<<"$(kubectl get tj mix-$i -n '"$NS"' -o jsonpath="{.status.placement.cluster} {.status.remote.cluster} {.status.remote.kind}")"
    [ "$cluster" = "$remote" ] || { echo "mix-$i placed on $cluster but ran on $remote"; exit 1; }
    case $((i % 3)) in
      0) [ "$cluster/$kind" = ai-1/Job ] ;;
      1) [ "$cluster/$kind" = slurm/SlurmJob ] ;;
      2) [ "$cluster/$kind" = ai-1/Job ] || [ "$cluster/$kind" = slurm/SlurmJob ] ;;
    esac || { echo "mix-$i: $cluster/$kind"; exit 1; }
  done'
check "the Slurm ones are COMPLETED batch jobs" bash -c '
  for i in 1 4; do id=$(kubectl get tj mix-$i -n '"$NS"' -o jsonpath="{.status.remote.name}")
    [ "$(scontrol show job "$id" | grep -o "JobState=[A-Z]*")" = JobState=COMPLETED ] || { echo "mix-$i ($id) not COMPLETED"; exit 1; }; done'
check "no job was dispatched twice (one batch job per attempt)" bash -c '
  [ -z "$(squeue -h -t all -o "%j %k" | grep "^cn-" | sort | uniq -d)" ]'
check "the scheduler log has no panic" bash -c '! grep -q panicked "$1"' _ "$tmp/serve.log"

summary
