#!/usr/bin/env bash
# Dispatch benchmark: N TrainingJobs submitted at once against two AI members with 500
# KWOK GPU nodes in all. Reports admissions per second, submit-to-dispatch latency, and
# the CPU time each component of the test bed used meanwhile.
#
#   tests/testbed/up.sh --members 3 --gpu-nodes 250 --no-taint --no-slurm
#   cargo build --release -p computenet
#   tests/e2e/bench-dispatch.sh [--backlog] [JOBS]          (default 2000)
#
# Default (burst): the scheduler runs while 8 parallel `kubectl create` submit the jobs;
# latency = status.dispatchTime - metadata.creationTimestamp. creationTimestamp has a
# resolution of one second (truncated), so each latency is an upper bound, high by < 1 s.
# --backlog: the jobs are submitted while the scheduler is stopped, then it starts; rates
# and latencies count from its start (the scheduler alone, without submissions competing
# for the hub).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
MODE=burst
if [ "${1:-}" = --backlog ]; then MODE=backlog; shift; fi
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
{
  cat <<EOT
apiVersion: v1
kind: Namespace
metadata: {name: bench, labels: {computenet.io/tenant: bench}}
---
apiVersion: computenet.io/v1alpha1
kind: ComputeQueue
metadata: {name: bench}
spec:
  namespaceSelector: {matchLabels: {computenet.io/tenant: bench}}
EOT
  echo ---; k8s_member ai-1 west; echo ---; k8s_member ai-3 east
} | kubectl apply -f - >/dev/null
start_serve() {
  RUST_LOG=${RUST_LOG:-info} "$BIN" serve --kubeconfig "$HUB_KUBECONFIG" --no-leader-election --no-http >> "$tmp/serve.log" 2>&1 &
  serve_pid=$!
}
start_serve
until kubectl get mcl ai-1 ai-3 -o jsonpath='{.items[*].status.conditions[0].status}' 2>/dev/null | grep -q "True True"; do sleep 0.5; done
echo "members ready: $(kubectl get mcl ai-1 ai-3 -o jsonpath='{.items[*].status.gpus}') GPUs free/total"
if [ "$MODE" = backlog ]; then kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true; serve_pid=; fi
cpu() { python3 "$here/cpu_usage.py" "$1" "$tmp/cpu" "$TESTBED_RUN_DIR/pids" ${serve_pid:+computenet=$serve_pid} "${@:2}"; }

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
[ "$MODE" = burst ] && cpu save
start=$(date +%s.%N)
creators=()
# --validate=false: no per-request field validation round; the apiserver still applies
# the CRD's schema and CEL rules.
for p in $(seq 0 7); do kubectl create --validate=false -f "$tmp/jobs-$p.yaml" >/dev/null & creators+=($!); done
wait "${creators[@]}"
submitted=$(date +%s.%N)
echo "submitted $JOBS TrainingJobs in $(python3 -c "print(f'{$submitted-$start:.1f}')") s (8 parallel kubectl create)"
released=0
if [ "$MODE" = backlog ]; then
  released=$(date +%s.%N)
  start_serve
  cpu save
  echo "scheduler started with $JOBS jobs waiting"
fi
deadline=$(( $(date +%s) + 600 ))
while :; do
  done_count=$(kubectl get tj -n bench -o jsonpath='{range .items[*]}{.status.dispatchTime}{"\n"}{end}' | grep -c . || true)
  [ "$done_count" -ge "$JOBS" ] && break
  [ "$(date +%s)" -ge "$deadline" ] && { echo "timeout: $done_count of $JOBS dispatched" >&2; exit 1; }
  sleep 1
done
cpu report --per "$JOBS"
kubectl get tj -n bench -o json > "$tmp/jobs.json"
python3 - "$tmp/jobs.json" "$released" <<'PY'
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
released = float(sys.argv[2])
created = [ts(j["metadata"]["creationTimestamp"]) for j in items]
if released:
    # Backlog: every job was there when the scheduler started.
    created = [released for _ in items]
admitted = [ts(j["status"]["startTime"]) for j in items]
dispatched = [ts(j["status"]["dispatchTime"]) for j in items]
lat = sorted(d - c for d, c in zip(dispatched, created))
def pct(p):
    return lat[min(len(lat) - 1, max(0, int(round(p / 100 * len(lat) + 0.5)) - 1))]
span = max(admitted) - min(created)
origin = "the scheduler started" if released else "the first was created"
print(f"jobs: {len(items)}; all dispatched {max(dispatched) - min(created):.1f} s after {origin}")
print(f"admissions/s (end to end, {origin.replace('the first was created', 'first creation')} to last admission): {len(items) / span:.0f}")
what = "start-to-dispatch latency (from the scheduler's start)" if released else "submit-to-dispatch latency"
bound = "" if released else " (upper bounds, < 1 s high)"
print(f"{what}: p50 {pct(50):.2f} s, p99 {pct(99):.2f} s, max {lat[-1]:.2f} s{bound}")
clusters = {}
for j in items:
    c = j["status"]["placement"]["cluster"]
    clusters[c] = clusters.get(c, 0) + 1
print("placements:", ", ".join(f"{k}: {v}" for k, v in sorted(clusters.items())))
PY
