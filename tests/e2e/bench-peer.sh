#!/usr/bin/env bash
# Peer comparison: Kueue v0.17.0 as MultiKueue (stock, then with its worker clients' rate limit
# raised) and computenet dispatch the same N one-GPU jobs from the hub to ai-1/ai-3, each on a
# fresh test bed (up.sh --members 3 --gpu-nodes 250 --no-taint --no-slurm --no-prometheus).
# Prints one table. Run by hand (not part of tests/run.sh); see "Performance" in README.md.
#
#   tests/e2e/bench-peer.sh [--only computenet|kueue|kueue-stock|kueue-nothrottle]... [--keep] [N]
#
#   N                 jobs per system (default 2000)
#   --only SYSTEM     run only SYSTEM (repeatable; kueue = kueue-stock + kueue-nothrottle)
#   --keep            leave the last test bed (and its scheduler) running
#
# Environment:
#   PEER_STOCK_TIMEOUT   seconds stock Kueue gets after the first create (default 300: at client-go's
#                        5 QPS per worker it needs over an hour for 2000; the table says "k of N")
#   PEER_TIMEOUT         the same for the other two (default 1200)
#   PEER_CONCURRENCY     creates in flight in the submitter (default 32)
#   PEER_SETTLE_MAX      seconds to wait after the window for the hub's writes to settle
#                        (default 180; the table's "settled" rows, for runs that dispatched all N)
#   PEER_KUEUE_REMOTE    what "no throttling" means for Kueue (patched binary, tests/peer/kueue):
#                          same       the hub's clients to the workers get the QPS/burst of its
#                                     own client, Kueue's shipped clientConnection 50/100 (default)
#                          unlimited  every client-side limit off: remote and clientConnection -1
#   PEER_OUT             folder for the raw results (default: a new /tmp/bench-peer.XXXXXX)
#   TESTBED_RUN_DIR, TESTBED_*_PORT   as for tests/testbed/up.sh (the test bed is restarted per
#                        system: whatever runs in that run folder is stopped); KUEUE_PORT_BASE
#                        (default 18700, see tests/peer/kueue/start.sh); COMPUTENET_BIN,
#                        COMPUTENET_SUBMIT_BIN (default: target/release/…, built from this tree);
#                        PEER_WEBHOOK_PORT (default 18521: computenet's webhook, on 127.0.0.1).
#
# The job: 1 pod, 1 A100-80G GPU, cpu 1, memory 4Gi, annotation computenet.io/run-seconds
# "3600" (KWOK keeps the pod Running). Kueue: a batch/v1 Job (tests/peer/kueue/job.yaml);
# computenet: a TrainingJob. Both submitted by computenet-submit (crates/bench-submit),
# PEER_CONCURRENCY creates in flight, recording when each create returned.
# "Dispatched" = the job exists unsuspended on a member: a Job on ai-1/ai-3 with spec.suspend
# false (Kueue: the copy of the hub Job, namespace peer-bench; computenet: the member Job it
# made, labelled computenet.io/job-name). computenet-submit observe watches both members and
# records when it first saw each, on this host's clock: latency = seen - create returned
# (sub-second; creationTimestamps have 1 s resolution, so they are not used). For computenet
# the table also gives status.dispatchTime - create returned (1 s resolution).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
TB=$root/tests/testbed
KQ=$root/tests/peer/kueue
usage() { sed -n '2,40p' "$0" | sed 's/^# \{0,1\}//'; }

systems=()
KEEP=0 JOBS=2000
while [ $# -gt 0 ]; do
  case $1 in
    --only) case ${2:-} in
              computenet|kueue-stock|kueue-nothrottle) systems+=("$2") ;;
              kueue) systems+=(kueue-stock kueue-nothrottle) ;;
              *) echo "bench-peer.sh: --only computenet|kueue|kueue-stock|kueue-nothrottle" >&2; exit 2 ;;
            esac; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    [0-9]*) JOBS=$1; shift ;;
    *) echo "bench-peer.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
[ ${#systems[@]} -gt 0 ] || systems=(kueue-stock kueue-nothrottle computenet)
# Always in this order, each once.
ordered=()
for s in kueue-stock kueue-nothrottle computenet; do [[ " ${systems[*]} " == *" $s "* ]] && ordered+=("$s"); done
STOCK_TIMEOUT=${PEER_STOCK_TIMEOUT:-300}
TIMEOUT=${PEER_TIMEOUT:-1200}
SETTLE_MAX=${PEER_SETTLE_MAX:-180}
CONC=${PEER_CONCURRENCY:-32}
REMOTE=${PEER_KUEUE_REMOTE:-same}
case $REMOTE in same|unlimited) ;; *) echo "bench-peer.sh: PEER_KUEUE_REMOTE is same or unlimited" >&2; exit 2 ;; esac
OUT=${PEER_OUT:-$(mktemp -d /tmp/bench-peer.XXXXXX)}
mkdir -p "$OUT"
RUN=${TESTBED_RUN_DIR:-$TB/run}
UP_OPTS=(--members 3 --gpu-nodes 250 --no-taint --no-slurm --no-prometheus)
t_begin=$(date +%s)
log() { echo "$(date -u +%H:%M:%S) $*"; }

# ---- builds (cached: Kueue by version outside the clone, Rust in target/)
# Built from this tree every run (a no-op when current), unless given: a stale binary would
# measure old code.
need_rust=()
[ -n "${COMPUTENET_SUBMIT_BIN:-}" ] || need_rust+=(-p computenet-bench-submit)
[[ " ${ordered[*]} " == *" computenet "* ]] && [ -z "${COMPUTENET_BIN:-}" ] && need_rust+=(-p computenet)
COMPUTENET_BIN=${COMPUTENET_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/computenet}
SUBMIT=${COMPUTENET_SUBMIT_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/computenet-submit}
HOOK_PORT=${PEER_WEBHOOK_PORT:-18521}
need_free_ports PEER_WEBHOOK_PORT "$HOOK_PORT"
if [ ${#need_rust[@]} -gt 0 ]; then
  log "cargo build --release ${need_rust[*]}"
  (cd "$root" && cargo build --release --locked "${need_rust[@]}")
fi
for s in "${ordered[@]}"; do
  case $s in
    kueue-stock) "$KQ/build.sh" stock ;;
    kueue-nothrottle) "$KQ/build.sh" patched ;;
  esac
done

obs=
cleanup() {
  if [ -n "$obs" ]; then kill "$obs" 2>/dev/null || true; fi
  "$KQ/stop.sh" >/dev/null 2>&1 || true
  if [ "$KEEP" = 0 ]; then "$TB/down.sh" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

# hub_requests FILE: the hub's apiserver_request_total, summed by resource[/subresource] and verb.
hub_requests() {
  kubectl --kubeconfig "$HUB_KUBECONFIG" get --raw /metrics | python3 -c '
import re, sys, collections
t = collections.Counter()
for line in sys.stdin:
    if not line.startswith("apiserver_request_total{"):
        continue
    lab = dict(re.findall(r"(\w+)=\"([^\"]*)\"", line[:line.rindex("}")]))
    r = lab.get("resource") or "(non-resource)"
    if lab.get("subresource"):
        r += "/" + lab["subresource"]
    t[r + " " + lab.get("verb", "")] += float(line.split()[-1])
for k, n in sorted(t.items()):
    print(f"{k} {n:.0f}")' > "$1"
}
hub_writes() { # the hub's write requests so far (POST, PUT, PATCH, APPLY, DELETE), all clients
  kubectl --kubeconfig "$HUB_KUBECONFIG" get --raw /metrics \
    | awk '/^apiserver_request_total\{/ && /verb="(POST|PUT|PATCH|APPLY|DELETE|DELETECOLLECTION)"/ { s += $NF } END { printf "%d\n", s }'
}
member_requests() { # KUBECONFIG -> total apiserver_request_total
  kubectl --kubeconfig "$1" get --raw /metrics | awk '/^apiserver_request_total\{/ { s += $NF } END { printf "%d\n", s }'
}
vmhwm() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

fresh_testbed() {
  log "fresh test bed: down.sh; up.sh ${UP_OPTS[*]}"
  "$TB/down.sh" >/dev/null
  "$TB/up.sh" "${UP_OPTS[@]}" | tail -1
  # shellcheck disable=SC1091
  . "$RUN/env"
}

# run_system NAME: one system on a fresh test bed; results in $OUT/NAME/.
run_system() {
  local name=$1 d=$OUT/$1 timeout=$TIMEOUT observe_args sched_pairs=() what
  mkdir -p "$d"
  fresh_testbed
  case $name in
    kueue-stock)
      timeout=$STOCK_TIMEOUT
      (unset KUEUE_QPS KUEUE_BURST KUEUE_REMOTE_QPS KUEUE_REMOTE_BURST; "$KQ/start.sh" stock)
      what="stock: remote clients client-go 5 QPS/10 burst per worker; own client 50/100" ;;
    kueue-nothrottle)
      if [ "$REMOTE" = same ]; then
        KUEUE_QPS=50 KUEUE_BURST=100 KUEUE_REMOTE_QPS=50 KUEUE_REMOTE_BURST=100 "$KQ/start.sh" patched
        what="patched: remote clients 50 QPS/100 burst per worker = its own client (shipped 50/100)"
      else
        KUEUE_QPS=-1 KUEUE_BURST=-1 KUEUE_REMOTE_QPS=-1 KUEUE_REMOTE_BURST=-1 "$KQ/start.sh" patched
        what="patched: no client-side limit at all (remote and own client QPS -1)"
      fi ;;
    computenet)
      start_computenet
      what="computenet serve (release), one process" ;;
  esac
  echo "$what" > "$d/what"
  if [ "$name" = computenet ]; then
    sched_pairs=()   # computenet.pid is in the test bed's pid folder: cpu_usage.py reads it
    # The member Job (namespace computenet-jobs-<hub namespace>) carries the TrainingJob's name
    # in a label: the same event as for Kueue, the Job unsuspended on ai-1/ai-3.
    observe_args=(--cluster "ai-1=$AI_1_KUBECONFIG" --cluster "ai-3=$AI_3_KUBECONFIG" --api-version batch/v1
                  --kind Job --namespace computenet-jobs-peer-bench --key-label computenet.io/job-name
                  --equals spec.suspend=false)
    template=$d/template.yaml
    computenet_template > "$template"
  else
    local c
    for c in hub ai-1 ai-3; do sched_pairs+=("kueue@$c=$(cat "$RUN/kueue/pids/kueue@$c.pid")"); done
    observe_args=(--cluster "ai-1=$AI_1_KUBECONFIG" --cluster "ai-3=$AI_3_KUBECONFIG" --api-version batch/v1
                  --kind Job --namespace peer-bench --equals spec.suspend=false)
    template=$KQ/job.yaml
  fi
  rm -f "$d/ready"
  "$SUBMIT" observe "${observe_args[@]}" --until "$JOBS" --timeout $((timeout + 30)) \
    --ready-file "$d/ready" --record "$d/observed.tsv" > "$d/observe.out" 2> "$d/observe.err" &
  obs=$!
  for _ in $(seq 240); do [ -e "$d/ready" ] && break; kill -0 "$obs" 2>/dev/null || break; sleep 0.5; done
  [ -e "$d/ready" ] || { echo "bench-peer.sh: observer not ready" >&2; cat "$d/observe.err" >&2; return 1; }
  python3 "$here/cpu_usage.py" save "$d/cpu" "$RUN/pids" "${sched_pairs[@]}"
  hub_requests "$d/hub-req0"
  echo "$(member_requests "$AI_1_KUBECONFIG") $(member_requests "$AI_3_KUBECONFIG")" > "$d/member-req0"
  log "$name: submitting $JOBS jobs ($CONC in flight)"
  date +%s.%N > "$d/t0"
  "$SUBMIT" create "$template" --count "$JOBS" --concurrency "$CONC" --kubeconfig "$HUB_KUBECONFIG" --record "$d/created.tsv" | tee "$d/create.out"
  # The observer stops when all are seen; a timed-out run gets SIGINT at the deadline (counted
  # from the first create), on which the observer writes what it saw and exits.
  local deadline; deadline=$(python3 -c "print(int($(cat "$d/t0") + $timeout))")
  while kill -0 "$obs" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 1; done
  if kill -0 "$obs" 2>/dev/null; then kill -INT "$obs" 2>/dev/null; fi
  wait "$obs" 2>/dev/null || true
  obs=
  date +%s.%N > "$d/t1"
  cat "$d/observe.out"
  python3 "$here/cpu_usage.py" report "$d/cpu" "$RUN/pids" "${sched_pairs[@]}" > "$d/cpu.txt"
  hub_requests "$d/hub-req1"
  echo "$(member_requests "$AI_1_KUBECONFIG") $(member_requests "$AI_3_KUBECONFIG")" > "$d/member-req1"
  # Settled: what the scheduler still does for these jobs after the window (Events recorded
  # in the background, status writes still queued, Running mirrored) counts too. Only when all
  # N were dispatched: wait until the hub takes fewer than 5 writes in 5 s (periodic lease and
  # status renewals stay below that), at most SETTLE_MAX s; then CPU and hub requests again.
  if [ "$(wc -l < "$d/observed.tsv" 2>/dev/null || echo 0)" -ge "$JOBS" ]; then
    local w0 w1 waited=0
    w1=$(hub_writes)
    while [ "$waited" -lt "$SETTLE_MAX" ]; do
      w0=$w1; sleep 5; waited=$((waited + 5)); w1=$(hub_writes)
      [ $((w1 - w0)) -lt 5 ] && break
    done
    echo "$waited" > "$d/settled"
    python3 "$here/cpu_usage.py" report "$d/cpu" "$RUN/pids" "${sched_pairs[@]}" > "$d/cpu-settled.txt"
    hub_requests "$d/hub-req2"
    log "$name: settled $waited s after the window"
  fi
  : > "$d/rss"
  if [ "$name" = computenet ]; then
    echo "computenet $(vmhwm "$(cat "$RUN/pids/computenet.pid")")" >> "$d/rss"
    # status.dispatchTime: when computenet created the member object (1 s resolution), for
    # comparison with what the watch saw.
    kubectl --kubeconfig "$HUB_KUBECONFIG" -n peer-bench get tj -o jsonpath='{range .items[*]}{.metadata.name}{"\t"}{.status.placement.cluster}{"\t"}{.status.dispatchTime}{"\n"}{end}' \
      | awk -F'\t' '$3 != ""' > "$d/dispatched.tsv"
    # Its log (with RUST_LOG=computenet_scheduler::run=debug, each pass and its computing time).
    cp "$RUN/logs/computenet-serve.log" "$d/" 2>/dev/null || true
  else
    for c in hub ai-1 ai-3; do echo "kueue@$c $(vmhwm "$(cat "$RUN/kueue/pids/kueue@$c.pid")")" >> "$d/rss"; done
  fi
  "$KQ/stop.sh" >/dev/null 2>&1 || true
  log "$name: done"
}

start_computenet() {
  kubectl --kubeconfig "$HUB_KUBECONFIG" apply -f "$root/deploy/crds/" >/dev/null
  for _ in $(seq 60); do
    [ "$(kubectl --kubeconfig "$HUB_KUBECONFIG" get crd trainingjobs.computenet.io -o jsonpath='{.status.conditions[?(@.type=="Established")].status}' 2>/dev/null)" = True ] && break
    sleep 0.5
  done
  {
    cat <<EOT
apiVersion: v1
kind: Namespace
metadata: {name: peer-bench, labels: {computenet.io/tenant: peer-bench}}
---
apiVersion: computenet.io/v1alpha1
kind: ComputeQueue
metadata: {name: peer-bench}
spec:
  namespaceSelector: {matchLabels: {computenet.io/tenant: peer-bench}}
EOT
    echo ---; k8s_member ai-1 west; echo ---; k8s_member ai-3 east
    # The chart's finalize webhook, registered by URL (the service runs on this host): jobs
    # are created with computenet's finalizer, as in a chart install.
    cat <<EOT
---
apiVersion: v1
kind: Namespace
metadata: {name: computenet-system}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: computenet-bench}
webhooks:
$(finalize_webhook "$HOOK_PORT")
EOT
  } | kubectl --kubeconfig "$HUB_KUBECONFIG" apply -f - >/dev/null
  RUST_LOG=${RUST_LOG:-info} nohup "$COMPUTENET_BIN" serve --kubeconfig "$HUB_KUBECONFIG" --no-leader-election --no-http \
    --webhook-listen "127.0.0.1:$HOOK_PORT" --webhook-hosts 127.0.0.1 --webhook-configuration computenet-bench \
    > "$RUN/logs/computenet-serve.log" 2>&1 &
  echo $! > "$RUN/pids/computenet.pid"
  for _ in $(seq 240); do
    kubectl --kubeconfig "$HUB_KUBECONFIG" get mcl ai-1 ai-3 -o jsonpath='{.items[*].status.conditions[0].status}' 2>/dev/null | grep -q "True True" && break
    sleep 0.5
  done
  for _ in $(seq 60); do
    [ -n "$(kubectl --kubeconfig "$HUB_KUBECONFIG" get mutatingwebhookconfiguration computenet-bench -o jsonpath='{.webhooks[0].clientConfig.caBundle}')" ] && break
    sleep 0.5
  done
  log "computenet serve up (pid $(cat "$RUN/pids/computenet.pid")); members: $(kubectl --kubeconfig "$HUB_KUBECONFIG" get mcl ai-1 ai-3 -o jsonpath='{.items[*].status.gpus}') GPUs free/total"
}

computenet_template() {
  cat <<'EOT'
# Object i is named pc<i, 5 digits>. Same shape as tests/peer/kueue/job.yaml.
apiVersion: computenet.io/v1alpha1
kind: TrainingJob
metadata:
  name: pc
  namespace: peer-bench
  annotations: {computenet.io/run-seconds: "3600"}
spec:
  queueName: peer-bench
  replicas: 1
  resources: {cpu: "1", memory: 4Gi, accelerators: {count: 1, types: [A100-80G]}}
  workload: {image: example/train:1.0, command: [python, train.py]}
  work: {gpuHours: 2.5}
EOT
}

log "bench-peer: N=$JOBS, systems: ${ordered[*]}; results in $OUT"
for s in "${ordered[@]}"; do run_system "$s"; done
log "all runs done in $(( $(date +%s) - t_begin )) s (wall time, builds included)"
python3 "$here/bench_peer_table.py" "$OUT" "$JOBS" "${ordered[@]}" | tee "$OUT/table.md"
