#!/usr/bin/env bash
# The service's shared hub view, measured profiles and dispatch backoff, on the test bed:
# - `kubectl get cnq`, the dashboard's /api/pool and `kubectl computenet queue` show the
#   same jobs, usage and quota for every queue (one computation in computenet-api's view);
# - a job naming a profiled model gets the profile's estimate (from the computenet-profiles
#   ConfigMap) in its explanation: the same runtime as `computenet estimate` with that
#   profile, and not the fallback's;
# - a job whose member refuses its dispatch for now (a full ResourceQuota there) is retried
#   with growing delays, visible in its status and in computenet_dispatch_errors_total,
#   not on every pass.
#
# Needs the test bed (tests/testbed/up.sh --members 3 --gpu-nodes 8 --no-taint) and
#   cargo build -p computenet -p kubectl-computenet
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
use_testbed
PLUGIN_BIN=${PLUGIN_BIN:-$root/target/debug/kubectl-computenet}
[ -x "$PLUGIN_BIN" ] || { echo "plugin not found at $PLUGIN_BIN (cargo build -p kubectl-computenet)" >&2; exit 1; }
tmp=$(mktemp -d)
mkdir -p "$tmp/bin" && ln -s "$PLUGIN_BIN" "$tmp/bin/kubectl-computenet"
export PATH="$tmp/bin:$PATH"
NS=e2e-svc
# The member namespace of this hub namespace's jobs (prefix computenet-jobs).
JOBS_NS=computenet-jobs-$NS
PORT=${SERVICE_PORT:-18095}
SERVE_PID=

cleanup() {
  kubectl delete tj --all -n "$NS" --timeout=60s >/dev/null 2>&1
  [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null
  kubectl get tj -n "$NS" -o name 2>/dev/null | xargs -r kubectl patch -n "$NS" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
  kubectl delete ns "$NS" --wait=false >/dev/null 2>&1
  kubectl delete cnq svc-all svc-typed --ignore-not-found >/dev/null 2>&1
  kubectl delete configmap computenet-profiles -n computenet-system --ignore-not-found >/dev/null 2>&1
  kubectl --kubeconfig "$AI_1_KUBECONFIG" delete quota e2e-svc-full -n "$JOBS_NS" --ignore-not-found >/dev/null 2>&1
  if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

kubectl apply -f "$root/deploy/crds/" >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=30s >/dev/null
wait_for 60 bash -c "! kubectl get ns $NS >/dev/null 2>&1" || { echo "namespace $NS still terminating" >&2; exit 1; }

# A profile of "bert" on A100-80G in computenet's own format: 4 steps/s on one node of 8.
cat > "$tmp/lab.yaml" <<'EOT'
profiles:
- model: bert
  accelerator: A100-80G
  points: [{gpus: 8, nodes: 1, stepsPerS: 4.0}]
EOT
kubectl create configmap computenet-profiles -n computenet-system --from-file=lab.yaml="$tmp/lab.yaml" \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null

kubectl apply -f - >/dev/null <<EOT
apiVersion: v1
kind: Namespace
metadata: {name: $NS, labels: {computenet.io/tenant: svc}}
---
apiVersion: computenet.io/v1alpha1
kind: ComputeQueue
metadata: {name: svc-all}
spec:
  namespaceSelector: {matchLabels: {computenet.io/tenant: svc}}
  quotas: [{resource: nvidia.com/gpu, nominal: 24}]
---
apiVersion: computenet.io/v1alpha1
kind: ComputeQueue
metadata: {name: svc-typed}
spec:
  namespaceSelector: {matchLabels: {computenet.io/tenant: svc}}
  quotas:
  - {resource: nvidia.com/gpu, accelerator: A100-80G, nominal: 8}
  - {resource: nvidia.com/gpu, accelerator: H800, nominal: 8}
---
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: ai-1}
spec:
  kind: AI
  site: west
  kubernetes: {kubeconfigSecretRef: {name: ai-1-kubeconfig, namespace: computenet-system, key: kubeconfig}, namespace: computenet-jobs}
  efficiency: {pue: 1.1, energyPricePerKWh: 0.5}
EOT

# --web-auth none: /api/pool without a token, which only a loopback address allows.
setsid "$BIN" serve --kubeconfig "$HUB_KUBECONFIG" --no-leader-election --interval-ms 500 \
  --listen "127.0.0.1:$PORT" --web-auth none --profiles-namespace computenet-system > "$tmp/serve.log" 2>&1 &
SERVE_PID=$!
check "the service is ready" wait_for 60 curl -sf "http://127.0.0.1:$PORT/readyz"
check "ai-1 is Ready" wait_for 60 bash -c "[ \"\$(kubectl get mcl ai-1 -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}')\" = True ]"

# tj NAME QUEUE GPUS WORK [EXTRA]
tj() {
  cat <<EOT
---
apiVersion: computenet.io/v1alpha1
kind: TrainingJob
metadata: {name: $1, namespace: $NS, annotations: {computenet.io/run-seconds: "600"}}
spec:
  queueName: $2
  replicas: 1
  resources: {cpu: "4", memory: 16Gi, accelerators: {count: $3, types: [A100-80G]}}
  workload: {image: example/train:1.0, command: ["python", "train.py"]}
  work: $4
  maxRunSeconds: 86400
${5:-}
EOT
}
field() { kubectl get tj "$1" -n "$NS" -o jsonpath="$2" 2>/dev/null; }

# --- measured profiles in the service
tj bert-profiled svc-all 8 "{model: bert, steps: 36000}" > "$tmp/bert.yaml"
tj gpt-unprofiled svc-all 8 "{model: gpt-x, steps: 36000}" > "$tmp/gpt.yaml"
kubectl apply -f "$tmp/bert.yaml" -f "$tmp/gpt.yaml" >/dev/null
check "both jobs are admitted" wait_for 60 bash -c "
  [ \"\$(kubectl get tj bert-profiled gpt-unprofiled -n $NS -o jsonpath='{.items[*].status.admitted}')\" = 'true true' ]"
candidate() { # candidate JOB FIELD: FIELD of the first A100-80G candidate in the job's
  # explanation (every member with A100-80G gives the same runtime for one node)
  field "$1" "{.status.explanation.candidates[?(@.accelerator==\"A100-80G\")].$2}" | awk '{print $1}'
}
profiled=$(candidate bert-profiled runtimeSeconds)
simulated=$("$BIN" estimate -f "$tmp/bert.yaml" --accelerator A100-80G --nodes 1 --profiles "$tmp/lab.yaml" --json |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["runtimeSeconds"])')
fallback=$("$BIN" estimate -f "$tmp/bert.yaml" --accelerator A100-80G --nodes 1 --json |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["runtimeSeconds"])')
echo "    bert on A100-80G: service ${profiled:-?} s, computenet estimate with the profile $simulated s, without it $fallback s"
check "the profiled job's estimate comes from the profile" bash -c "[ \"$(candidate bert-profiled estimateSource)\" = Profile ]"
check "it equals the simulator model's estimate with the same profile (9000 s)" python3 -c "
import sys; a, b = float('${profiled:-nan}'), float('$simulated'); sys.exit(0 if abs(a - b) < 1e-6 and abs(b - 9000) < 1e-6 else 1)"
check "and differs from the fallback estimate" python3 -c "
import sys; sys.exit(0 if abs(float('${profiled:-nan}') - float('$fallback')) > 1 else 1)"
check "the summary says the runtime comes from a measured profile" bash -c "
  kubectl get tj bert-profiled -n $NS -o jsonpath='{.status.explanation.summary}' | grep -q 'runtime from a measured profile'"
check "a model without a profile is estimated by the fallback, and says so" bash -c "
  [ \"$(candidate gpt-unprofiled estimateSource)\" = Fallback ] &&
  kubectl get tj gpt-unprofiled -n $NS -o jsonpath='{.status.explanation.summary}' | grep -q 'peak-TFLOPS fallback'"

# --- one usage, three displays: fill svc-typed past its per-type quota (8 + 8 = 16).
{
  tj typed-1 svc-typed 8 "{gpuHours: 1}"
  tj typed-2 svc-typed 8 "{gpuHours: 1}"
  tj all-3 svc-all 8 "{gpuHours: 1}"
  tj all-4 svc-all 8 "{gpuHours: 1}"
} | kubectl apply -f - >/dev/null
check "svc-typed admits one A100 job and queues the other over its A100 quota" wait_for 60 bash -c "
  [ \"\$(kubectl get tj typed-1 typed-2 -n $NS -o jsonpath='{.items[*].status.admitted}' | tr ' ' '\n' | sort | tr '\n' ' ')\" = 'false true ' ]"
admitted_in() { # admitted_in QUEUE: "ADMITTED QUEUED" counts of the queue's jobs
  kubectl get tj -n "$NS" -o json | python3 -c "
import json, sys
jobs = [j for j in json.load(sys.stdin)['items'] if j['spec']['queueName'] == sys.argv[1]]
yes = sum(1 for j in jobs if j.get('status', {}).get('admitted'))
print(yes, len(jobs) - yes)" "$1"
}
check "svc-all admits three 8-GPU jobs and queues the fourth over its 24-GPU quota" wait_for 60 bash -c "
  $(declare -f admitted_in); NS=$NS; [ \"\$(admitted_in svc-all)\" = '3 1' ]"
compare() {
  kubectl get cnq -o json > "$tmp/cnq.json" &&
    curl -sf "http://127.0.0.1:$PORT/api/pool" > "$tmp/pool.json" &&
    kubectl computenet queue -o json > "$tmp/plugin.json" &&
    python3 - "$tmp" <<'EOF'
import json, sys
tmp = sys.argv[1]
cnq = {q["metadata"]["name"]: q.get("status", {}) for q in json.load(open(f"{tmp}/cnq.json"))["items"]}
pool = {q["name"]: q for q in json.load(open(f"{tmp}/pool.json"))["queues"]}
plugin = {q["name"]: q for q in json.load(open(f"{tmp}/plugin.json"))["queues"]}
rows = []
for name in ("svc-all", "svc-typed"):
    s, p, k = cnq[name], pool[name], plugin[name]
    quota = "-" if p["acceleratorsQuota"] is None else str(p["acceleratorsQuota"])
    views = {
        "kubectl get cnq": (s.get("pending"), s.get("admitted"), s.get("gpuUsage")),
        "dashboard": (p["pending"], p["admitted"], f'{p["acceleratorsUsed"]}/{quota}'),
        "kubectl computenet queue": (k["pending"], k["admitted"], f'{k["gpusUsed"]}/{"-" if k.get("gpusQuota") is None else k["gpusQuota"]}'),
    }
    rows.append(f"{name}: {views}")
    if len(set(views.values())) != 1:
        sys.exit("\n".join(rows))
print("\n".join(rows))
EOF
}
check "kubectl get cnq, the dashboard and kubectl computenet queue agree for every queue" wait_for 20 compare
compare 2>&1 | sed 's/^/    /'
check "the per-type quotas are summed (16) and the usage is the admitted job's (8)" bash -c "
  [ \"\$(kubectl get cnq svc-typed -o jsonpath='{.status.gpuUsage}')\" = 8/16 ]"

# --- a dispatch the member refuses for now: its job namespace's ResourceQuota is full.
backoff_job=backoff
kubectl delete tj all-3 all-4 -n "$NS" --timeout=60s >/dev/null 2>&1
kubectl --kubeconfig "$AI_1_KUBECONFIG" create ns "$JOBS_NS" >/dev/null 2>&1 # unless a job went there already
kubectl --kubeconfig "$AI_1_KUBECONFIG" create quota e2e-svc-full -n "$JOBS_NS" --hard=count/jobs.batch=0 >/dev/null
tj "$backoff_job" svc-all 1 "{gpuHours: 1}" | kubectl apply -f - >/dev/null
check "the job is admitted and its dispatch fails with the member's reason" wait_for 60 bash -c "
  [ \"\$(kubectl get tj $backoff_job -n $NS -o jsonpath='{.status.conditions[?(@.type==\"Dispatched\")].reason}')\" = DispatchFailed ]"
errors() { # this service's dispatch errors, on every member (its counters start at 0)
  curl -sf "http://127.0.0.1:$PORT/metrics" | awk '/^computenet_dispatch_errors_total\{/ {s += $2} END {print s + 0}'
}
attempts() { field "$backoff_job" '{.status.retry.attempts}'; }
sleep 20
a1=$(attempts); e1=$(errors)
sleep 20
a2=$(attempts); e2=$(errors)
echo "    attempts after ~20 s: ${a1:-?} (errors ${e1:-?}); after ~40 s: ${a2:-?} (errors ${e2:-?}); a pass every 0.5 s would be ~80"
check "the status shows the attempts and when the next is due" bash -c "
  [ -n \"$a2\" ] && [ -n \"\$(kubectl get tj $backoff_job -n $NS -o jsonpath='{.status.retry.nextAttemptTime}')\" ]"
check "attempts grow with doubling delays: 3 to 7 in 20 s, at most 2 more in the next 20 s" bash -c "
  [ \"${a1:-0}\" -ge 3 ] && [ \"${a1:-0}\" -le 7 ] && [ \"${a2:-0}\" -gt \"${a1:-0}\" ] && [ \$(( ${a2:-0} - ${a1:-0} )) -le 2 ]"
check "computenet_dispatch_errors_total grows as slowly (one per attempt)" bash -c "
  [ \"${e2:-0}\" -ge \"${a2:-99}\" ] && [ \$(( ${e2:-0} - ${e1:-0} )) -le 2 ]"
check "the condition names the member's reason" bash -c "
  kubectl get tj $backoff_job -n $NS -o jsonpath='{.status.conditions[?(@.type==\"Dispatched\")].message}' | grep -q 'exceeded quota'"
check "one DispatchFailed Event, not one per attempt" bash -c "
  [ \"\$(kubectl get events -n $NS --field-selector reason=DispatchFailed,involvedObject.name=$backoff_job -o name | wc -l)\" = 1 ]"
check "no panic in the service's log" bash -c "! grep -q panicked '$tmp/serve.log'"
summary
