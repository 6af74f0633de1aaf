#!/usr/bin/env bash
# Efficiency data in: the test bed's real Prometheus scrapes a small exporter this test
# starts (DCGM-style GPU power and utilisation, a facility PUE per site); computenet serve
# reads them through spec.prometheus, shows them in MemberCluster status and places by them.
# The exporter also serves a running job's training steps per second: serve reads it with
# --progress-query, learns the job's placement's rate, and the next job of the same model
# and size is estimated from it (estimateSource Learned).
#
# Needs the test bed up with Prometheus (the default). Two MemberClusters, eff-west and
# eff-east, both point at the Kubernetes member ai-1 (same nodes, different sites), so the
# only difference between them is what Prometheus measures.
# COMPUTENET_BIN points at the computenet binary (default: target/debug/computenet).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
use_testbed
[ -n "${PROMETHEUS_URL:-}" ] || { echo "the test bed runs without Prometheus (up.sh --no-prometheus?)" >&2; exit 1; }
NS=eff-e2e
PORT=${EFF_EXPORTER_PORT:-19400}
# serve's /metrics, on its own port so other runs' servers do not answer.
METRICS_PORT=${EFF_METRICS_PORT:-19480}
STEPS_UID=none
tmp=$(mktemp -d)
SERVE_PID= EXPORTER_PID=
cleanup() {
  kubectl delete tj --all -n "$NS" --timeout=60s >/dev/null 2>&1
  [ -n "$SERVE_PID" ] && { kill "$SERVE_PID" 2>/dev/null; wait "$SERVE_PID" 2>/dev/null; }
  [ -n "$EXPORTER_PID" ] && { kill "$EXPORTER_PID" 2>/dev/null; wait "$EXPORTER_PID" 2>/dev/null; }
  echo '[]' > "$PROMETHEUS_TARGETS_FILE"
  kubectl get tj -n "$NS" -o name 2>/dev/null | xargs -r -n1 kubectl patch -n "$NS" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
  kubectl delete ns "$NS" --wait=false >/dev/null 2>&1
  kubectl delete mcl eff-west eff-east >/dev/null 2>&1
  kubectl delete cnq eff >/dev/null 2>&1
  if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# metrics PUE_WEST PUE_EAST: what the exporter serves next (64 H800/A100 GPUs per cluster).
metrics() {
  cat > "$tmp/metrics.tmp" <<EOT
# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
DCGM_FI_DEV_POWER_USAGE{cluster="eff-west",gpu="0"} 16000
DCGM_FI_DEV_POWER_USAGE{cluster="eff-east",gpu="0"} 16000
# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{cluster="eff-west",gpu="0"} 50
DCGM_FI_DEV_GPU_UTIL{cluster="eff-east",gpu="0"} 50
# HELP facility_pue Power usage effectiveness of the site.
# TYPE facility_pue gauge
facility_pue{site="eff-west"} $1
facility_pue{site="eff-east"} $2
# HELP e2e_training_steps_per_second A running job's training progress.
# TYPE e2e_training_steps_per_second gauge
e2e_training_steps_per_second{job_uid="$STEPS_UID"} 5
EOT
  mv "$tmp/metrics.tmp" "$tmp/metrics"
}
metrics 1.1 2.0
metrics_exporter "$tmp/metrics" "$PORT" "$tmp/exporter.log"
echo "[{\"targets\": [\"127.0.0.1:$PORT\"], \"labels\": {\"job\": \"eff-exporter\"}}]" > "$PROMETHEUS_TARGETS_FILE"
promql() { curl -sf --get "$PROMETHEUS_URL/api/v1/query" --data-urlencode "query=$1" | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")'; }
check "Prometheus scrapes the test exporter" wait_for 40 bash -c '[ "$(curl -sf --get "$1/api/v1/query" --data-urlencode "query=facility_pue{site=\"eff-west\"}" | grep -o "\"1.1\"")" = "\"1.1\"" ]' _ "$PROMETHEUS_URL"

kubectl apply -f "$root/deploy/crds/" >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=30s >/dev/null
wait_for 60 bash -c "! kubectl get ns $NS >/dev/null 2>&1" || { echo "namespace $NS still terminating" >&2; exit 1; }
member() { # member NAME SITE
  cat <<EOT
---
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: $1}
spec:
  kind: AI
  site: $2
  kubernetes: {kubeconfigSecretRef: {name: ai-1-kubeconfig, namespace: computenet-system, key: kubeconfig}, namespace: computenet-jobs}
  efficiency: {pue: 1.3, energyPricePerKWh: 0.8}
  prometheus: {url: "$PROMETHEUS_URL", insecureHTTP: true, intervalSeconds: 1}
EOT
}
{ member eff-west eff-west; member eff-east eff-east; } | kubectl apply -f - >/dev/null
kubectl apply -f - >/dev/null <<EOT
apiVersion: v1
kind: Namespace
metadata: {name: $NS, labels: {computenet.io/tenant: eff-e2e}}
---
apiVersion: computenet.io/v1alpha1
kind: ComputeQueue
metadata: {name: eff}
spec:
  namespaceSelector: {matchLabels: {computenet.io/tenant: eff-e2e}}
  quotas: [{resource: nvidia.com/gpu, nominal: 64}]
EOT
# Jobs are pinned to the sites eff-west and eff-east, so other members on the hub never take them.
setsid "$BIN" serve --kubeconfig "$HUB_KUBECONFIG" --no-leader-election --interval-ms 500 \
  --listen "127.0.0.1:$METRICS_PORT" --web-auth none \
  --progress-query 'e2e_training_steps_per_second{job_uid="$uid"}' --progress-interval-s 1 --progress-min-samples 2 \
  > "$tmp/serve.log" 2>&1 &
SERVE_PID=$!

measured() { kubectl get mcl "$1" -o jsonpath="{.status.measured.$2}" 2>/dev/null; }
check "the measured PUE shows in each member's status (west 1.1, east 2)" wait_for 40 bash -c '
  [ "$(kubectl get mcl eff-west -o jsonpath={.status.measured.pue})" = 1.1 ] && [ "$(kubectl get mcl eff-east -o jsonpath={.status.measured.pue})" = 2 ]'
check "power and utilisation too (16000 W, 0.5)" bash -c '
  [ "$(kubectl get mcl eff-west -o jsonpath={.status.measured.gpuPowerWatts})" = 16000 ] && [ "$(kubectl get mcl eff-west -o jsonpath={.status.measured.gpuUtilization})" = 0.5 ]'
check "TFLOPS per watt is computed, higher where PUE is lower" python3 - "$(measured eff-west tflopsPerWatt)" "$(measured eff-east tflopsPerWatt)" <<'PYEOF'
import sys
west, east = float(sys.argv[1]), float(sys.argv[2])
assert west > 0 and east > 0, (west, east)
assert abs(west / east - 2.0 / 1.1) < 0.01, (west, east)
PYEOF

check "kubectl computenet pool shows the measured PUE and useful TFLOPS/W" bash -c '
  PATH="$1/target/debug:$PATH" kubectl computenet pool -o json | python3 -c "
import json,sys
m={r[\"name\"]:r for r in json.load(sys.stdin)[\"members\"]}
assert m[\"eff-west\"][\"pue\"] == 1.1 and m[\"eff-east\"][\"pue\"] == 2, m
assert m[\"eff-west\"][\"measuredTflopsPerWatt\"] > m[\"eff-east\"][\"measuredTflopsPerWatt\"] > 0, m"' _ "$root"

job() { # job NAME
  cat <<EOT
---
apiVersion: computenet.io/v1alpha1
kind: TrainingJob
metadata: {name: $1, namespace: $NS, annotations: {computenet.io/run-seconds: "3"}}
spec:
  queueName: eff
  replicas: 1
  resources: {cpu: "2", memory: 4Gi, accelerators: {count: 8, types: [H800]}}
  workload: {image: example/train:1.0, command: ["python", "train.py"]}
  work: {gpuHours: 4}
  placement: {sites: [eff-west, eff-east], objective: Cheapest}
EOT
}
cluster_of() { kubectl get tj "$1" -n "$NS" -o jsonpath='{.status.placement.cluster}' 2>/dev/null; }
job cheap-1 | kubectl apply -f - >/dev/null
check "a Cheapest job goes where the measured PUE is lower (eff-west)" wait_for 30 bash -c '[ "$(kubectl get tj cheap-1 -n '"$NS"' -o jsonpath={.status.placement.cluster})" = eff-west ]'
check "its explanation prices eff-east higher" bash -c '
  kubectl get tj cheap-1 -n '"$NS"' -o json | python3 -c "
import json,sys
c={x[\"cluster\"]:x for x in json.load(sys.stdin)[\"status\"][\"explanation\"][\"candidates\"]}
assert c[\"eff-east\"][\"energyKWh\"] > 1.5 * c[\"eff-west\"][\"energyKWh\"], c"'
metrics 2.0 1.1
check "the exporter's new PUE reaches the status" wait_for 40 bash -c '[ "$(kubectl get mcl eff-east -o jsonpath={.status.measured.pue})" = 1.1 ]'
job cheap-2 | kubectl apply -f - >/dev/null
check "now the next Cheapest job goes to eff-east" wait_for 30 bash -c '[ "$(kubectl get tj cheap-2 -n '"$NS"' -o jsonpath={.status.placement.cluster})" = eff-east ]'

# Throughput learned online: a running job's progress from Prometheus.
learner() { # learner NAME RUN_SECONDS
  cat <<EOT
---
apiVersion: computenet.io/v1alpha1
kind: TrainingJob
metadata: {name: $1, namespace: $NS, annotations: {computenet.io/run-seconds: "$2"}}
spec:
  queueName: eff
  replicas: 1
  resources: {cpu: "2", memory: 4Gi, accelerators: {count: 8, types: [H800]}}
  workload: {image: example/train:1.0, command: ["python", "train.py"]}
  work: {model: e2e-learned, steps: 100000}
  placement: {sites: [eff-west, eff-east], objective: Cheapest}
EOT
}
learner learn-1 300 | kubectl apply -f - >/dev/null
check "a job of a model without a profile runs" wait_for 60 bash -c '[ "$(kubectl get tj learn-1 -n '"$NS"' -o jsonpath={.status.phase})" = Running ]'
STEPS_UID=$(kubectl get tj learn-1 -n "$NS" -o jsonpath='{.metadata.uid}')
metrics 2.0 1.1
check "serve learns its placement's rate from Prometheus (computenet_learned_steps_per_second 5)" wait_for 60 bash -c '
  curl -sf "http://127.0.0.1:$1/metrics" | grep "^computenet_learned_steps_per_second{" | grep "model=\"e2e-learned\"" | grep -q "gpus=\"8\",model=\"e2e-learned\",namespace=\"$2\",nodes=\"1\"} 5$"' _ "$METRICS_PORT" "$NS"
check "and tracks the running job (computenet_progress_jobs 1)" bash -c 'curl -sf "http://127.0.0.1:$1/metrics" | grep -qx "computenet_progress_jobs 1"' _ "$METRICS_PORT"
kubectl delete tj learn-1 -n "$NS" --timeout=60s >/dev/null 2>&1
learner learn-2 3 | kubectl apply -f - >/dev/null
check "the next job of that model and size is estimated from what was learned" wait_for 30 bash -c '
  kubectl get tj learn-2 -n '"$NS"' -o json | python3 -c "
import json,sys
s=json.load(sys.stdin)[\"status\"][\"explanation\"]
c=[x for x in s[\"candidates\"] if x.get(\"accelerator\") == \"H800\"]
assert c and all(x[\"estimateSource\"] == \"Learned\" for x in c), c
assert all(abs(x[\"runtimeSeconds\"] - 100000 / 5) < 1 for x in c), c
assert \"learned from 1 running job\" in s[\"summary\"], s[\"summary\"]"'
check "kubectl computenet explain shows the estimate as Learned" bash -c '
  PATH="$1/target/debug:$PATH" kubectl computenet explain learn-2 -n "$2" | grep -q Learned' _ "$root" "$NS"

kill "$EXPORTER_PID"; wait "$EXPORTER_PID" 2>/dev/null; EXPORTER_PID=
check "with the series gone the reading reports why and placement falls back to the configured PUE" wait_for 60 bash -c '
  kubectl get mcl eff-west -o jsonpath={.status.measured.sampledAt} | grep -q . &&
  { kubectl get mcl eff-west -o jsonpath={.status.measured.error} | grep -q . || [ -z "$(kubectl get mcl eff-west -o jsonpath={.status.measured.pue})" ]; }'
check "the scheduler log has no panic" bash -c '! grep -q panicked "$1"' _ "$tmp/serve.log"

summary
