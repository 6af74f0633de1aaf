#!/usr/bin/env bash
# Fault group "poison": objects the scheduler cannot decode, and numbers at their bounds.
#
# (a) The poison pill. Objects that do not fit the types the service reads are stored
#     while the CRDs are loosened (as an older, looser schema or a hand edit would leave
#     them): a TrainingJob with `replicas: "four"`, one with a priority beyond int32, a
#     ComputeQueue with `weight: "heavy"`, and the issue's `memory: 68719476736` (plain
#     bytes, which an i32 could not hold). The current CRDs are put back and a leader
#     (leader election on) starts with them present: it becomes ready, schedules a good
#     job, gives each bad object a Warning Event InvalidObject and counts them in
#     computenet_invalid_objects. Then the leader is killed (-9) and a new one takes over
#     with the bad objects still present, and does the same.
# (b) Numbers at their bounds: a job with the largest gpuHours the schema admits gets a
#     finite, stored estimate; one stored with gpuHours 1e300 (the looser schema) gets a
#     stored status that names the field instead of an infinite estimate no write takes.
#
# Needs the test bed (tests/testbed/up.sh --members 3 --gpu-nodes 8 --no-taint) and
#   cargo build -p computenet
# Ports: 18100-18101. About 1.5 minutes.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$here/lib.sh"
use_testbed
tmp=$(mktemp -d)
NS="f-poison-jobs"
QUEUE="f-poison-q"
BAD_QUEUE="f-poison-bad"
LEASE="f-poison-leader"
LEASE_S=5
PORT_A=18100 PORT_B=18101
PIDS=()

cleanup() {
  kubectl delete tj --all -n "$NS" --timeout=60s >/dev/null 2>&1
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  kubectl get tj -n "$NS" -o name 2>/dev/null | xargs -r kubectl patch -n "$NS" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
  kubectl delete ns "$NS" --wait=false >/dev/null 2>&1
  kubectl delete cnq "$QUEUE" "$BAD_QUEUE" --ignore-not-found >/dev/null 2>&1
  kubectl delete mcl ai-1 --ignore-not-found >/dev/null 2>&1
  kubectl delete lease "$LEASE" -n computenet-system --ignore-not-found >/dev/null 2>&1
  # The CRDs as generated, whatever happened above.
  for f in "$root"/deploy/crds/*.yaml; do kubectl replace -f "$f" >/dev/null 2>&1; done
  if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

kubectl apply -f "$root/deploy/crds/" >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=30s >/dev/null
wait_for 60 bash -c "! kubectl get ns $NS >/dev/null 2>&1" || { echo "namespace $NS still terminating" >&2; exit 1; }
kubectl delete lease "$LEASE" -n computenet-system --ignore-not-found >/dev/null 2>&1

# loosen CRD: its spec takes anything (as a looser schema of an older release would).
loosen() {
  kubectl get crd "$1" -o json | python3 -c '
import json, sys
crd = json.load(sys.stdin)
for k in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
    crd["metadata"].pop(k, None)
crd.pop("status", None)
for v in crd["spec"]["versions"]:
    schema = v["schema"]["openAPIV3Schema"]
    schema["properties"]["spec"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    schema.pop("x-kubernetes-validations", None)
print(json.dumps(crd))' > "$tmp/loose-$1.json" && kubectl replace -f "$tmp/loose-$1.json" >/dev/null
}

{ tenant_queue "$NS" f-poison "$QUEUE"; cat <<EOT; } | kubectl apply -f - >/dev/null
---
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: ai-1}
spec:
  kind: AI
  site: west
  kubernetes: {kubeconfigSecretRef: {name: ai-1-kubeconfig, namespace: computenet-system, key: kubeconfig}, namespace: computenet-jobs}
EOT

# tj NAME [SPEC_LINES]: a small one-GPU job; SPEC_LINES replace its defaults by key.
tj() {
  python3 - "$1" "$NS" "$QUEUE" "${2:-}" <<'EOF'
import json, sys
name, ns, queue, extra = sys.argv[1:5]
spec = {"queueName": queue, "replicas": 1,
        "resources": {"cpu": "1", "memory": "4Gi", "accelerators": {"count": 1}},
        "workload": {"image": "example/train:1.0", "command": ["python", "train.py"]},
        "work": {"gpuHours": 1}}
spec.update(json.loads(extra or "{}"))
print(json.dumps({"apiVersion": "computenet.io/v1alpha1", "kind": "TrainingJob",
                  "metadata": {"name": name, "namespace": ns, "annotations": {"computenet.io/run-seconds": "3600"}},
                  "spec": spec}))
EOF
}

# --- the poison: stored under loosened CRDs, then the current CRDs are put back.
loosen trainingjobs.computenet.io && loosen computequeues.computenet.io
sleep 2
{
  tj bad-type '{"replicas": "four"}'
  tj bad-priority '{"priority": 3000000000}'
  tj issue-bytes '{"resources": {"cpu": 1, "memory": 68719476736, "accelerators": {"count": 1}}}'
  tj hours-huge '{"work": {"gpuHours": 1e300}}'
} > "$tmp/poison.json"
stored=0
for name in bad-type bad-priority issue-bytes hours-huge; do
  python3 -c 'import json,sys; [print(json.dumps(o)) for o in map(json.loads, sys.stdin) if o["metadata"]["name"] == sys.argv[1]]' "$name" \
    < "$tmp/poison.json" | kubectl apply -f - >/dev/null 2>&1 && stored=$((stored + 1))
done
kubectl apply -f - >/dev/null 2>&1 <<EOT && stored=$((stored + 1))
apiVersion: computenet.io/v1alpha1
kind: ComputeQueue
metadata: {name: $BAD_QUEUE}
spec: {weight: heavy}
EOT
for f in trainingjobs computequeues; do kubectl replace -f "$root/deploy/crds/$f.computenet.io.yaml" >/dev/null; done
kubectl wait --for=condition=Established crd --all --timeout=30s >/dev/null
check "five undecodable or out-of-bounds objects are stored under the loosened CRDs" test "$stored" = 5

serve() { # serve PORT LOG: a replica with leader election on
  setsid "$BIN" serve --kubeconfig "$HUB_KUBECONFIG" --lease-namespace computenet-system --lease-name "$LEASE" \
    --lease-duration-s "$LEASE_S" --interval-ms 500 --listen "127.0.0.1:$1" > "$2" 2>&1 &
  PIDS+=($!)
}
phase() { kubectl get tj "$1" -n "$NS" -o jsonpath='{.status.phase}' 2>/dev/null; }
dispatched() { case $(phase "$1") in Dispatched | Running) return 0 ;; *) return 1 ;; esac; }
invalid() { # invalid PORT KIND: the gauge's value
  curl -sf "http://127.0.0.1:$1/metrics" | awk -v k="computenet_invalid_objects{kind=\"$2\"}" '$1 == k {print $2}'
}
leading() { # leading PORT LOG: this replica holds the lease, has its caches and is ready
  # (a standby answers /readyz too, so the log must say it leads with its caches listed)
  grep -q 'caches ready' "$2" && curl -sf "http://127.0.0.1:$1/readyz" >/dev/null
}
warned() { # warned NAMESPACE NAME PATTERN: an InvalidObject Warning Event about this very
  # object (by uid: Events of an earlier run's object of the same name may still be there)
  # whose message matches PATTERN
  local kind=tj uid; [ "$1" = default ] && kind=cnq
  uid=$(kubectl get "$kind" "$2" ${1:+-n "$1"} -o jsonpath='{.metadata.uid}') || return 1
  kubectl get events -n "$1" --field-selector "involvedObject.uid=$uid,reason=InvalidObject,type=Warning" \
    -o jsonpath='{.items[*].message}' | grep -q "$3"
}

# --- (a) a leader starts with the poison present.
serve "$PORT_A" "$tmp/serve-a.log"
check "a leader with undecodable objects present lists its caches and becomes ready" wait_for 60 leading "$PORT_A" "$tmp/serve-a.log"
tj good-1 | kubectl apply -f - >/dev/null
check "a good job submitted afterwards is admitted and dispatched" wait_for 60 dispatched good-1
check "the issue's memory in plain bytes (68719476736) is read and the job dispatched" wait_for 30 dispatched issue-bytes
check "replicas: \"four\" gets a Warning Event InvalidObject naming spec.replicas" \
  wait_for 30 warned "$NS" bad-type 'spec.replicas: invalid type'
check "a priority beyond int32 gets a Warning Event InvalidObject naming spec.priority" \
  wait_for 30 warned "$NS" bad-priority 'spec.priority: invalid value'
check "a ComputeQueue with weight: \"heavy\" gets a Warning Event InvalidObject naming spec.weight" \
  wait_for 30 warned default "$BAD_QUEUE" 'spec.weight: invalid type'
check "computenet_invalid_objects counts 2 TrainingJobs and 1 ComputeQueue" wait_for 30 bash -c "
  $(declare -f invalid); [ \"\$(invalid $PORT_A TrainingJob) \$(invalid $PORT_A ComputeQueue) \$(invalid $PORT_A MemberCluster)\" = '2 1 0' ]"
check "each undecodable object is logged once, not on every pass" bash -c "
  sleep 3; [ \"\$(grep -c 'does not decode' '$tmp/serve-a.log')\" = 3 ]"

# --- (b) numbers at their bounds.
tj hours-max '{"work": {"gpuHours": 1e300}}' | kubectl apply -f - >/dev/null 2>&1 ||
  tj hours-max '{"work": {"gpuHours": 1e7}}' | kubectl apply -f - >/dev/null
echo "    hours-max stored with gpuHours $(kubectl get tj hours-max -n "$NS" -o jsonpath='{.spec.work.gpuHours}')"
bounded_estimate() {
  local s; s=$(kubectl get tj hours-max -n "$NS" -o jsonpath='{.status.placement.estimatedRuntimeSeconds}')
  python3 -c 'import math,sys; v = float(sys.argv[1]); sys.exit(0 if math.isfinite(v) and 0 < v <= 315360000 else 1)' "${s:-nan}"
}
check "the largest gpuHours admitted gets a finite estimate (at most ten years) in a stored status" wait_for 30 bounded_estimate
check "a job stored with gpuHours 1e300 gets a stored status naming spec.work.gpuHours" wait_for 30 bash -c "
  kubectl get tj hours-huge -n $NS -o jsonpath='{.status.conditions[*].message}' | grep -q 'spec.work.gpuHours'"

# --- (a) again: the leader dies; a new one takes over with the poison still present.
kill -9 "${PIDS[0]}" 2>/dev/null; wait "${PIDS[0]}" 2>/dev/null
start=$(date +%s)
serve "$PORT_B" "$tmp/serve-b.log"
check "after kill -9 of the leader, a new leader with the poison present lists its caches and becomes ready" \
  wait_for 60 leading "$PORT_B" "$tmp/serve-b.log"
echo "    leading and ready $(( $(date +%s) - start )) s after the kill (lease ${LEASE_S} s)"
tj good-2 | kubectl apply -f - >/dev/null
check "the new leader admits and dispatches a good job" wait_for 60 dispatched good-2
check "the new leader counts the same undecodable objects" wait_for 30 bash -c "
  $(declare -f invalid); [ \"\$(invalid $PORT_B TrainingJob) \$(invalid $PORT_B ComputeQueue)\" = '2 1' ]"
kubectl delete tj bad-type bad-priority -n "$NS" --wait=false >/dev/null 2>&1
check "deleting the undecodable jobs takes them out of the count" wait_for 30 bash -c "
  $(declare -f invalid); [ \"\$(invalid $PORT_B TrainingJob)\" = 0 ]"
summary
