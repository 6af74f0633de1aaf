#!/usr/bin/env bash
# The kubectl plugin on the test bed, run the way users run it: target/debug/kubectl-computenet
# on the PATH, invoked as `kubectl computenet ...` against the hub while `computenet serve`
# schedules. Creates the MemberClusters plug-ai-1 and plug-general-2 (over the test bed's
# ai-1 and general-2), the ComputeQueue plug-research and jobs in the namespace plug-a, and
# removes them on exit, also on failure. The members' site is plug-west and the jobs ask
# for it, so that other members on the hub do not take them.
#
# Needs the test bed up with its ai-1 (GPU) and general-2 (CPU) members and untainted KWOK
# nodes (tests/testbed/up.sh --no-taint), and both binaries built:
#   cargo build -p computenet -p kubectl-computenet
# COMPUTENET_BIN points at computenet (default target/debug/computenet), PLUGIN_BIN at the
# plugin (default target/debug/kubectl-computenet). With SAVE_POOL=FILE, the output of
# `kubectl computenet pool` is written to FILE. Do not run it at the same time as
# scheduler.sh: each starts a scheduler on the hub. With KEEP_LOGS=1 the scheduler's log and
# every plugin output checked stay in a temporary folder.
# shellcheck disable=SC2016 # the bash -c snippets take their values as arguments
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
use_testbed
PLUGIN_BIN=${PLUGIN_BIN:-$root/target/debug/kubectl-computenet}
[ -x "$PLUGIN_BIN" ] || { echo "plugin not found at $PLUGIN_BIN (cargo build -p kubectl-computenet)" >&2; exit 1; }
# kubectl finds plugins on the PATH by their kubectl-<name> file name.
plugin_dir=$(mktemp -d)
ln -s "$PLUGIN_BIN" "$plugin_dir/kubectl-computenet"
export PATH="$plugin_dir:$PATH"
tmp=$(mktemp -d)
NS=plug-a
SERVE_PID=

unstick() { # removes computenet's finalizer from jobs no scheduler is left to clean up
  kubectl get tj -n $NS -o jsonpath='{range .items[?(@.metadata.deletionTimestamp)]}{.metadata.name}{"\n"}{end}' 2>/dev/null |
    while read -r name; do kubectl patch tj "$name" -n $NS --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1; done
}
cleanup() {
  # Delete the jobs while the scheduler still runs, so it removes their remote objects.
  kubectl delete tj --all -n $NS --timeout=60s >/dev/null 2>&1
  if [ -n "$SERVE_PID" ]; then kill "$SERVE_PID" 2>/dev/null; wait "$SERVE_PID" 2>/dev/null; fi
  unstick
  kubectl delete computequeue plug-research --ignore-not-found >/dev/null 2>&1
  kubectl delete memberclusters plug-ai-1 plug-general-2 --ignore-not-found >/dev/null 2>&1
  kubectl delete ns $NS --wait=false --ignore-not-found >/dev/null 2>&1
  if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
  rm -rf "$plugin_dir"
}
trap cleanup EXIT

# tj NAME RUN_SECONDS REPLICAS GPUS TYPE: a TrainingJob manifest (TYPE "" allows any type).
tj() {
  local name=$1 run=$2 replicas=$3 gpus=$4 type=${5:-} types=""
  [ -n "$type" ] && types=", types: [$type]"
  cat <<EOT
apiVersion: computenet.io/v1alpha1
kind: TrainingJob
metadata:
  name: $name
  namespace: $NS
  annotations: {computenet.io/run-seconds: "$run"}
spec:
  queueName: plug-research
  replicas: $replicas
  resources: {cpu: "4", memory: 16Gi, accelerators: {count: $gpus$types}}
  workload: {image: example/train:1.0, command: ["python", "train.py"]}
  work: {gpuHours: 1}
  placement: {sites: [plug-west]}
EOT
}
# contains NAME PATTERN CMD...: CMD succeeds and its output matches the extended regexp PATTERN.
contains() {
  local name=$1 pattern=$2 out; shift 2
  out=$("$@" 2>&1)
  local code=$?
  printf '$ %s\n%s\n\n' "$*" "$out" >> "$tmp/outputs.txt"
  if [ "$code" != 0 ]; then
    not_ok "$name (exit code $code)"; printf '%s\n' "$out" | sed 's/^/    /' | tail -20
  elif printf '%s\n' "$out" | grep -qE -- "$pattern"; then
    ok "$name"
  else
    not_ok "$name (no match for /$pattern/)"; printf '%s\n' "$out" | sed 's/^/    /' | tail -30
  fi
}
json_ok() { "$@" | python3 -c 'import json, sys; json.load(sys.stdin)'; }

kubectl apply -f "$root/deploy/crds/" >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=30s >/dev/null
unstick
wait_for 60 bash -c "! kubectl get ns $NS >/dev/null 2>&1" || { echo "namespace $NS still terminating" >&2; exit 1; }
kubectl apply -f - >/dev/null <<EOT
apiVersion: v1
kind: Namespace
metadata: {name: $NS, labels: {computenet.io/tenant: plug}}
---
apiVersion: computenet.io/v1alpha1
kind: ComputeQueue
metadata: {name: plug-research}
spec:
  namespaceSelector: {matchLabels: {computenet.io/tenant: plug}}
  cohort: plug
  quotas: [{resource: nvidia.com/gpu, nominal: 256}]
---
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: plug-ai-1}
spec:
  kind: AI
  site: plug-west
  kubernetes: {kubeconfigSecretRef: {name: ai-1-kubeconfig, namespace: computenet-system, key: kubeconfig}, namespace: computenet-jobs}
  efficiency: {pue: 1.1, energyPricePerKWh: 0.5}
---
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: plug-general-2}
spec:
  kind: General
  site: plug-west
  kubernetes: {kubeconfigSecretRef: {name: general-2-kubeconfig, namespace: computenet-system, key: kubeconfig}, namespace: computenet-jobs}
EOT

# --- Without a hub, or without the job, the plugin says so in one line with exit code 1.
out=$(kubectl computenet explain nope -n $NS 2>&1); code=$?
check "explain of a missing job: exit code 1 and one line" bash -c '[ "$1" = 1 ] && [ "$(printf "%s\n" "$2" | wc -l)" = 1 ] && printf "%s" "$2" | grep -q "trainingjob \"nope\" not found in namespace \"plug-a\""' _ "$code" "$out"
out=$(kubectl computenet queue plug-nope 2>&1); code=$?
check "queue of a missing queue: exit code 1" bash -c '[ "$1" = 1 ] && printf "%s" "$2" | grep -q "computequeue \"plug-nope\" not found"' _ "$code" "$out"

listen=()
if "$BIN" serve --help 2>/dev/null | grep -q -- '--listen'; then listen=(--listen 127.0.0.1:18081); fi
setsid "$BIN" serve --kubeconfig "$HUB_KUBECONFIG" --no-leader-election --interval-ms 500 --member-timeout-s 5 \
  "${listen[@]}" > "$tmp/serve.log" 2>&1 &
SERVE_PID=$!

# GPUs per type on ai-1's nodes, as "TYPE COUNT" lines, and their sum.
KUBECONFIG=$AI_1_KUBECONFIG kubectl get nodes \
  -o jsonpath='{range .items[*]}{.metadata.labels.nvidia\.com/gpu\.product} {.status.allocatable.nvidia\.com/gpu}{"\n"}{end}' |
  awk 'NF == 2 { n[$1] += $2 } END { for (t in n) print t, n[t] }' | sort > "$tmp/gpus"
gpus=$(awk '{ s += $2 } END { print s + 0 }' "$tmp/gpus")
check "ai-1 has GPU nodes" test "$gpus" -gt 0
check "both members turn Ready with a node summary" wait_for 60 bash -c "
  [ \"\$(kubectl get mcl plug-ai-1 -o jsonpath='{.status.gpus}')\" = $gpus/$gpus ] &&
  [ -n \"\$(kubectl get mcl plug-ai-1 -o jsonpath='{.status.freeNodes[0].count}')\" ] &&
  [ \"\$(kubectl get mcl plug-general-2 -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}')\" = True ]"

# --- pool: both members, with the GPUs their nodes have.
kubectl computenet pool > "$tmp/pool.txt" 2>&1
by_type=$(awk '{ printf "%s%s %s/%s", (NR > 1 ? ", " : ""), $1, $2, $2 }' "$tmp/gpus")
check "pool shows plug-ai-1 Ready with $gpus/$gpus GPUs ($by_type)" \
  bash -c "grep -E '^plug-ai-1 +AI +plug-west +True ' '$tmp/pool.txt' | grep -F ' $gpus/$gpus ' | grep -qF '$by_type'"
check "pool shows plug-general-2 Ready with its CPU cores" bash -c "grep -E '^plug-general-2 +General +plug-west +True ' '$tmp/pool.txt' | grep -qE ' [0-9]+/[0-9]+ '"
check "pool totals have a row per accelerator type of AI members" bash -c "
  while read -r type n; do grep -qE \"^AI +\$type +[0-9]+ +[0-9]+ +[0-9]+ \" '$tmp/pool.txt' || exit 1; done < '$tmp/gpus'"
check "pool -o json parses" json_ok kubectl computenet pool -o json
check "pool -o json has plug-ai-1 with gpusTotal $gpus" bash -c "kubectl computenet pool -o json | python3 -c '
import json, sys
r = json.load(sys.stdin)
m = [m for m in r[\"members\"] if m[\"name\"] == \"plug-ai-1\"][0]
assert m[\"gpusTotal\"] == $gpus and m[\"ready\"], m
'"
contains "pool -o yaml" '^members:' kubectl computenet pool -o yaml

# --- Jobs: one fills the H800 nodes, two more wait for them in order.
h800=$(awk '$1 == "H800" { print $2 / 8 }' "$tmp/gpus")
check "ai-1 has H800 nodes" test "${h800:-0}" -gt 0
tj fill 600 "$h800" 8 H800 | kubectl apply -f - >/dev/null
check "a job filling the H800 nodes runs" wait_for 60 bash -c "[ \"\$(kubectl get tj fill -n $NS -o jsonpath='{.status.phase}')\" = Running ]"
tj wait-1 60 "$h800" 8 H800 | kubectl apply -f - >/dev/null
sleep 1.1
tj wait-2 60 2 8 H800 | kubectl apply -f - >/dev/null
check "the two waiting jobs are queued at positions 1 and 2" wait_for 30 bash -c "
  [ \"\$(kubectl get tj wait-1 wait-2 -n $NS -o jsonpath='{.items[*].status.queuePosition}')\" = '1 2' ]"

# The pool reads the members' status, whose numbers are written at most every 5 s.
wait_for 15 bash -c "kubectl computenet pool | grep -qE '^plug-ai-1 .* H800 0/$((h800 * 8))'" || true
contains "pool shows the H800 nodes taken" "^plug-ai-1 .* H800 0/$((h800 * 8))" kubectl computenet pool
if [ -n "${SAVE_POOL:-}" ]; then kubectl computenet pool > "$SAVE_POOL"; fi

# --- queue: the pending jobs in order, with usage against quota.
kubectl computenet queue plug-research > "$tmp/queue.txt" 2>&1
check "queue lists plug-research with 2 pending, 1 admitted and its GPUs used/quota" bash -c "grep -qE '^plug-research +plug +1 +BestEffortFIFO +2 +1 +1 +$((h800 * 8))/256\$' '$tmp/queue.txt'"
check "queue lists the pending jobs in order" bash -c "
  sed -n '/^Pending in plug-research/,\$p' '$tmp/queue.txt' | grep -E '^[0-9]+ ' | awk '{print \$1, \$2}' | tr '\n' ' ' | grep -qx '1 plug-a/wait-1 2 plug-a/wait-2 '"
check "queue shows GPU usage against the quota" bash -c "grep -qE '^nvidia.com/gpu +- +$((h800 * 8)) +256 ' '$tmp/queue.txt'"
check "queue -o json parses" json_ok kubectl computenet queue -o json

# --- explain: the placement of an admitted job, the reason of queued ones.
contains "explain shows the placement of a running job" \
  "^Placement: +plug-ai-1, H800, $((h800 * 8)) GPUs on $h800 nodes" kubectl computenet explain fill -n $NS
contains "explain shows the reservation of the first waiting job" \
  "^Why: +first in line: capacity reserved on plug-ai-1" kubectl computenet explain wait-1 -n $NS
contains "explain shows why the second waits" "^Why: +waiting for capacity" kubectl computenet explain wait-2 -n $NS
contains "explain lists why a member was rejected" "^plug-general-2 +no allowed accelerator type" kubectl computenet explain wait-2 -n $NS
check "explain -o json parses" json_ok kubectl computenet explain wait-2 -n $NS -o json

# --- dry-run: a job that fits names a member; one that cannot fit says why; nothing is created.
tj try-fits 60 2 8 A100-80G > "$tmp/fits.yaml"
contains "dry-run of a job that fits names the member" \
  "^Decision: +would be admitted to plug-ai-1 \(A100-80G\) on 2 node" kubectl computenet dry-run -f "$tmp/fits.yaml"
contains "and estimates start, finish, energy and cost" "^Estimated finish: " kubectl computenet dry-run -f "$tmp/fits.yaml"
check "dry-run created nothing" bash -c "! kubectl get tj try-fits -n $NS >/dev/null 2>&1"
a100=$(awk '$1 == "A100-80G" { print $2 / 8 }' "$tmp/gpus")
tj try-huge 60 $((a100 + 1)) 8 A100-80G > "$tmp/huge.yaml"
contains "dry-run of a job that cannot fit says why" \
  "^Decision: +would wait: no member cluster can ever run this job" kubectl computenet dry-run -f "$tmp/huge.yaml"
contains "with each member's reason" "^plug-ai-1 +only $a100 replicas fit now" kubectl computenet dry-run -f "$tmp/huge.yaml"
contains "dry-run reads standard input" "would be admitted to plug-ai-1" bash -c "kubectl computenet dry-run -f - < '$tmp/fits.yaml'"
check "dry-run -o json parses" json_ok kubectl computenet dry-run -f "$tmp/fits.yaml" -o json
printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n' > "$tmp/pod.yaml"
out=$(kubectl computenet dry-run -f "$tmp/pod.yaml" 2>&1); code=$?
check "dry-run refuses a manifest that is not a TrainingJob" bash -c '[ "$1" = 1 ] && printf "%s" "$2" | grep -q "is not a TrainingJob of computenet.io/v1alpha1"' _ "$code" "$out"

summary
