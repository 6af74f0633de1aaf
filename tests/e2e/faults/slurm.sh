#!/usr/bin/env bash
# Fault group "slurm": a lost submit answer, suspend then resume on Slurm, and two hubs
# sharing members. Each check is named after the fault it proves handled.
#
# - A slurmrestd behind a proxy (slurm_proxy.py) that holds one job's submit 7 s before
#   passing it on: the client gives up after 5 s, the batch job is made anyway, and its
#   answer is lost. The service must look the job up by its attempt key before submitting
#   again: exactly one batch job for the attempt (counted from slurmrestd's own list).
# - Suspend, then resume, a job running on Slurm: the resumed attempt has its own key, so
#   the cancelled batch job of the first attempt is not taken for it; it runs and succeeds.
# - Two hubs on one member: the test bed's hub, and the member ai-3's apiserver acting as a
#   second hub (its own CRDs, MemberClusters, queue, jobs and `computenet serve`, each with
#   its default hub id: the UID of its lease namespace). Both send a job to the Kubernetes
#   member ai-1 and one to Slurm, running longer than the orphan age: neither hub deletes
#   the other's, and all four succeed.
#
# Needs the test bed with Slurm (tests/testbed/up.sh --members 3 --gpu-nodes 8 --no-taint).
# Ports: 18140 (hub A's serve), 18141 (hub B's serve), 18142 (the proxy). About 2 minutes.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"
use_testbed
export SLURM_CONF
[ -n "${SLURMRESTD_URL:-}" ] || { echo "the test bed runs without Slurm (up.sh --no-slurm?)" >&2; exit 1; }
[ -n "${AI_3_KUBECONFIG:-}" ] || { echo "the test bed has no member ai-3 (up.sh --members 3)" >&2; exit 1; }
NS_A=f-slurm-a NS_B=f-slurm-b HUB_B_NS=f-slurm-hub-b
PROXY_PORT=18142
tmp=$(mktemp -d)
PIDS=()
B=(kubectl --kubeconfig "$AI_3_KUBECONFIG")
crds_on_b_before=$("${B[@]}" get crd trainingjobs.computenet.io -o name 2>/dev/null)

cleanup() {
  kubectl delete tj --all -n "$NS_A" --timeout=30s >/dev/null 2>&1
  "${B[@]}" delete tj --all -n "$NS_B" --timeout=30s >/dev/null 2>&1
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  for k in "kubectl" "${B[*]}"; do
    for ns in "$NS_A" "$NS_B"; do
      $k get tj -n "$ns" -o name 2>/dev/null | xargs -r -n1 $k patch -n "$ns" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
    done
  done
  # Nothing of this group keeps running on Slurm or ai-1.
  squeue -h -o '%i %k' 2>/dev/null | grep -E "job=($NS_A|$NS_B)/" | awk '{print $1}' | xargs -r scancel 2>/dev/null
  for ns in "$NS_A" "$NS_B"; do # each hub namespace's jobs have their own member namespace
    KUBECONFIG=$AI_1_KUBECONFIG kubectl delete jobs,services,networkpolicies -n "computenet-jobs-$ns" -l computenet.io/managed=true --wait=false >/dev/null 2>&1
  done
  kubectl delete ns "$NS_A" --wait=false >/dev/null 2>&1
  kubectl delete mcl ai-1 slurm >/dev/null 2>&1
  kubectl delete cnq f-slurm-a >/dev/null 2>&1
  "${B[@]}" delete ns "$NS_B" "$HUB_B_NS" --wait=false >/dev/null 2>&1
  "${B[@]}" delete mcl ai-1 slurm >/dev/null 2>&1
  "${B[@]}" delete cnq f-slurm-b >/dev/null 2>&1
  [ -z "$crds_on_b_before" ] && "${B[@]}" delete -f "$root/deploy/crds/" --wait=false >/dev/null 2>&1
  if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# tj NS NAME KINDS COMMAND RUN_SECONDS(on Kubernetes)
tj() {
  cat <<EOT
apiVersion: computenet.io/v1alpha1
kind: TrainingJob
metadata: {name: $2, namespace: $1, annotations: {computenet.io/run-seconds: "$5"}}
spec:
  queueName: $1
  replicas: 1
  resources: {cpu: "1", memory: 1Gi, accelerators: {count: 1}}
  workload: {image: example/train:1.0, command: $4}
  work: {gpuHours: 1}
  placement: {clusterKinds: [$3]}
  maxRunSeconds: 600
EOT
}
# setup KUBECTL... : the namespace, queue and MemberClusters of one hub (Slurm at $SLURM_ENDPOINT)
setup() {
  local ns=$1 secrets=$2; shift 2
  "$@" apply -f - >/dev/null <<EOT
apiVersion: v1
kind: Namespace
metadata: {name: $ns, labels: {computenet.io/tenant: $ns}}
---
apiVersion: computenet.io/v1alpha1
kind: ComputeQueue
metadata: {name: $ns}
spec:
  namespaceSelector: {matchLabels: {computenet.io/tenant: $ns}}
  quotas: [{resource: nvidia.com/gpu, nominal: 64}]
---
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: ai-1}
spec:
  kind: AI
  site: west
  kubernetes: {kubeconfigSecretRef: {name: ai-1-kubeconfig, namespace: $secrets, key: kubeconfig}, namespace: computenet-jobs}
---
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: slurm}
spec:
  kind: HPC
  site: east
  slurm:
    endpoint: $SLURM_ENDPOINT
    insecureHTTP: true # the test bed's slurmrestd (and the proxy) speak plain http
    apiVersion: $SLURM_API_VERSION
    userName: $SLURM_USER_NAME
    jwtKeySecretRef: {name: slurm-jwt-key, namespace: $secrets, key: jwt_hs256.key}
    workingDirectory: $SLURM_JOB_DIR
    standardOutput: "%x-%j.out"
EOT
}
phase() { "${@:3}" get tj "$2" -n "$1" -o jsonpath='{.status.phase}' 2>/dev/null; }
phase_is() { [ "$(phase "$1" "$2" "${@:4}")" = "$3" ]; }
uid_of() { "${@:3}" get tj "$2" -n "$1" -o jsonpath='{.metadata.uid}'; }
# batch_jobs UID: "id STATE" of every batch job Slurm lists for the TrainingJob (from
# slurmrestd itself, not through the proxy), by its UID in the comment.
batch_jobs() {
  curl -sf -H "X-SLURM-USER-NAME: $SLURM_USER_NAME" -H "X-SLURM-USER-TOKEN: $SLURM_USER_TOKEN" \
    "$SLURMRESTD_URL/slurm/$SLURM_API_VERSION/jobs" |
    python3 -c 'import json,sys
uid = sys.argv[1]
for j in json.load(sys.stdin).get("jobs", []):
    if ("uid=" + uid) in (j.get("comment") or ""):
        s = j.get("job_state"); s = s[0] if isinstance(s, list) else s
        print(j.get("job_id"), s)' "$1"
}

kubectl apply -f "$root/deploy/crds/" >/dev/null
"${B[@]}" apply -f "$root/deploy/crds/" >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=30s >/dev/null
"${B[@]}" wait --for=condition=Established crd --all --timeout=30s >/dev/null
for k in "kubectl" "${B[*]}"; do
  wait_for 60 bash -c "! $k get ns $NS_A $NS_B >/dev/null 2>&1" || { echo "a namespace of an earlier run is still terminating" >&2; exit 1; }
done

# The proxy: holds the submit of hub A's job "lost" only.
python3 "$here/slurm_proxy.py" "$PROXY_PORT" "$SLURMRESTD_URL" 7 "$NS_A/lost" 2> "$tmp/proxy.log" &
PIDS+=($!)
wait_for 10 curl -s -o /dev/null "http://127.0.0.1:$PROXY_PORT/" || { echo "the proxy did not start" >&2; exit 1; }

# Hub A: the test bed's hub; its Slurm member is reached through the proxy.
kubectl delete mcl --all >/dev/null 2>&1
SLURM_ENDPOINT=http://127.0.0.1:$PROXY_PORT setup "$NS_A" computenet-system kubectl
setsid "$BIN" serve --kubeconfig "$HUB_KUBECONFIG" --no-leader-election --listen 127.0.0.1:18140 \
  --interval-ms 500 --member-timeout-s 10 > "$tmp/serve-a.log" 2>&1 &
PIDS+=($!)

# Hub B: the apiserver of ai-3, with its own credentials for the same two members.
"${B[@]}" create ns "$HUB_B_NS" >/dev/null
"${B[@]}" -n "$HUB_B_NS" create secret generic ai-1-kubeconfig --from-file=kubeconfig="$AI_1_KUBECONFIG" >/dev/null
"${B[@]}" -n "$HUB_B_NS" create secret generic slurm-jwt-key --from-file=jwt_hs256.key="$SLURM_JWT_KEY_FILE" >/dev/null
"${B[@]}" -n "$HUB_B_NS" label secret ai-1-kubeconfig slurm-jwt-key computenet.io/credentials=true >/dev/null
SLURM_ENDPOINT=$SLURMRESTD_URL setup "$NS_B" "$HUB_B_NS" "${B[@]}"
setsid "$BIN" serve --kubeconfig "$AI_3_KUBECONFIG" --no-leader-election --listen 127.0.0.1:18141 \
  --lease-namespace "$HUB_B_NS" --interval-ms 500 --member-timeout-s 10 \
  > "$tmp/serve-b.log" 2>&1 &
PIDS+=($!)

ready() { [ "$("${@:2}" get mcl "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]; }
for m in ai-1 slurm; do
  wait_for 60 ready "$m" kubectl || { echo "hub A: member $m not Ready" >&2; tail -20 "$tmp/serve-a.log" >&2; exit 1; }
  wait_for 60 ready "$m" "${B[@]}" || { echo "hub B: member $m not Ready" >&2; tail -20 "$tmp/serve-b.log" >&2; exit 1; }
done

# --- Two hubs: long jobs on both members from both hubs (they outlive the 30 s orphan age).
start=$(date +%s)
for h in A B; do
  if [ $h = A ]; then ns=$NS_A k=(kubectl); else ns=$NS_B k=("${B[@]}"); fi
  { tj "$ns" two-k8s AI '["sleep", "50"]' 50; echo ---; tj "$ns" two-slurm HPC '["sleep", "50"]' 50; } | "${k[@]}" apply -f - >/dev/null
done

# --- A lost submit answer (hub A, through the proxy).
tj "$NS_A" lost HPC '["sleep", "5"]' 5 | kubectl apply -f - >/dev/null
check "a submit whose answer is lost: the job still runs to Succeeded" wait_for 120 phase_is "$NS_A" lost Succeeded kubectl
uid_lost=$(uid_of "$NS_A" lost kubectl)
batch_jobs "$uid_lost" > "$tmp/lost.jobs"
check "a submit whose answer is lost: exactly one batch job for the attempt ($(wc -l < "$tmp/lost.jobs") listed)" \
  bash -c "[ \$(wc -l < '$tmp/lost.jobs') = 1 ]"
check "a submit whose answer is lost: looked up, not submitted again ($(grep -c holding "$tmp/proxy.log") submit(s) sent)" \
  bash -c "[ \$(grep -c holding '$tmp/proxy.log') = 1 ]"

# --- Suspend, then resume, on Slurm (hub A; its submits are not held).
tj "$NS_A" resume HPC '["sleep", "15"]' 15 | kubectl apply -f - >/dev/null
wait_for 60 phase_is "$NS_A" resume Running kubectl || echo "    (resume never ran: $(phase "$NS_A" resume kubectl))"
kubectl patch tj resume -n "$NS_A" --type=merge -p '{"spec":{"suspend":true}}' >/dev/null
wait_for 30 phase_is "$NS_A" resume Suspended kubectl || echo "    (not suspended: $(phase "$NS_A" resume kubectl))"
kubectl patch tj resume -n "$NS_A" --type=merge -p '{"spec":{"suspend":false}}' >/dev/null
check "suspend then resume on Slurm: the job runs again and ends Succeeded" \
  wait_for 90 phase_is "$NS_A" resume Succeeded kubectl
batch_jobs "$(uid_of "$NS_A" resume kubectl)" > "$tmp/resume.jobs"
check "suspend then resume on Slurm: a new batch job for the new attempt ($(tr '\n' ' ' < "$tmp/resume.jobs"))" \
  bash -c "grep -q CANCELLED '$tmp/resume.jobs' && grep -q COMPLETED '$tmp/resume.jobs' && [ \$(wc -l < '$tmp/resume.jobs') = 2 ]"

# --- Two hubs, continued: all four end Succeeded, none deleted by the other hub.
all_succeeded() {
  phase_is "$NS_A" two-k8s Succeeded kubectl && phase_is "$NS_A" two-slurm Succeeded kubectl &&
    phase_is "$NS_B" two-k8s Succeeded "${B[@]}" && phase_is "$NS_B" two-slurm Succeeded "${B[@]}"
}
check "two hubs on one member: neither deletes the other's jobs (all four Succeeded)" \
  wait_for $((start + 150 - $(date +%s))) all_succeeded
echo "    hub A: $(phase "$NS_A" two-k8s kubectl) $(phase "$NS_A" two-slurm kubectl); hub B: $(phase "$NS_B" two-k8s "${B[@]}") $(phase "$NS_B" two-slurm "${B[@]}")"
batch_jobs "$(uid_of "$NS_A" two-slurm kubectl)" > "$tmp/two-a.jobs"
batch_jobs "$(uid_of "$NS_B" two-slurm "${B[@]}")" > "$tmp/two-b.jobs"
check "two hubs on one member: each hub's Slurm job ran once, never cancelled ($(tr '\n' ' ' < "$tmp/two-a.jobs")/ $(tr '\n' ' ' < "$tmp/two-b.jobs"))" \
  bash -c "[ \"\$(cat '$tmp/two-a.jobs' '$tmp/two-b.jobs' | awk '{print \$2}' | tr '\n' ' ')\" = 'COMPLETED COMPLETED ' ]"
summary
