#!/usr/bin/env bash
# Dispatch benchmark: N TrainingJobs submitted at once against two AI members with 500
# KWOK GPU nodes in all. Reports admissions per second and submit-to-dispatch latency.
#
#   tests/testbed/up.sh --members 3 --gpu-nodes 250 --no-taint --no-slurm
#   cargo build --release -p computenet
#   tests/e2e/bench-dispatch.sh [JOBS]          (default 2000)
#
# Latency = status.dispatchTime - metadata.creationTimestamp. creationTimestamp has a
# resolution of one second (truncated), so each latency is an upper bound, high by < 1 s.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
JOBS=${1:-2000}
COMPUTENET_BIN=${COMPUTENET_BIN:-$root/target/release/computenet}
use_testbed
tmp=$(mktemp -d)
cleanup() {
  kubectl delete tj --all -n bench --timeout=120s >/dev/null 2>&1 || true
  [ -n "${serve_pid:-}" ] && kill "$serve_pid" 2>/dev/null
  kubectl delete ns bench --wait=false >/dev/null 2>&1 || true
  if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

kubectl apply -f "$root/deploy/crds/" >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=30s >/dev/null
# A previous run's namespace may still be terminating.
wait_for 180 bash -c '! kubectl get ns bench >/dev/null 2>&1' || { echo "namespace bench still terminating" >&2; exit 1; }
kubectl apply -f - >/dev/null <<EOT
apiVersion: v1
kind: Namespace
metadata: {name: bench, labels: {computenet.io/tenant: bench}}
---
apiVersion: computenet.io/v1alpha1
kind: ComputeQueue
metadata: {name: bench}
spec:
  namespaceSelector: {matchLabels: {computenet.io/tenant: bench}}
---
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: ai-1}
spec:
  kind: AI
  site: west
  kubernetes: {kubeconfigSecretRef: {name: ai-1-kubeconfig, namespace: computenet-system, key: kubeconfig}}
---
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: ai-3}
spec:
  kind: AI
  site: east
  kubernetes: {kubeconfigSecretRef: {name: ai-3-kubeconfig, namespace: computenet-system, key: kubeconfig}}
EOT
RUST_LOG=${RUST_LOG:-info} "$BIN" serve --kubeconfig "$HUB_KUBECONFIG" --no-leader-election > "$tmp/serve.log" 2>&1 &
serve_pid=$!
until kubectl get mcl ai-1 ai-3 -o jsonpath='{.items[*].status.conditions[0].status}' 2>/dev/null | grep -q "True True"; do sleep 0.5; done
echo "members ready: $(kubectl get mcl ai-1 ai-3 -o jsonpath='{.items[*].status.gpus}') GPUs free/total"

python3 - "$JOBS" "$tmp" <<'PY'
import sys
n, tmp = int(sys.argv[1]), sys.argv[2]
parts = 8
for p in range(parts):
    with open(f"{tmp}/jobs-{p}.yaml", "w") as f:
        for i in range(p, n, parts):
            f.write(f"""---
apiVersion: computenet.io/v1alpha1
kind: TrainingJob
metadata: {{name: b{i:05d}, namespace: bench, annotations: {{computenet.io/run-seconds: "3600"}}}}
spec:
  queueName: bench
  replicas: 1
  # One A100 each: 2,000 jobs fill the members' 2,000 A100s at once (a single type, so
  # no job chooses to wait for a faster one).
  resources: {{cpu: "1", memory: 4Gi, accelerators: {{count: 1, types: [A100-80G]}}}}
  workload: {{image: example/train:1.0, command: ["python", "train.py"]}}
  work: {{gpuHours: 2.5}}
""")
PY
start=$(date +%s.%N)
creators=()
for p in $(seq 0 7); do kubectl create -f "$tmp/jobs-$p.yaml" >/dev/null & creators+=($!); done
wait "${creators[@]}"
submitted=$(date +%s.%N)
echo "submitted $JOBS TrainingJobs in $(python3 -c "print(f'{$submitted-$start:.1f}')") s (8 parallel kubectl create)"
deadline=$(( $(date +%s) + 600 ))
while :; do
  done_count=$(kubectl get tj -n bench -o jsonpath='{range .items[*]}{.status.dispatchTime}{"\n"}{end}' | grep -c . || true)
  [ "$done_count" -ge "$JOBS" ] && break
  [ "$(date +%s)" -ge "$deadline" ] && { echo "timeout: $done_count of $JOBS dispatched" >&2; exit 1; }
  sleep 1
done
kubectl get tj -n bench -o json > "$tmp/jobs.json"
python3 - "$tmp/jobs.json" <<'PY'
import json, sys
from datetime import datetime
def ts(s):
    s = s.replace("Z", "+00:00")
    if "." in s:
        head, rest = s.split(".", 1)
        frac, tz = rest[:rest.index("+")], rest[rest.index("+"):]
        s = f"{head}.{frac[:6].ljust(6, '0')}{tz}"
    return datetime.fromisoformat(s).timestamp()
items = json.load(open(sys.argv[1]))["items"]
created = [ts(j["metadata"]["creationTimestamp"]) for j in items]
admitted = [ts(j["status"]["startTime"]) for j in items]
dispatched = [ts(j["status"]["dispatchTime"]) for j in items]
lat = sorted(d - c for d, c in zip(dispatched, created))
def pct(p):
    return lat[min(len(lat) - 1, max(0, int(round(p / 100 * len(lat) + 0.5)) - 1))]
span = max(admitted) - min(created)
print(f"jobs: {len(items)}; all dispatched {max(dispatched) - min(created):.1f} s after the first was created")
print(f"admissions/s (end to end, first creation to last admission): {len(items) / span:.0f}")
print(f"submit-to-dispatch latency: p50 {pct(50):.2f} s, p99 {pct(99):.2f} s, max {lat[-1]:.2f} s (upper bounds, < 1 s high)")
clusters = {}
for j in items:
    c = j["status"]["placement"]["cluster"]
    clusters[c] = clusters.get(c, 0) + 1
print("placements:", ", ".join(f"{k}: {v}" for k, v in sorted(clusters.items())))
PY
