#!/usr/bin/env bash
# computenet serve's HTTP side on the test bed: /metrics (values checked against the
# members' real nodes), /healthz, /readyz, /api/pool, and the live dashboard rendered in
# headless Chromium (DOM checked, screenshot written to docs/dashboard.png).
#
# Needs the test bed up (tests/testbed/up.sh) with the members ai-1 (AI, KWOK GPU nodes)
# and general-2 (CPU only); registers them as dash-ai-1 and dash-general-2.
# COMPUTENET_BIN points at the computenet binary (default: target/debug/computenet);
# DASHBOARD_PORT is the port to listen on (default 18080); DASHBOARD_SCREENSHOT where the
# screenshot goes (default docs/dashboard.png). Installs Debian's chromium when missing.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
use_testbed
PORT=${DASHBOARD_PORT:-18080}
SHOT=${DASHBOARD_SCREENSHOT:-$root/docs/dashboard.png}
URL=http://127.0.0.1:$PORT
NS=dash-a
QUEUE=dash-research
TOP=2
tmp=$(mktemp -d)
SERVE_PID=

if ! command -v chromium >/dev/null 2>&1; then
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "installing chromium (Debian package)"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null ||
    { echo "could not install chromium" >&2; exit 1; }
fi
if curl -s -o /dev/null "$URL/"; then echo "port $PORT is taken (set DASHBOARD_PORT)" >&2; exit 1; fi

unstick() { # removes computenet's finalizer from our jobs when no scheduler is left to do it
  kubectl get tj -n $NS -o jsonpath='{range .items[?(@.metadata.deletionTimestamp)]}{.metadata.name}{"\n"}{end}' 2>/dev/null |
    while read -r name; do kubectl patch tj "$name" -n $NS --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1; done
}
cleanup() {
  # Delete the jobs while the scheduler runs, so it removes their objects on the members.
  kubectl delete tj --all -n $NS --timeout=60s >/dev/null 2>&1
  if [ -n "$SERVE_PID" ]; then kill "$SERVE_PID" 2>/dev/null; wait "$SERVE_PID" 2>/dev/null; fi
  unstick
  kubectl delete cnq $QUEUE --ignore-not-found --timeout=30s >/dev/null 2>&1
  kubectl delete mcl dash-ai-1 dash-general-2 --ignore-not-found --timeout=30s >/dev/null 2>&1
  kubectl delete ns $NS --ignore-not-found --wait=false >/dev/null 2>&1
  KUBECONFIG=$AI_1_KUBECONFIG kubectl delete ns dash-jobs --ignore-not-found --wait=false >/dev/null 2>&1
  KUBECONFIG=$GENERAL_2_KUBECONFIG kubectl delete ns dash-jobs --ignore-not-found --wait=false >/dev/null 2>&1
  if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# tj NAME RUN_SECONDS REPLICAS GPUS SITE
tj() {
  local acc=""
  [ "$4" -gt 0 ] && acc=", accelerators: {count: $4}"
  cat <<EOT
---
apiVersion: computenet.io/v1alpha1
kind: TrainingJob
metadata:
  name: $1
  namespace: $NS
  annotations: {computenet.io/run-seconds: "$2"}
spec:
  queueName: $QUEUE
  replicas: $3
  resources: {cpu: "4", memory: 16Gi$acc}
  workload: {image: example/train:1.0, command: ["python", "train.py"]}
  work: {gpuHours: 4}
  placement: {sites: [$5]}
EOT
}

kubectl apply -f "$root/deploy/crds/" >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=30s >/dev/null
unstick
wait_for 60 bash -c "! kubectl get ns $NS >/dev/null 2>&1" || { echo "namespace $NS still terminating" >&2; exit 1; }
kubectl apply -f - >/dev/null <<EOT
apiVersion: v1
kind: Namespace
metadata: {name: $NS, labels: {computenet.io/tenant: dash}}
---
apiVersion: computenet.io/v1alpha1
kind: ComputeQueue
metadata: {name: $QUEUE}
spec:
  namespaceSelector: {matchLabels: {computenet.io/tenant: dash}}
  cohort: dash
  quotas: [{resource: nvidia.com/gpu, nominal: 32}]
---
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: dash-ai-1}
spec:
  kind: AI
  site: laoshan
  kubernetes: {kubeconfigSecretRef: {name: ai-1-kubeconfig, namespace: computenet-system, key: kubeconfig}, namespace: dash-jobs}
  efficiency: {pue: 1.2, energyPricePerKWh: 0.6}
---
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: dash-general-2}
spec:
  kind: General
  site: huangdao
  kubernetes: {kubeconfigSecretRef: {name: general-2-kubeconfig, namespace: computenet-system, key: kubeconfig}, namespace: dash-jobs}
  efficiency: {pue: 1.4, energyPricePerKWh: 0.7}
EOT

# What the members really have, from their nodes.
ai_nodes=$(KUBECONFIG=$AI_1_KUBECONFIG kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.labels.nvidia\.com/gpu\.product} {.status.allocatable.nvidia\.com/gpu}{"\n"}{end}')
gpus_of() { printf '%s\n' "$ai_nodes" | awk -v t="$1" '$1 == t { s += $2 } END { print s + 0 }'; }
ai_total=$(printf '%s\n' "$ai_nodes" | awk '{ s += $2 } END { print s + 0 }')
general_cores=$(KUBECONFIG=$GENERAL_2_KUBECONFIG kubectl get nodes -o jsonpath='{range .items[*]}{.status.allocatable.cpu}{"\n"}{end}' |
  awk '/m$/ { s += substr($1, 1, length($1) - 1) / 1000; next } { s += $1 } END { print s + 0 }')
# Rated efficiency: catalogue peak TFLOPS over board power (A100-80G 312/400, H800 989/700), per PUE.
expected_eff=$(awk -v a="$(gpus_of A100-80G)" -v h="$(gpus_of H800)" 'BEGIN { printf "%.9f", (312*a + 989*h) / ((400*a + 700*h) * 1.2) }')
check "the AI member has A100-80G and H800 GPUs, the general one CPU cores" \
  test "$(gpus_of A100-80G)" -gt 0 -a "$(gpus_of H800)" -gt 0 -a "$general_cores" -gt 0

# --web-auth none: the page and /api/pool without a token, which only a loopback address
# allows (tests/e2e/tenancy/web.sh covers the tokens); job names in /metrics on request.
setsid "$BIN" serve --kubeconfig "$HUB_KUBECONFIG" --no-leader-election --listen "127.0.0.1:$PORT" \
  --web-auth none --metrics-job-labels --top-pending $TOP --interval-ms 500 --member-timeout-s 10 > "$tmp/serve.log" 2>&1 &
SERVE_PID=$!

check "/healthz answers while the scheduler starts" wait_for 20 curl -sf "$URL/healthz"
check "/readyz turns 200 after the first cycle" wait_for 30 curl -sf "$URL/readyz"
check "members turn Ready" wait_for 40 bash -c "[ \"\$(kubectl get mcl dash-ai-1 dash-general-2 -o jsonpath='{.items[*].status.conditions[?(@.type==\"Ready\")].status}')\" = 'True True' ]"

# Two 2 x 8 GPU jobs fill the queue's quota of 32; a CPU job runs on the general member;
# three more GPU jobs wait in order.
{ tj dash-train-a 900 2 8 laoshan; tj dash-train-b 900 2 8 laoshan; tj dash-tokenize 900 1 0 huangdao; } | kubectl apply -f - >/dev/null
check "three jobs run" wait_for 60 bash -c "[ \"\$(kubectl get tj -n $NS -o jsonpath='{.items[*].status.phase}')\" = 'Running Running Running' ]"
for j in dash-train-c dash-train-d dash-train-e; do tj $j 900 1 8 laoshan | kubectl apply -f - >/dev/null; sleep 1.2; done
check "three wait in order" wait_for 30 bash -c "[ \"\$(kubectl get tj dash-train-c dash-train-d dash-train-e -n $NS -o jsonpath='{.items[*].status.queuePosition}')\" = '1 2 3' ]"

curl -s "$URL/metrics" > "$tmp/metrics.txt"
metric() { curl -s "$URL/metrics" | grep -F "$1 " | awk '{ print $2 }'; }
metric_is() { [ "$(metric "$1")" = "$2" ]; }
check "/metrics is the Prometheus text format" bash -c "curl -sI '$URL/metrics' -X GET | grep -qi '^content-type: text/plain; version=0.0.4'"
check "GPUs total per type = the member's nodes (A100-80G)" \
  metric_is 'computenet_cluster_accelerators{accelerator="A100-80G",cluster="dash-ai-1",kind="AI",state="total"}' "$(gpus_of A100-80G)"
check "GPUs total per type = the member's nodes (H800)" \
  metric_is 'computenet_cluster_accelerators{accelerator="H800",cluster="dash-ai-1",kind="AI",state="total"}' "$(gpus_of H800)"
check "32 GPUs allocated on dash-ai-1, the rest free" wait_for 10 bash -c "
  a=\$(curl -s '$URL/metrics' | grep -F 'computenet_cluster_accelerators{' | grep -F 'cluster=\"dash-ai-1\"' | awk '/state=\"allocated\"/ { a += \$2 } /state=\"free\"/ { f += \$2 } END { print a + 0, f + 0 }')
  [ \"\$a\" = '32 $((ai_total - 32))' ]"
check "CPU cores total of dash-general-2 = its nodes' ($general_cores)" \
  metric_is 'computenet_cluster_cpu_cores{cluster="dash-general-2",kind="General",state="total"}' "$general_cores"
check "4 cores allocated there to the CPU job" \
  metric_is 'computenet_cluster_cpu_cores{cluster="dash-general-2",kind="General",state="allocated"}' 4
check "both members ready" bash -c "grep -qF 'computenet_cluster_ready{cluster=\"dash-ai-1\",kind=\"AI\"} 1' $tmp/metrics.txt && grep -qF 'computenet_cluster_ready{cluster=\"dash-general-2\",kind=\"General\"} 1' $tmp/metrics.txt"
check "PUE from the efficiency profile" metric_is 'computenet_cluster_pue{cluster="dash-ai-1"}' 1.2
# Measured when the member's power and utilisation are known, else rated from the catalogue.
measured() { grep -F "computenet_cluster_$1{cluster=\"dash-ai-1\"} " "$tmp/metrics.txt" | awk '{ print $2 }'; }
power=$(measured power_watts); util=$(measured gpu_utilization_ratio)
if [ -n "$power" ] && [ -n "$util" ]; then
  expected_eff=$(awk -v a="$(gpus_of A100-80G)" -v h="$(gpus_of H800)" -v w="$power" -v u="$util" 'BEGIN { printf "%.9f", (312*a + 989*h) * u / (w * 1.2) }')
  how="measured: peak TFLOPS x utilisation over power x PUE"
else
  how="rated: catalogue peak TFLOPS over board power x PUE"
fi
check "TFLOPS/W of dash-ai-1 ($how = $expected_eff)" bash -c "
  v=\$(grep -F 'computenet_cluster_efficiency_tflops_per_watt{cluster=\"dash-ai-1\"} ' $tmp/metrics.txt | awk '{ print \$2 }')
  awk -v v=\"\$v\" -v e=$expected_eff 'BEGIN { d = v - e; exit !(v != \"\" && d < 1e-6 && d > -1e-6) }'"
check "heartbeat age is reported and recent" bash -c "
  v=\$(grep -F 'computenet_cluster_heartbeat_age_seconds{cluster=\"dash-general-2\"} ' $tmp/metrics.txt | awk '{ print \$2 }')
  [ -n \"\$v\" ] && awk -v v=\"\$v\" 'BEGIN { exit !(v >= 0 && v < 30) }'"
check "queue jobs: 3 pending, 3 admitted, 3 running" bash -c "
  for s in 'pending 3' 'admitted 3' 'running 3'; do set -- \$s
    grep -qF \"computenet_queue_jobs{queue=\\\"$QUEUE\\\",state=\\\"\$1\\\"} \$2\" $tmp/metrics.txt || { echo \"state \$1 != \$2\"; exit 1; }; done"
check "queue usage vs quota: 32 of 32" bash -c "grep -qF 'computenet_queue_accelerators_used{queue=\"$QUEUE\"} 32' $tmp/metrics.txt && grep -qF 'computenet_queue_accelerators_quota{queue=\"$QUEUE\"} 32' $tmp/metrics.txt"
check "top $TOP pending positions only" bash -c "
  [ \"\$(grep -F 'computenet_pending_job_position{' $tmp/metrics.txt | grep -F 'queue=\"$QUEUE\"' | sed -E 's/.*job=\"([^\"]+)\".*\\} /\\1=/' | sort | tr '\\n' ' ')\" = 'dash-train-c=1 dash-train-d=2 ' ]"
check "admissions counted per member" bash -c "grep -qF 'computenet_admissions_total{cluster=\"dash-ai-1\",queue=\"$QUEUE\"} 2' $tmp/metrics.txt && grep -qF 'computenet_admissions_total{cluster=\"dash-general-2\",queue=\"$QUEUE\"} 1' $tmp/metrics.txt"
check "scheduling-cycle histogram" bash -c "grep -q '^# TYPE computenet_scheduling_cycle_duration_seconds histogram' $tmp/metrics.txt && awk '/^computenet_scheduling_cycle_duration_seconds_count / { exit !(\$2 > 0) }' $tmp/metrics.txt"
check "/api/pool has the members, queue and placements" python3 - "$URL/api/pool" <<'EOF'
import json, sys, urllib.request
o = json.load(urllib.request.urlopen(sys.argv[1]))
members = {m["name"]: m for m in o["members"]}
ai = members["dash-ai-1"]
assert sum(a["total"] for a in ai["accelerators"]) > 0 and ai["kind"] == "AI" and ai["site"] == "laoshan", ai
q = next(q for q in o["queues"] if q["name"] == "dash-research")
assert [p["name"] for p in q["topPending"]] == ["dash-train-c", "dash-train-d"], q
placed = {p["name"]: p for p in o["placements"] if p["namespace"] == "dash-a"}
assert set(placed) == {"dash-train-a", "dash-train-b", "dash-tokenize"}, placed
assert placed["dash-train-a"]["reason"].startswith("admitted to dash-ai-1"), placed["dash-train-a"]
EOF

# --- The dashboard in headless Chromium: the DOM after a few refreshes, and a screenshot.
chrome() {
  timeout 90 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
    --user-data-dir="$(mktemp -d -p "$tmp")" --virtual-time-budget=10000 "$@" 2>>"$tmp/chromium.log"
}
chrome --dump-dom "$URL/" > "$tmp/dom.html"
dom_has() { grep -qF -- "$1" "$tmp/dom.html" || { echo "not in the DOM: $1"; exit 1; }; }
export -f dom_has; export tmp
check "the page rendered data from /api/pool" bash -c "grep -qE '<body data-generated-at=\"[1-9][0-9]+\"' $tmp/dom.html"
check "it lists both members" bash -c "dom_has '<b data-field=\"name\">dash-ai-1</b>' && dom_has '<b data-field=\"name\">dash-general-2</b>'"
check "with dash-ai-1's GPU total ($ai_total) and free count" bash -c "
  dom_has '<tr data-member=\"dash-ai-1\" data-gpus-total=\"$ai_total\" data-gpus-free=\"$((ai_total - 32))\"' &&
  dom_has '<td class=\"num\" data-field=\"gpus\">$((ai_total - 32)) / $ai_total</td>'"
check "per type: A100-80G and H800 totals" bash -c "
  dom_has 'data-accelerator=\"A100-80G\" data-total=\"$(gpus_of A100-80G)\"' && dom_has 'data-accelerator=\"H800\" data-total=\"$(gpus_of H800)\"'"
check "with dash-general-2's CPU cores" bash -c "dom_has 'data-cpu-total=\"$general_cores\"' && dom_has '$((general_cores - 4)) / $general_cores</td>'"
check "the GPU chart has a bar for dash-ai-1" bash -c "dom_has '<div class=\"chart-row\" data-member=\"dash-ai-1\" data-total=\"$ai_total\" data-allocated=\"32\"'"
check "the efficiency chart has both members" bash -c "dom_has 'data-member=\"dash-ai-1\" data-tflops-per-watt=' && dom_has 'data-member=\"dash-general-2\" data-tflops-per-watt='"
check "the queue with its counts and next in line" bash -c "
  dom_has '<tr data-queue=\"$QUEUE\" data-pending=\"3\" data-admitted=\"3\" data-running=\"3\">' &&
  dom_has 'data-job=\"$NS/dash-train-c\" data-position=\"1\"' && dom_has '32 / 32'"
check "recent placements with their reasons" bash -c "
  dom_has '<tr data-job=\"$NS/dash-train-a\" data-cluster=\"dash-ai-1\">' && dom_has '<tr data-job=\"$NS/dash-tokenize\" data-cluster=\"dash-general-2\">' &&
  dom_has 'admitted to dash-ai-1'"
mkdir -p "$(dirname "$SHOT")"
chrome --screenshot="$SHOT" --window-size=1400,1000 "$URL/" >/dev/null
check "a screenshot of the dashboard (${SHOT#"$root"/})" bash -c "[ \"\$(head -c 8 '$SHOT' | od -An -tx1 | tr -d ' ')\" = 89504e470d0a1a0a ] && [ \$(stat -c %s '$SHOT') -gt 20000 ]"

# --- The first waiting job leaves: positions move up, its series goes.
kubectl delete tj dash-train-c -n $NS --timeout=30s >/dev/null 2>&1
check "positions move up and the departed job's series is removed" wait_for 20 bash -c "
  [ \"\$(curl -s '$URL/metrics' | grep -F 'computenet_pending_job_position{' | grep -F 'queue=\"$QUEUE\"' | sed -E 's/.*job=\"([^\"]+)\".*\\} /\\1=/' | sort | tr '\\n' ' ')\" = 'dash-train-d=1 dash-train-e=2 ' ]"
summary
