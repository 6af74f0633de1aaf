#!/usr/bin/env bash
# Fault group "dispatch": members that refuse, hang or rotate their credentials.
# - a member that refuses a job for good (a ValidatingAdmissionPolicy on it denies the
#   Job): the job ends Failed with the member's message within seconds, its quota is free
#   for the next job at once, and no further attempts are made;
# - a member that refuses for now (a full ResourceQuota there): the job backs off with
#   growing delays and is dispatched once the quota is lifted;
# - a blackholed member (a TCP listener that accepts and never answers): passes stay as
#   fast, and jobs reach the healthy member as fast, as without it (measured both ways);
# - token rotation: the member's ServiceAccount token is revoked and the hub's Secret
#   gets a new one: the service reconnects without a restart, the running job stays in
#   place (not requeued) and new jobs dispatch.
#
# Needs the test bed (tests/testbed/up.sh --members 3 --gpu-nodes 8 --no-taint) and
#   cargo build -p computenet
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"
use_testbed
started_at=$(date +%s)
tmp=$(mktemp -d)
NS=f-dispatch
# The member namespace of this hub namespace's jobs: the MemberCluster's prefix and NS.
MEMBER_NS_PREFIX=f-dispatch-jobs
MEMBER_NS=$MEMBER_NS_PREFIX-$NS
SA_NS=f-dispatch-sa
QUEUE=f-dispatch-q
PORT=18160
BLACKHOLE_PORT=18161
MEMBER_TIMEOUT=15
SERVE_PID='' BLACKHOLE_PID=''
ai1() { kubectl --kubeconfig "$AI_1_KUBECONFIG" "$@"; }

cleanup() {
  kubectl delete tj --all -n "$NS" --timeout=30s >/dev/null 2>&1
  [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null
  [ -n "$BLACKHOLE_PID" ] && kill "$BLACKHOLE_PID" 2>/dev/null && wait "$BLACKHOLE_PID" 2>/dev/null
  kubectl get tj -n "$NS" -o name 2>/dev/null | xargs -r kubectl patch -n "$NS" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
  kubectl delete ns "$NS" --wait=false >/dev/null 2>&1
  kubectl delete cnq "$QUEUE" --ignore-not-found >/dev/null 2>&1
  kubectl delete mcl ai-1 general-2 --ignore-not-found >/dev/null 2>&1
  kubectl delete secret -n computenet-system f-dispatch-ai-1 f-dispatch-blackhole --ignore-not-found >/dev/null 2>&1
  ai1 delete validatingadmissionpolicybinding f-dispatch-deny --ignore-not-found >/dev/null 2>&1
  ai1 delete validatingadmissionpolicy f-dispatch-deny --ignore-not-found >/dev/null 2>&1
  ai1 delete clusterrolebinding f-dispatch-a f-dispatch-b --ignore-not-found >/dev/null 2>&1
  ai1 delete ns "$MEMBER_NS" "$SA_NS" --wait=false >/dev/null 2>&1
  if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

kubectl apply -f "$root/deploy/crds/" >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=30s >/dev/null
# A run before this one may still be deleting its namespaces.
wait_for 90 bash -c "! kubectl get ns $NS >/dev/null 2>&1 && ! kubectl --kubeconfig '$AI_1_KUBECONFIG' get ns $MEMBER_NS $SA_NS >/dev/null 2>&1" ||
  { echo "namespaces of an earlier run still terminating" >&2; exit 1; }
kubectl delete mcl ai-1 general-2 ai-3 slurm-1 --ignore-not-found >/dev/null 2>&1

# --- the member side (ai-1): the namespace jobs go to (made here, so that it carries the
# policy's label; the service adds its own labels), a policy that denies Jobs marked
# for refusal, and a ServiceAccount whose token is the service's credential.
ai1 apply -f - >/dev/null <<EOT
apiVersion: v1
kind: Namespace
metadata: {name: $MEMBER_NS, labels: {f-dispatch: policy}}
---
apiVersion: v1
kind: Namespace
metadata: {name: $SA_NS}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: f-dispatch-deny}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules: [{apiGroups: [batch], apiVersions: [v1], operations: [CREATE], resources: [jobs]}]
  validations:
  - expression: >-
      !has(object.spec.template.metadata.annotations) ||
      !('computenet.io/f-dispatch-refuse' in object.spec.template.metadata.annotations)
    message: "f-dispatch policy: this member refuses jobs marked computenet.io/f-dispatch-refuse"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: f-dispatch-deny}
spec:
  policyName: f-dispatch-deny
  validationActions: [Deny]
  matchResources: {namespaceSelector: {matchLabels: {f-dispatch: policy}}}
EOT
for sa in a b; do
  ai1 create serviceaccount "f-dispatch-$sa" -n "$SA_NS" >/dev/null
  ai1 create clusterrolebinding "f-dispatch-$sa" --clusterrole=cluster-admin --serviceaccount="$SA_NS:f-dispatch-$sa" >/dev/null
done
# kubeconfig_for TOKEN SERVER: a kubeconfig for ai-1 that authenticates with TOKEN.
kubeconfig_for() {
  local ca
  ca=$(ai1 config view --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
  cat <<EOT
apiVersion: v1
kind: Config
clusters: [{name: m, cluster: {server: "$2", certificate-authority-data: $ca}}]
contexts: [{name: m, context: {cluster: m, user: u}}]
current-context: m
users: [{name: u, user: {token: "$1"}}]
EOT
}
put_secret() { # put_secret NAME FILE
  kubectl create secret generic "$1" -n computenet-system --from-file=kubeconfig="$2" --dry-run=client -o yaml |
    kubectl label --local -f - computenet.io/credentials=true -o yaml | kubectl apply -f - >/dev/null
}
token_a=$(ai1 create token f-dispatch-a -n "$SA_NS" --duration=2h)
kubeconfig_for "$token_a" "$AI_1_URL" > "$tmp/kubeconfig-a"
put_secret f-dispatch-ai-1 "$tmp/kubeconfig-a"

{ tenant_queue "$NS" f-dispatch "$QUEUE" 8; cat <<EOT; } | kubectl apply -f - >/dev/null
---
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: ai-1}
spec:
  kind: AI
  site: west
  kubernetes: {kubeconfigSecretRef: {name: f-dispatch-ai-1, namespace: computenet-system, key: kubeconfig}, namespace: $MEMBER_NS_PREFIX}
  efficiency: {pue: 1.1, energyPricePerKWh: 0.5}
EOT

flags=()
# The fixed service's knobs; a binary without them runs with its defaults.
"$BIN" serve --help | grep -q -- --dispatch-backoff-max-s && flags+=(--dispatch-backoff-max-s 4)
"$BIN" serve --help | grep -q -- --secret-check-interval-s && flags+=(--secret-check-interval-s 5)
setsid "$BIN" serve --kubeconfig "$HUB_KUBECONFIG" --no-leader-election --interval-ms 500 \
  --member-timeout-s "$MEMBER_TIMEOUT" --listen "127.0.0.1:$PORT" "${flags[@]}" \
  > "$tmp/serve.log" 2>&1 &
SERVE_PID=$!
check "the service is ready" wait_for 60 curl -sf "http://127.0.0.1:$PORT/readyz"
ready() { [ "$(kubectl get mcl "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]; }
check "ai-1 is Ready (connected with a ServiceAccount token)" wait_for 60 ready ai-1
# The policy takes effect once the member's apiserver has loaded it: a server-side dry run says when.
policy_active() {
  ! ai1 create --dry-run=server -f - >/dev/null 2>&1 <<EOT
apiVersion: batch/v1
kind: Job
metadata: {name: f-dispatch-probe, namespace: $MEMBER_NS}
spec:
  template:
    metadata: {annotations: {computenet.io/f-dispatch-refuse: "1"}}
    spec: {restartPolicy: Never, containers: [{name: c, image: x}]}
EOT
}
wait_for 30 policy_active || echo "    (the member's admission policy did not become active)"

# tj NAME GPUS RUN_SECONDS [ANNOTATION_LINE]
tj() {
  cat <<EOT
---
apiVersion: computenet.io/v1alpha1
kind: TrainingJob
metadata:
  name: $1
  namespace: $NS
  labels: {f-dispatch/group: "${5:-none}"}
  annotations: {computenet.io/run-seconds: "$3"${4:+, $4}}
spec:
  queueName: $QUEUE
  replicas: 1
  resources: {cpu: "1", memory: 1Gi, accelerators: {count: $2}}
  workload: {image: example/train:1.0, command: ["python", "train.py"]}
  work: {gpuHours: 1}
EOT
}
field() { kubectl get tj "$1" -n "$NS" -o jsonpath="$2" 2>/dev/null; }
phase_is() { [ "$(field "$1" '{.status.phase}')" = "$2" ]; }
metric_sum() { # metric_sum REGEX: the sum of the sample lines matching REGEX
  curl -sf "http://127.0.0.1:$PORT/metrics" | awk -v re="$1" '$0 ~ re {s += $NF} END {print s + 0}'
}
errors() { metric_sum '^computenet_dispatch_errors_total[{]'; }

# --- a: a member that refuses the job for good
t0=$(date +%s.%N)
tj refused 8 600 '"computenet.io/f-dispatch-refuse": "1"' | kubectl apply -f - >/dev/null
check "a job the member refuses for good ends Failed within 15 s" wait_for 15 phase_is refused Failed
t1=$(date +%s.%N)
echo "    admitted and refused in $(python3 -c "print(round($t1 - $t0, 1))") s"
check "its Finished condition says DispatchRejected with the member's message" bash -c "
  [ \"$(field refused '{.status.conditions[?(@.type=="Finished")].reason}')\" = DispatchRejected ] &&
  kubectl get tj refused -n $NS -o jsonpath='{.status.conditions[?(@.type==\"Finished\")].message}' | grep -q 'this member refuses jobs marked'"
check "a Warning Event DispatchRejected is recorded on it" wait_for 10 bash -c "
  kubectl get events -n $NS --field-selector reason=DispatchRejected,involvedObject.name=refused -o jsonpath='{.items[*].type}' | grep -q Warning"
tj fits 8 600 | kubectl apply -f - >/dev/null
check "its quota is free at once: a second 8-GPU job in the 8-GPU queue runs" wait_for 30 phase_is fits Running
e1=$(errors)
sleep 8
e2=$(errors)
echo "    dispatch errors after the refusal: $e1, 8 s later: $e2"
check "dispatch attempts stop (computenet_dispatch_errors_total stays put)" bash -c "[ '$e1' -ge 1 ] && [ '$e1' = '$e2' ]"
check "the refusal is counted as permanent" bash -c "
  curl -sf http://127.0.0.1:$PORT/metrics | grep -q '^computenet_dispatch_errors_total{class=\"permanent\",cluster=\"ai-1\"} 1$'"

# Each part starts from an empty queue, so a part that fails leaves the next one a fair test.
clear_jobs() { kubectl delete tj --all -n "$NS" --timeout=60s >/dev/null 2>&1; }

# --- a': a member that refuses for now: a full ResourceQuota in its job namespace
clear_jobs
ai1 create quota f-dispatch-full -n "$MEMBER_NS" --hard=count/jobs.batch=0 >/dev/null
tj waits 8 600 | kubectl apply -f - >/dev/null
check "a job the member refuses for now stays admitted with DispatchFailed (exceeded quota)" wait_for 30 bash -c "
  [ \"\$(kubectl get tj waits -n $NS -o jsonpath='{.status.conditions[?(@.type==\"Dispatched\")].reason}')\" = DispatchFailed ] &&
  kubectl get tj waits -n $NS -o jsonpath='{.status.conditions[?(@.type==\"Dispatched\")].message}' | grep -q 'exceeded quota'"
sleep 8
a1=$(field waits '{.status.retry.attempts}')
p1=$(field waits '{.status.phase}')
echo "    after ~8 s: phase $p1, ${a1:-no} attempts (a pass every 0.5 s would be ~16)"
check "it backs off: 3 to 5 attempts in ~8 s, not failed" bash -c "
  [ '$p1' = Admitted ] && [ '${a1:-0}' -ge 3 ] && [ '${a1:-0}' -le 5 ]"
ai1 delete quota f-dispatch-full -n "$MEMBER_NS" >/dev/null
check "once the member's quota is lifted it is dispatched and runs" wait_for 20 phase_is waits Running
clear_jobs

# --- b: a blackholed member next to a healthy one
# cycles FILE: count, sum and passes of at most 1 s of the pass-duration histogram.
cycles() {
  curl -sf "http://127.0.0.1:$PORT/metrics" | awk '
    /^computenet_scheduling_cycle_duration_seconds_count/ {c = $NF}
    /^computenet_scheduling_cycle_duration_seconds_sum/ {s = $NF}
    /^computenet_scheduling_cycle_duration_seconds_bucket[{]le="1"[}]/ {b = $NF}
    END {print c + 0, s + 0, b + 0}'
}
running_count() { # running_count GROUP
  kubectl get tj -n "$NS" -l "f-dispatch/group=$1" -o jsonpath='{.items[*].status.phase}' | tr ' ' '\n' | grep -c '^Running$'
}
# burst GROUP: four 1-GPU jobs; prints "seconds-to-all-running mean-pass-ms share-of-passes-under-1s passes"
burst() {
  local before after start end
  before=$(cycles)
  start=$(date +%s.%N)
  for i in 1 2 3 4; do tj "$1-$i" 1 600 "" "$1"; done | kubectl apply -f - >/dev/null
  wait_for 60 bash -c "$(declare -f running_count); NS=$NS; [ \"\$(running_count $1)\" = 4 ]"
  end=$(date +%s.%N)
  sleep 3 # a few passes more with the member in place
  after=$(cycles)
  python3 - "$before" "$after" "$start" "$end" <<'EOF'
import sys
c0, s0, b0 = map(float, sys.argv[1].split())
c1, s1, b1 = map(float, sys.argv[2].split())
n = max(c1 - c0, 1)
print(f"{float(sys.argv[4]) - float(sys.argv[3]):.1f} {1000 * (s1 - s0) / n:.0f} {(b1 - b0) / n:.2f} {int(c1 - c0)}")
EOF
}
read -r t_plain ms_plain share_plain n_plain <<< "$(burst plain)"
echo "    without the blackholed member: 4 jobs running in ${t_plain} s; ${n_plain} passes, mean ${ms_plain} ms, ${share_plain} of them <= 1 s"
python3 "$here/blackhole.py" "$BLACKHOLE_PORT" > "$tmp/blackhole.log" 2>&1 &
BLACKHOLE_PID=$!
kubeconfig_for "$token_a" "https://127.0.0.1:$BLACKHOLE_PORT" > "$tmp/kubeconfig-blackhole"
put_secret f-dispatch-blackhole "$tmp/kubeconfig-blackhole"
kubectl apply -f - >/dev/null <<EOT
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: general-2}
spec:
  kind: General
  site: east
  kubernetes: {kubeconfigSecretRef: {name: f-dispatch-blackhole, namespace: computenet-system, key: kubeconfig}, namespace: $MEMBER_NS_PREFIX}
EOT
sleep 6 # connection attempts to it are under way
read -r t_hole ms_hole share_hole n_hole <<< "$(burst hole)"
echo "    with it: 4 jobs running in ${t_hole} s; ${n_hole} passes, mean ${ms_hole} ms, ${share_hole} of them <= 1 s"
check "the blackholed member is not Ready" bash -c "$(declare -f ready); ! ready general-2"
check "with a blackholed member the median pass stays under 1 s and the mean under 0.5 s" python3 -c "
import sys; sys.exit(0 if float('${share_hole:-0}') >= 0.5 and float('${ms_hole:-9999}') < 500 else 1)"
check "jobs for the healthy member run as fast as without it (at most twice the time + 1 s)" python3 -c "
import sys; sys.exit(0 if float('${t_hole:-999}') <= 2 * float('${t_plain:-0}') + 1 else 1)"
kubectl delete mcl general-2 >/dev/null 2>&1
kill "$BLACKHOLE_PID" 2>/dev/null && wait "$BLACKHOLE_PID" 2>/dev/null
BLACKHOLE_PID=""
clear_jobs

# --- c: token rotation
tj before 1 600 | kubectl apply -f - >/dev/null
check "a job runs on ai-1 before the rotation" wait_for 30 phase_is before Running
remote_before=$(field before '{.status.remote.name}')
member_uid_before=$(ai1 get job "$remote_before" -n "$MEMBER_NS" -o jsonpath='{.metadata.uid}' 2>/dev/null)
# Revoke the old token (its ServiceAccount is gone), then put a new one in the Secret.
ai1 delete serviceaccount f-dispatch-a -n "$SA_NS" >/dev/null
revoked=$(date +%s)
wait_for 20 bash -c "! kubectl --kubeconfig '$tmp/kubeconfig-a' get --raw /version" ||
  echo "    (the old token still works)"
sleep 2
token_b=$(ai1 create token f-dispatch-b -n "$SA_NS" --duration=2h)
kubeconfig_for "$token_b" "$AI_1_URL" > "$tmp/kubeconfig-b"
put_secret f-dispatch-ai-1 "$tmp/kubeconfig-b"
rotated=$(date +%s.%N)
tj after 1 600 | kubectl apply -f - >/dev/null
check "after the rotation a new job is dispatched to ai-1 and runs (no restart)" wait_for 40 phase_is after Running
echo "    the new job ran $(python3 -c "import time; print(round(time.time() - $rotated, 1))") s after the Secret got the new token"
# Past the member timeout since the revocation: a member judged lost would have requeued.
sleep $(( revoked + MEMBER_TIMEOUT + 5 - $(date +%s) > 0 ? revoked + MEMBER_TIMEOUT + 5 - $(date +%s) : 0 ))
check "the running job stays in place: Running, never requeued, same member Job" bash -c "
  [ \"$(field before '{.status.phase}')\" = Running ] && [ -z \"$(field before '{.status.requeues}')\" -o \"$(field before '{.status.requeues}')\" = 0 ] &&
  [ \"$(field before '{.status.remote.name}')\" = '$remote_before' ] &&
  [ \"\$(kubectl --kubeconfig '$AI_1_KUBECONFIG' get job '$remote_before' -n $MEMBER_NS -o jsonpath='{.metadata.uid}')\" = '$member_uid_before' ]"
check "ai-1 is Ready with the new token" wait_for 10 ready ai-1
check "no panic in the service's log" bash -c "! grep -q panicked '$tmp/serve.log'"
echo "    group wall time: $(( $(date +%s) - started_at )) s"
summary
