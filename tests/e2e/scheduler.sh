#!/usr/bin/env bash
# computenet serve on the test bed, driven with kubectl as a user would: the job lifecycle,
# gang placement, waiting in order, tenant isolation, failures, deletion, suspension,
# preemption, crash safety with two replicas and leader election, and member loss.
#
# Needs the test bed up with three members and untainted KWOK nodes:
#   tests/testbed/up.sh --members 3 --gpu-nodes 8 --no-taint
# (ai-1 and ai-3: 4 A100-80G + 4 H800 nodes of 8 GPUs each; general-2: CPU only).
# COMPUTENET_BIN points at the computenet binary (default: target/debug/computenet).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
use_testbed
tmp=$(mktemp -d)
SERVE_PIDS=()

serve() { # serve NAME PORT: starts a scheduler replica with leader election, metrics on
  # 127.0.0.1:PORT, logs to $tmp/NAME.log. The lease is 10 s: a leader fences its writes
  # to a third of it, and a 200-job burst on two loaded cores can make calls take a second.
  setsid "$BIN" serve --kubeconfig "$HUB_KUBECONFIG" --interval-ms 500 --member-timeout-s 5 \
    --lease-duration-s 10 --identity "$1" --listen "127.0.0.1:$2" > "$tmp/$1.log" 2>&1 &
  SERVE_PIDS+=($!)
  echo $! > "$tmp/$1.pid"
}
stop_all() {
  for p in "${SERVE_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${SERVE_PIDS[@]}"; do wait "$p" 2>/dev/null; done
}
unstick() { # removes computenet's finalizer from jobs no scheduler is left to clean up
  kubectl get tj -A -o jsonpath='{range .items[?(@.metadata.deletionTimestamp)]}{.metadata.namespace} {.metadata.name}{"\n"}{end}' 2>/dev/null |
    while read -r ns name; do kubectl patch tj "$name" -n "$ns" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1; done
}
remove_claim() { # the pod the charging check puts on ai-1
  KUBECONFIG=$AI_1_KUBECONFIG kubectl delete pod claims-to-be-computenets -n computenet-jobs-e2e-a --ignore-not-found --wait=false >/dev/null 2>&1
}
cleanup() {
  # Delete the jobs while a scheduler still runs, so it removes their remote objects.
  kubectl delete tj --all -n e2e-a --timeout=60s >/dev/null 2>&1
  kubectl delete tj --all -n e2e-b --timeout=30s >/dev/null 2>&1
  stop_all
  unstick
  kubectl delete ns e2e-a e2e-b --wait=false >/dev/null 2>&1
  kubectl delete cnq urgent --ignore-not-found >/dev/null 2>&1
  remove_claim
  if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

member_kubeconfig() { local var; var="$(echo "$1" | tr 'a-z-' 'A-Z_')_KUBECONFIG"; echo "${!var}"; }
field() { kubectl get tj "$2" -n "$1" -o jsonpath="$3" 2>/dev/null; }
phase_is() { [ "$(field "$1" "$2" '{.status.phase}')" = "$3" ]; }
wait_phase() { wait_for "$4" phase_is "$1" "$2" "$3"; }

# tj NAME RUN_SECONDS REPLICAS GPUS [EXTRA_SPEC] [EXTRA_ANNOTATIONS] [NAMESPACE] [QUEUE]
tj() {
  local name=$1 run=$2 replicas=$3 gpus=$4 extra=${5:-} ann=${6:-} ns=${7:-e2e-a} queue=${8:-research}
  local acc=""
  [ "$gpus" -gt 0 ] && acc=", accelerators: {count: $gpus}"
  cat <<EOT
---
apiVersion: computenet.io/v1alpha1
kind: TrainingJob
metadata:
  name: $name
  namespace: $ns
  annotations: {computenet.io/run-seconds: "$run"$ann}
spec:
  queueName: $queue
  replicas: $replicas
  resources: {cpu: "4", memory: 16Gi$acc}
  workload: {image: example/train:1.0, command: ["python", "train.py"]}
  work: {gpuHours: 1}
$extra
EOT
}

kubectl apply -f "$root/deploy/crds/" >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=30s >/dev/null
# Leftovers of an interrupted run must not get in the way.
unstick
remove_claim
wait_for 60 bash -c '! kubectl get ns e2e-a e2e-b >/dev/null 2>&1' || { echo "namespaces e2e-a/e2e-b still terminating" >&2; exit 1; }
kubectl apply -f - >/dev/null <<EOT
apiVersion: v1
kind: Namespace
metadata: {name: e2e-a, labels: {computenet.io/tenant: research}}
---
apiVersion: v1
kind: Namespace
metadata: {name: e2e-b, labels: {computenet.io/tenant: other}}
---
apiVersion: computenet.io/v1alpha1
kind: ComputeQueue
metadata: {name: research}
spec:
  namespaceSelector: {matchLabels: {computenet.io/tenant: research}}
  cohort: city
  quotas: [{resource: nvidia.com/gpu, nominal: 256}]
---
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: ai-1}
spec:
  kind: AI
  site: west
  kubernetes: {kubeconfigSecretRef: {name: ai-1-kubeconfig, namespace: computenet-system, key: kubeconfig}, namespace: computenet-jobs}
  efficiency: {pue: 1.1, energyPricePerKWh: 0.5}
---
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: ai-3}
spec:
  kind: AI
  site: east
  kubernetes: {kubeconfigSecretRef: {name: ai-3-kubeconfig, namespace: computenet-system, key: kubeconfig}, namespace: computenet-jobs}
  efficiency: {pue: 1.4, energyPricePerKWh: 0.9}
---
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: general-2}
spec:
  kind: General
  site: west
  kubernetes: {kubeconfigSecretRef: {name: general-2-kubeconfig, namespace: computenet-system, key: kubeconfig}, namespace: computenet-jobs}
EOT

# --- Without the CRDs the scheduler says so.
missing=$(RUST_BACKTRACE=0 "$BIN" serve --kubeconfig "$(member_kubeconfig ai-1)" --no-leader-election 2>&1)
check "serve explains missing CRDs" bash -c "printf '%s' \"\$1\" | grep -q 'CRDs are not installed'" _ "$missing"

serve replica-a 18090
check "members turn Ready with their capacity" wait_for 30 bash -c '[ "$(kubectl get mcl ai-1 -o jsonpath="{.status.gpus}")" = "64/64" ] && [ "$(kubectl get mcl ai-3 -o jsonpath="{.status.conditions[0].status}")" = True ]'

# --- Lifecycle: Queued -> Admitted -> Running -> Succeeded, visible in kubectl get and Events.
tj life 3 2 4 | kubectl apply -f - >/dev/null
check "a job runs to Succeeded" wait_phase e2e-a life Succeeded 60
# Events are recorded in the background, so the last one may land a moment after the phase.
# Admitted and dispatched in one go is one Event (Dispatched, naming both); Running is in
# the phase and its condition, not an Event.
check "its Events: Dispatched (placed on the member; created the Job) and Succeeded, nothing more" bash -c '
  sorted=""
  for _ in $(seq 30); do
    reasons=$(kubectl get events -n e2e-a --field-selector involvedObject.name=life -o jsonpath="{range .items[*]}{.reason} {end}")
    sorted=$(echo $reasons | tr " " "\n" | sort | tr "\n" " ")
    [ "$sorted" = "Dispatched Succeeded " ] && break
    sleep 0.5
  done
  note=$(kubectl get events -n e2e-a --field-selector involvedObject.name=life,reason=Dispatched -o jsonpath="{.items[0].message}")
  [ "$sorted" = "Dispatched Succeeded " ] && echo "$note" | grep -Eq "^placed on ai-1 \(.*\); created Job [a-z0-9.-]+ on ai-1$" && exit 0
  echo "Events: $reasons; Dispatched: $note"; exit 1'
check "kubectl get tj shows queue, cluster, accelerator, replicas and GPUs" bash -c 'kubectl get tj life -n e2e-a | tail -1 | grep -E "research +Succeeded +ai-1 +(H800|A100-80G) +2 +8"'
check "the member ran an Indexed Job of 2 pods" bash -c "
  name=\$(kubectl get tj life -n e2e-a -o jsonpath='{.status.remote.name}')
  [ \"\$(KUBECONFIG=$(member_kubeconfig ai-1) kubectl get job \$name -n computenet-jobs-e2e-a -o jsonpath='{.spec.completionMode} {.spec.completions} {.status.succeeded}')\" = 'Indexed 2 2' ]"

# --- A pod that carries computenet's labels, this hub's id among them, in the member
# namespace of this hub's jobs, but belongs to no job placed on the member uses its node
# like any other workload: it is charged, and its capacity comes back when it goes. (Only
# the pods of jobs admitted there are charged by placement instead.)
ai1=$(member_kubeconfig ai-1)
hub=$(sed 's/\x1b\[[0-9;]*m//g' "$tmp/replica-a.log" | grep -o 'hub identity on members hub_id=[0-9a-z-]*' | head -1 | sed 's/.*hub_id=//')
claim_node=$(KUBECONFIG=$ai1 kubectl get nodes -l nvidia.com/gpu.product -o jsonpath='{.items[0].metadata.name}')
KUBECONFIG=$ai1 kubectl apply -f - >/dev/null <<EOT
apiVersion: v1
kind: Pod
metadata:
  name: claims-to-be-computenets
  namespace: computenet-jobs-e2e-a
  labels: {computenet.io/managed: "true", computenet.io/hub: "$hub", computenet.io/job-uid: not-a-placed-job, computenet.io/attempt: "0"}
spec:
  nodeName: $claim_node
  securityContext: {runAsNonRoot: true, runAsUser: 1000, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: c
    image: busybox
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
    resources: {requests: {nvidia.com/gpu: "8"}, limits: {nvidia.com/gpu: "8"}}
EOT
check "a pod with this hub's labels but no job placed here is charged to its node" \
  wait_for 30 bash -c '[ -n "$1" ] && [ "$(kubectl get mcl ai-1 -o jsonpath="{.status.gpus}")" = "56/64" ]' _ "$hub"
remove_claim
check "its capacity comes back when it goes" \
  wait_for 30 bash -c '[ "$(kubectl get mcl ai-1 -o jsonpath="{.status.gpus}")" = "64/64" ]'

# --- Gangs: 4 x 8 H800 fits only where 4 H800 nodes are free.
tj hold-west 120 1 8 '  placement: {sites: [west]}
  resources: {cpu: "4", memory: 16Gi, accelerators: {count: 8, types: [H800]}}' | sed '/^  resources: {cpu: "4", memory: 16Gi, accelerators: {count: 8}}$/d' | kubectl apply -f - >/dev/null
check "a filler takes one H800 node of ai-1" wait_phase e2e-a hold-west Running 30
tj gang 20 4 8 '  resources: {cpu: "4", memory: 16Gi, accelerators: {count: 8, types: [H800]}}' | sed '0,/^  resources: {cpu: "4", memory: 16Gi, accelerators: {count: 8}}$/{//d}' | kubectl apply -f - >/dev/null
check "the 4 x 8 gang lands on ai-3, where 4 H800 nodes are free" wait_for 30 bash -c '[ "$(kubectl get tj gang -n e2e-a -o jsonpath="{.status.placement.cluster}/{.status.placement.accelerator}")" = ai-3/H800 ]'
check "on 4 distinct nodes" bash -c '[ "$(kubectl get tj gang -n e2e-a -o jsonpath="{range .status.placement.nodes[*]}{.node}{\"\\n\"}{end}" | sort -u | wc -l)" = 4 ]'
check "ai-1 was rejected for capacity" bash -c 'kubectl get tj gang -n e2e-a -o jsonpath="{.status.explanation.rejected}" | grep -q "ai-1"'

# --- Beyond capacity, jobs wait in order and start when capacity frees.
for w in w1 w2; do
  tj $w 3 4 8 '  resources: {cpu: "4", memory: 16Gi, accelerators: {count: 8, types: [H800]}}' | sed '0,/^  resources: {cpu: "4", memory: 16Gi, accelerators: {count: 8}}$/{//d}' | kubectl apply -f - >/dev/null
  sleep 1
done
check "waiting jobs are Queued in order (positions 1 and 2), with the reason" wait_for 20 bash -c '
  [ "$(kubectl get tj w1 w2 -n e2e-a -o jsonpath="{.items[*].status.queuePosition}")" = "1 2" ] &&
  kubectl get tj w1 -n e2e-a -o jsonpath="{.status.explanation.summary}" | grep -q "capacity reserved on" &&
  kubectl get tj w2 -n e2e-a -o jsonpath="{.status.explanation.summary}" | grep -q "waiting for capacity"'
check "both run once capacity frees" bash -c 'wait_for() { local end=$(( $(date +%s) + $1 )); shift; until "$@"; do [ "$(date +%s)" -ge "$end" ] && return 1; sleep 1; done; }
  wait_for 90 bash -c "[ \"\$(kubectl get tj w1 w2 -n e2e-a -o jsonpath=\"{.items[*].status.phase}\")\" = \"Succeeded Succeeded\" ]"'
check "in submission order" bash -c '[[ "$(kubectl get tj w1 -n e2e-a -o jsonpath="{.status.startTime}")" < "$(kubectl get tj w2 -n e2e-a -o jsonpath="{.status.startTime}")" ]]'
kubectl delete tj hold-west -n e2e-a --wait=false >/dev/null

# --- Tenant isolation and unknown queues: Pending with a reason.
{ tj lost 1 1 1 "" "" e2e-a nope; tj outsider 1 1 1 "" "" e2e-b research; } | kubectl apply -f - >/dev/null
check "a missing queue leaves the job Pending with QueueNotFound" wait_for 20 bash -c '[ "$(kubectl get tj lost -n e2e-a -o jsonpath="{.status.phase} {.status.conditions[?(@.type==\"Queued\")].reason}")" = "Pending QueueNotFound" ]'
check "a namespace outside the queue's selector is refused" wait_for 20 bash -c '[ "$(kubectl get tj outsider -n e2e-b -o jsonpath="{.status.phase} {.status.conditions[?(@.type==\"Queued\")].reason}")" = "Pending NamespaceNotAllowed" ]'

# --- Failure is mirrored with its reason.
tj crash 1 1 1 "" ', computenet.io/fail: "true"' | kubectl apply -f - >/dev/null
check "a failing job reaches Failed" wait_phase e2e-a crash Failed 60
check "with the member's reason" bash -c '[ -n "$(kubectl get tj crash -n e2e-a -o jsonpath="{.status.conditions[?(@.type==\"Finished\")].reason}")" ]'

# --- Deletion removes the remote objects (finalizer). Each hub namespace's jobs run in
# their own member namespace: computenet-jobs-<namespace>. A gang of two has a Service too;
# a single replica (crash, above) is its own master and has none.
on_member() { local m=$1; shift; KUBECONFIG=$(member_kubeconfig "$m") kubectl "$@" -n computenet-jobs-e2e-a; }
read -r crash_member crash_remote < <(field e2e-a crash '{.status.remote.cluster} {.status.remote.name}')
check "a single-replica job's Job is on its member" on_member "$crash_member" get job "$crash_remote"
check "and it has no Service" bash -c "! KUBECONFIG=$(member_kubeconfig "$crash_member") kubectl get svc $crash_remote -n computenet-jobs-e2e-a >/dev/null 2>&1"
tj doomed 300 2 2 | kubectl apply -f - >/dev/null
check "a long job runs" wait_phase e2e-a doomed Running 30
read -r doomed_member doomed_remote < <(field e2e-a doomed '{.status.remote.cluster} {.status.remote.name}')
check "its Job and headless Service exist on the member" on_member "$doomed_member" get job,svc "$doomed_remote"
kubectl delete tj doomed -n e2e-a --timeout=30s >/dev/null 2>&1
check "deleting it deletes its Job and Service on the member" wait_for 30 bash -c "
  ! KUBECONFIG=$(member_kubeconfig "$doomed_member") kubectl get job $doomed_remote -n computenet-jobs-e2e-a >/dev/null 2>&1 &&
  ! KUBECONFIG=$(member_kubeconfig "$doomed_member") kubectl get svc $doomed_remote -n computenet-jobs-e2e-a >/dev/null 2>&1"
check "and the TrainingJob is gone" bash -c '! kubectl get tj doomed -n e2e-a >/dev/null 2>&1'

# --- Suspend stops the job and frees its capacity; resume runs it again.
tj pausable 300 1 2 | kubectl apply -f - >/dev/null
check "a job to suspend runs" wait_phase e2e-a pausable Running 30
kubectl patch tj pausable -n e2e-a --type=merge -p '{"spec":{"suspend":true}}' >/dev/null
check "suspend stops it" wait_phase e2e-a pausable Suspended 30
check "and releases its place" bash -c '[ "$(kubectl get tj pausable -n e2e-a -o jsonpath="{.status.admitted}")" = false ]'
kubectl patch tj pausable -n e2e-a --type=merge -p '{"spec":{"suspend":false}}' >/dev/null
check "resume runs it again" wait_phase e2e-a pausable Running 30
kubectl delete tj pausable -n e2e-a --wait=false >/dev/null

# --- Crash safety: two replicas, kill -9 the leader in the middle of dispatching 200 jobs.
serve replica-b 18091
for i in $(seq -w 1 200); do tj "burst-$i" 1 1 1; done > "$tmp/burst.yaml"
kubectl apply -f "$tmp/burst.yaml" >/dev/null
wait_for 30 bash -c "[ \$(kubectl get tj -n e2e-a -o jsonpath='{range .items[*]}{.status.remote.name}{\"\\n\"}{end}' | grep -c cn-) -ge 20 ]"
holder() { kubectl get lease computenet-scheduler -n computenet-system -o jsonpath='{.spec.holderIdentity}' 2>/dev/null; }
export -f holder
leader=$(holder)
check "one replica leads" test -f "$tmp/$leader.pid"
kill -9 "$(cat "$tmp/$leader.pid")"
check "the other replica takes over" wait_for 40 bash -c "h=\$(holder); [ -n \"\$h\" ] && [ \"\$h\" != '$leader' ] && grep -q leading $tmp/\$h.log"
check "all 200 jobs succeed" wait_for 240 bash -c "[ \$(kubectl get tj -n e2e-a -o jsonpath='{range .items[*]}{.metadata.name} {.status.phase}{\"\\n\"}{end}' | grep -c '^burst-.* Succeeded') = 200 ]"
count_remote() {
  for m in ai-1 ai-3 general-2; do
    KUBECONFIG=$(member_kubeconfig $m) kubectl get jobs -n computenet-jobs-e2e-a -o jsonpath='{range .items[*]}{.metadata.labels.computenet\.io/job-name}{"\n"}{end}' 2>/dev/null
  done | grep '^burst-' | sort | uniq -c | awk '{print $1}' | sort | uniq -c
}
runs=$(count_remote | tr -s ' ' | sed 's/^ //')
check "each ran exactly once (one member Job per TrainingJob, none duplicated)" test "$runs" = "200 1"

# --- Member loss: stop ai-1's apiserver.
kubectl delete tj -n e2e-a -l '!keep' --wait=false >/dev/null 2>&1
wait_for 60 bash -c '[ -z "$(kubectl get tj -n e2e-a -o name)" ]'

# --- Preemption: a queue that preempts lower priorities within itself. A low-priority gang
# fills ai-1's four H800 nodes; a higher-priority job that fits only there takes one.
kubectl apply -f - >/dev/null <<EOT
apiVersion: computenet.io/v1alpha1
kind: ComputeQueue
metadata: {name: urgent}
spec:
  namespaceSelector: {matchLabels: {computenet.io/tenant: other}}
  quotas: [{resource: nvidia.com/gpu, nominal: 256}]
  preemption: {withinQueue: LowerPriority}
  priorityRange: {min: 0, max: 100}
EOT
h800_west='  placement: {sites: [west]}
  resources: {cpu: "4", memory: 16Gi, accelerators: {count: 8, types: [H800]}}'
only_h800() { sed '/^  resources: {cpu: "4", memory: 16Gi, accelerators: {count: 8}}$/d'; }
tj low 600 4 8 "$h800_west" "" e2e-b urgent | only_h800 | kubectl apply -f - >/dev/null
check "a low-priority gang fills ai-1's H800 nodes" wait_phase e2e-b low Running 40
low_remote=$(field e2e-b low '{.status.remote.name}')
tj high 600 1 8 "$h800_west
  priority: 100" "" e2e-b urgent | only_h800 | kubectl apply -f - >/dev/null
check "a higher-priority job preempts it (Preempted Event)" wait_for 40 bash -c \
  'kubectl get events -n e2e-b --field-selector involvedObject.name=low -o jsonpath="{range .items[*]}{.reason} {end}" | grep -qw Preempted'
check "the preempted gang is back in the queue, one requeue counted" wait_for 20 bash -c \
  '[ "$(kubectl get tj low -n e2e-b -o jsonpath="{.status.admitted} {.status.requeues}")" = "false 1" ]'
check "its Job is deleted on ai-1" wait_for 30 bash -c "! KUBECONFIG=$(member_kubeconfig ai-1) kubectl get job $low_remote -n computenet-jobs-e2e-b >/dev/null 2>&1"
check "the higher-priority job runs on ai-1" wait_for 40 bash -c \
  '[ "$(kubectl get tj high -n e2e-b -o jsonpath="{.status.phase} {.status.placement.cluster}")" = "Running ai-1" ]'
sleep 2 # a few more cycles: the preemption must not be counted again
check "computenet_preemptions_total counts it once" bash -c \
  'for port in 18090 18091; do curl -s "127.0.0.1:$port/metrics"; done | grep -qx "computenet_preemptions_total{queue=\"urgent\"} 1"'
kubectl delete tj low high -n e2e-b --wait=false >/dev/null
wait_for 60 bash -c '! kubectl get tj low high -n e2e-b >/dev/null 2>&1'
tj stay 600 1 8 '  onMemberLoss: Wait' | kubectl apply -f - >/dev/null
tj move 600 1 8 '  onMemberLoss: Requeue' | kubectl apply -f - >/dev/null
check "two long jobs run on the cheaper member ai-1" wait_for 40 bash -c '[ "$(kubectl get tj stay move -n e2e-a -o jsonpath="{.items[*].status.phase} {.items[*].status.placement.cluster}")" = "Running Running ai-1 ai-1" ]'
apiserver_pid=$(cat "$TESTBED_RUN_DIR/pids/kube-apiserver@ai-1.pid")
kill -STOP "$apiserver_pid"
tj later 5 1 8 | kubectl apply -f - >/dev/null
check "the member turns NotReady" wait_for 30 bash -c '[ "$(kubectl get mcl ai-1 -o jsonpath="{.status.conditions[?(@.type==\"Ready\")].status}")" = False ]'
check "a Requeue job moves to ai-3 and runs there" wait_for 40 bash -c '[ "$(kubectl get tj move -n e2e-a -o jsonpath="{.status.placement.cluster} {.status.phase}")" = "ai-3 Running" ]'
check "a Wait job stays bound to ai-1" bash -c '[ "$(kubectl get tj stay -n e2e-a -o jsonpath="{.status.placement.cluster} {.status.phase}")" = "ai-1 Running" ]'
check "new work goes to the other member" wait_for 40 bash -c '[ "$(kubectl get tj later -n e2e-a -o jsonpath="{.status.placement.cluster}")" = ai-3 ]'
kill -CONT "$apiserver_pid"
check "the member turns Ready again" wait_for 40 bash -c '[ "$(kubectl get mcl ai-1 -o jsonpath="{.status.conditions[?(@.type==\"Ready\")].status}")" = True ]'
check "the moved job's leftover on ai-1 is cleaned up" wait_for 90 bash -c "! KUBECONFIG=$(member_kubeconfig ai-1) kubectl get jobs -n computenet-jobs-e2e-a -o jsonpath='{..computenet\.io/job-name}' | grep -qw move"
summary
