#!/usr/bin/env bash
# Adaptive group "move": a restartable job on a slow accelerator moves to a faster member
# when capacity frees there, and a kill -9 of the service mid-move recovers.
#
# Two members on the test bed, a-move-w (ai-1, site a-move-w) and a-move-e (ai-3, site
# a-move-e), each with 4 A100 and 4 H800 nodes of 8 GPUs. Blockers (rigid, 4 x 8 H800)
# hold every H800, so the restartable job "mover" (1 x 8 GPUs, A100 or H800) starts on an
# A100. The blocker on the other member is deleted: within a round (--adapt-interval-s 5)
# the job is moved there, to an H800. Shows:
# - the move is written as one status change: attempt 2, the new member and accelerator,
#   status.attempts[0] (attempt 1, reason Moved, the round's sentence, progress at the
#   stop), status.progress carried, an Event Adjusted; `kubectl computenet explain`
#   shows the history;
# - old pods stopped before new ones start: watching both members' pods of the job, the
#   last pod of attempt 1 is gone before the first of attempt 2 is created; the member Job
#   is made again for attempt 2 (label computenet.io/attempt=2, WORLD_SIZE, COMPUTENET_ATTEMPT,
#   terminationGracePeriodSeconds = gracePeriodSeconds) and the first member keeps nothing;
# - kill -9 mid-move: a second mover is moved while the service is killed (when it starts
#   the adjustment, and again when its successor stops the old attempt, if it logs that
#   before finishing); the last process finishes the move: one member Job, of attempt 2,
#   one pod, and the same pod order.
#
# Needs the test bed (tests/testbed/up.sh --members 3 --gpu-nodes 8 --no-taint) and
#   cargo build -p computenet -p kubectl-computenet
# Port 18300. About 2 minutes.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$here/lib.sh"
# shellcheck source=tests/e2e/adaptive/lib.bash
. "$here/adaptive/lib.bash"
use_testbed
started_at=$(date +%s)
tmp=$(mktemp -d)
NS=a-move
QUEUE=a-move-q
W=a-move-w E=a-move-e
MEMBER_PREFIX=a-move-jobs
MEMBER_NS=$MEMBER_PREFIX-$NS
PORT=18300
PIDS=() SERVE_PID=''
PLUGIN=${KUBECTL_COMPUTENET:-$root/target/debug/kubectl-computenet}
kc() { local m=$1; shift; case $m in "$W") KUBECONFIG=$AI_1_KUBECONFIG kubectl "$@" ;; *) KUBECONFIG=$AI_3_KUBECONFIG kubectl "$@" ;; esac; }

cleanup() {
  stop_all
  kubectl get tj -n "$NS" -o name 2>/dev/null | xargs -r kubectl patch -n "$NS" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
  kubectl delete ns "$NS" --wait=false >/dev/null 2>&1
  kubectl delete cnq "$QUEUE" --ignore-not-found >/dev/null 2>&1
  kubectl delete mcl "$W" "$E" --ignore-not-found >/dev/null 2>&1
  kubectl delete lease a-move-leader -n computenet-system --ignore-not-found >/dev/null 2>&1
  kc "$W" delete ns "$MEMBER_NS" --wait=false >/dev/null 2>&1
  kc "$E" delete ns "$MEMBER_NS" --wait=false >/dev/null 2>&1
  if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

kubectl apply --server-side --force-conflicts -f "$root/deploy/crds/" >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=30s >/dev/null
wait_for 90 bash -c "! kubectl get ns $NS >/dev/null 2>&1" || { echo "namespace $NS still terminating" >&2; exit 1; }
for kubeconfig in "$AI_1_KUBECONFIG" "$AI_3_KUBECONFIG"; do
  wait_for 90 bash -c "! KUBECONFIG=$kubeconfig kubectl get ns $MEMBER_NS >/dev/null 2>&1" ||
    { echo "member namespace $MEMBER_NS still terminating" >&2; exit 1; }
done

{ tenant_queue "$NS" a-move "$QUEUE"; for m in "$W:ai-1" "$E:ai-3"; do cat <<EOT
---
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: ${m%%:*}}
spec:
  kind: AI
  site: ${m%%:*}
  kubernetes: {kubeconfigSecretRef: {name: ${m##*:}-kubeconfig, namespace: computenet-system, key: kubeconfig}, namespace: $MEMBER_PREFIX}
  efficiency: {pue: 1.2, energyPricePerKWh: 0.5}
EOT
done; } | kubectl apply -f - >/dev/null

# blocker NAME SITE REPLICAS: a rigid gang holding REPLICAS H800 nodes of one member.
blocker() {
  cat <<EOT
apiVersion: computenet.io/v1alpha1
kind: TrainingJob
metadata: {name: $1, namespace: $NS, annotations: {computenet.io/run-seconds: "3600"}}
spec:
  queueName: $QUEUE
  replicas: $3
  resources: {cpu: "4", memory: 16Gi, accelerators: {count: 8, types: [H800]}}
  workload: {image: example/train:1.0, command: [python, train.py]}
  work: {gpuHours: 10000000}
  placement: {sites: [$2]}
EOT
}
# mover NAME GPU_HOURS: restartable, one replica of 8 GPUs of either type, a long run.
mover() {
  cat <<EOT
apiVersion: computenet.io/v1alpha1
kind: TrainingJob
metadata: {name: $1, namespace: $NS, annotations: {computenet.io/run-seconds: "3600"}}
spec:
  queueName: $QUEUE
  replicas: 1
  resources: {cpu: "4", memory: 16Gi, accelerators: {count: 8, types: [A100-80G, H800]}}
  workload: {image: example/train:1.0, command: [torchrun, train.py]}
  work: {gpuHours: $2}
  placement: {sites: [$W, $E], objective: Fastest}
  checkpoint: {restartable: true, gracePeriodSeconds: 5, restartCostSeconds: 60}
EOT
}
field() { kubectl get tj "$1" -n "$NS" -o jsonpath="$2" 2>/dev/null; }
running() { is "$(field "$1" '{.status.phase}')" Running; }
uid_of() { field "$1" '{.metadata.uid}'; }
other() { if [ "$1" = "$W" ]; then echo "$E"; else echo "$W"; fi; }
# member_jobs MEMBER UID: "name attempt" of the TrainingJob's Jobs on a member.
member_jobs() {
  kc "$1" get jobs -A -l "computenet.io/job-uid=$2" \
    -o jsonpath='{range .items[*]}{.metadata.name} {.metadata.labels.computenet\.io/attempt}{"\n"}{end}' 2>/dev/null
}

COMPUTENET_TEST_NAMESPACE_PREFIX=a-move serve_adaptive "$tmp/serve.log" --no-leader-election --hub-id a-move \
  --listen "127.0.0.1:$PORT"
check "the service is ready" wait_for 60 curl -sf "http://127.0.0.1:$PORT/readyz"
# The pods of an earlier group (another hub id) hold their nodes until they are gone, and
# this group needs every H800 of both members: wait until the service sees them all free.
wait_show 120 bash -c 'for m in "$@"; do
  g=$(kubectl get mcl "$m" -o jsonpath="{.status.gpus}")
  [ -n "$g" ] && [ "${g%/*}" = "${g#*/}" ] || { echo "$m: ${g:-no status yet} GPUs free"; exit 1; }
done' _ "$W" "$E" || echo "# the members still run earlier pods; the checks below may fail for it"

blocker block-w "$W" 4 | kubectl apply -f - >/dev/null
blocker block-e "$E" 4 | kubectl apply -f - >/dev/null
check "the blockers hold every H800 of both members" wait_show 60 bash -c "$(declare -f field running is); NS=$NS; running block-w && running block-e"
# Long enough that a later job would rather not wait for its H800.
mover mover 100000 | kubectl apply -f - >/dev/null
check "the restartable job runs on an A100 (attempt 1)" wait_show 60 bash -c "
  $(declare -f field is); NS=$NS
  is \"\$(field mover '{.status.phase} {.status.placement.accelerator} {.status.attempt}')\" 'Running A100-80G 1'"
FROM=$(field mover '{.status.placement.cluster}')
TO=$(other "$FROM")
UID1=$(uid_of mover)
podwatch "$AI_1_KUBECONFIG" "$UID1" "$tmp/pods-mover"
podwatch "$AI_3_KUBECONFIG" "$UID1" "$tmp/pods-mover"
sleep 6 # a round or more: nothing better is free, so nothing moves
check "nothing moves while nothing better is free" bash -c "
  $(declare -f field); NS=$NS; [ \"\$(field mover '{.status.attempt}')\" = 1 ]"

moved_at=$(date +%s.%N)
kubectl delete tj "block-${TO#a-move-}" -n "$NS" --wait=false >/dev/null
check "capacity frees on $TO: the job moves there, to an H800 (attempt 2)" wait_show 60 bash -c "
  $(declare -f field is); NS=$NS
  is \"\$(field mover '{.status.phase} {.status.placement.cluster} {.status.placement.accelerator} {.status.attempt}')\" 'Running $TO H800 2'"
echo "    moved and running again $(echo "$(date +%s.%N) - $moved_at" | bc) s after the blocker's deletion"
check "status.attempts records attempt 1: where, why (Moved, the round's sentence) and its progress" bash -c "
  $(declare -f field); NS=$NS
  [ \"\$(field mover '{.status.attempts[0].attempt} {.status.attempts[0].cluster} {.status.attempts[0].accelerator} {.status.attempts[0].reason}')\" = '1 $FROM A100-80G Moved' ] &&
  field mover '{.status.attempts[0].message}' | grep -q 'moves from $FROM to $TO' &&
  awk -v c=\"\$(field mover '{.status.attempts[0].completed}')\" 'BEGIN { exit !(c > 0 && c < 1) }'"
check "the progress is carried into attempt 2" bash -c "
  $(declare -f field); NS=$NS
  [ \"\$(field mover '{.status.progress.completed}')\" = \"\$(field mover '{.status.attempts[0].completed}')\" ]"
check "an Event Adjusted says why" wait_show 20 bash -c "
  kubectl get events -n $NS --field-selector involvedObject.name=mover,reason=Adjusted -o jsonpath='{.items[*].message}' | grep -q 'attempt 2: moves from'"
check "kubectl computenet explain shows the attempt, the progress and the history" bash -c "
  out=\$('$PLUGIN' explain mover -n $NS) && printf '%s' \"\$out\" | grep -q '^Progress: ' &&
  printf '%s' \"\$out\" | grep -q '^Earlier attempts:' && printf '%s' \"\$out\" | grep -E -q '^1 +$FROM +A100-80G +1 .* Moved '"
check "the member Job is made again on $TO for attempt 2, and $FROM keeps nothing" bash -c "
  $(declare -f member_jobs kc); W=$W AI_1_KUBECONFIG=$AI_1_KUBECONFIG AI_3_KUBECONFIG=$AI_3_KUBECONFIG
  [ \"\$(member_jobs $TO $UID1)\" = \"cn-\$(echo $UID1 | tr -d - | cut -c1-20) 2\" ] && [ -z \"\$(member_jobs $FROM $UID1)\" ]"
check "the new pod gets WORLD_SIZE, COMPUTENET_ATTEMPT and the grace period" bash -c "
  pod=\$(KUBECONFIG=$([ "$TO" = "$W" ] && echo "$AI_1_KUBECONFIG" || echo "$AI_3_KUBECONFIG") kubectl get pods -A -l computenet.io/job-uid=$UID1,computenet.io/attempt=2 -o json) &&
  printf '%s' \"\$pod\" | python3 -c '
import json, sys
p = json.load(sys.stdin)[\"items\"][0][\"spec\"]
env = {e[\"name\"]: e.get(\"value\") for e in p[\"containers\"][0][\"env\"]}
assert env[\"WORLD_SIZE\"] == \"1\" and env[\"COMPUTENET_ATTEMPT\"] == \"2\", env
assert p[\"terminationGracePeriodSeconds\"] == 5, p.get(\"terminationGracePeriodSeconds\")
assert p[\"nodeSelector\"][\"nvidia.com/gpu.product\"] == \"H800\", p[\"nodeSelector\"]'"
check "old pods stopped before new ones start (attempt 1's last pod gone before attempt 2's first)" pods_in_order "$tmp/pods-mover" 1 2
sed 's/^/    /' "$tmp/pods-mover" | head -8

# --- kill -9 mid-move
blocker block-more "$TO" 3 | kubectl apply -f - >/dev/null
check "kill -9: the rest of $TO's H800 are taken" wait_show 60 bash -c "$(declare -f field running is); NS=$NS; running block-more"
mover mover-2 5000 | kubectl apply -f - >/dev/null
check "kill -9: a second restartable job runs on an A100" wait_show 60 bash -c "
  $(declare -f field running is); NS=$NS; running mover-2 && [ \"\$(field mover-2 '{.status.placement.accelerator}')\" = A100-80G ]"
UID2=$(uid_of mover-2)
podwatch "$AI_1_KUBECONFIG" "$UID2" "$tmp/pods-mover-2"
podwatch "$AI_3_KUBECONFIG" "$UID2" "$tmp/pods-mover-2"
sleep 1
kubectl delete tj "block-${FROM#a-move-}" -n "$NS" --wait=false >/dev/null
kills=0
for line in 'adjusting a running job.*mover-2' 'stopping an earlier attempt.*mover-2'; do
  if wait_for 60 grep -Eq "$line" "$tmp/serve.log"; then
    kill -9 "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null; kills=$((kills + 1))
    echo "    killed the service (kill -9) at: $line"
  fi
  mv "$tmp/serve.log" "$tmp/serve-$kills.log"
  COMPUTENET_TEST_NAMESPACE_PREFIX=a-move serve_adaptive "$tmp/serve.log" --no-leader-election --hub-id a-move \
    --listen "127.0.0.1:$PORT"
done
# The second kill comes only when the successor logs the stop (it may finish the move in
# one pass, e.g. when the first kill came before the adjustment was stored).
check "kill -9: the service was killed mid-move ($kills time(s))" bash -c "[ $kills -ge 1 ]"
check "kill -9: the third process finishes the move (H800, attempt 2, running)" wait_show 90 bash -c "
  $(declare -f field); NS=$NS
  [ \"\$(field mover-2 '{.status.phase} {.status.placement.accelerator} {.status.attempt}')\" = 'Running H800 2' ]"
sleep 3
check "kill -9: one member Job for the job, of attempt 2, on one member" bash -c "
  $(declare -f member_jobs kc); W=$W AI_1_KUBECONFIG=$AI_1_KUBECONFIG AI_3_KUBECONFIG=$AI_3_KUBECONFIG
  all=\$( (member_jobs $W $UID2; member_jobs $E $UID2) | sort); echo \"\$all\"; [ \"\$(echo \"\$all\" | wc -l)\" = 1 ] && [ \"\${all##* }\" = 2 ]"
check "kill -9: old pods stopped before new ones start" pods_in_order "$tmp/pods-mover-2" 1 2
check "kill -9: one pod of the job runs" bash -c "
  n=\$( (KUBECONFIG=$AI_1_KUBECONFIG kubectl get pods -A -l computenet.io/job-uid=$UID2 -o name; KUBECONFIG=$AI_3_KUBECONFIG kubectl get pods -A -l computenet.io/job-uid=$UID2 -o name) | wc -l); [ \"\$n\" = 1 ]"
check "the first mover stayed where it went (no thrashing)" bash -c "
  $(declare -f field); NS=$NS; [ \"\$(field mover '{.status.attempt}')\" = 2 ]"

echo "    group run time: $(( $(date +%s) - started_at )) s"
summary
