#!/usr/bin/env bash
# Fault group "lease": leader election that a skewed clock, a hung leader or a killed
# leader cannot fool, and admissions that a changed spec cannot slip past. Two or more
# `computenet serve` replicas contend for a Lease with a short --lease-duration-s:
# (a) a standby whose wall clock runs 30 s ahead (libfaketime) never takes a live lease,
#     and a SIGTERMed leader releases it so the standby takes it at its next look, well
#     before the lease could have expired (the check tells the two apart, not how fast);
# (b) a leader SIGSTOPped between a decision and its admission write: the standby takes
#     over after about the lease duration, and the stopped leader, when continued, makes
#     no write that counts (its stale admission to a member since cordoned is neither
#     written nor dispatched) and exits;
# (c) kill -9 of the leader 5 times during a burst of 500 one-GPU jobs, each killed
#     replica restarted as a new standby: every job dispatched exactly once, counted on
#     every member (0 lost, 0 duplicated), and the time from kill to the new leader's
#     first admission measured;
# (d) a spec patched between decision and admission: the service dispatches the spec it
#     decided on, never the patched one unchecked; it decides again from the new spec.
# (b) and (d) widen the window between decision and admission with the test-only
# COMPUTENET_TEST_ADMIT_DELAY_MS (unset in production).
#
# Needs the test bed (tests/testbed/up.sh --members 3 --gpu-nodes 8 --no-taint), faketime
# (tests/testbed/install-deps.sh installs it) and cargo build -p computenet.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"
use_testbed
tmp=$(mktemp -d)
NS=f-lease-a
BURST_NS=f-lease-burst
LEASE_NS=f-lease-system
LEASE=f-lease
DURATION=${LEASE_DURATION_S:-10}
BURST=${LEASE_BURST_JOBS:-500}
FAKETIME_LIB=${FAKETIME_LIB:-/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1}
PORT_BASE=18120 # this group's ports: 18120-18139
declare -A PIDS=() PORTS=()
next_port=$PORT_BASE
# Builds without the profiles ConfigMap (older ones) have no flag to turn it off.
profiles_flag=()
"$BIN" serve --help 2>/dev/null | grep -q -- --profiles-configmap && profiles_flag=(--profiles-configmap '')
# The members' Secrets are the test bed's, in computenet-system, not in the lease namespace.
"$BIN" serve --help 2>/dev/null | grep -q -- --credentials-namespace && profiles_flag+=(--credentials-namespace computenet-system)

# start NAME [ENV=VALUE...]: a replica contending for the lease, identity NAME, log in $tmp/NAME.log.
start() {
  local name=$1; shift
  PORTS[$name]=$next_port; next_port=$((next_port + 1))
  [ "$next_port" -gt 18139 ] && next_port=$PORT_BASE
  env RUST_LOG=info,kube=warn,computenet_scheduler::work=debug "$@" setsid "$BIN" serve --kubeconfig "$HUB_KUBECONFIG" \
    --lease-namespace "$LEASE_NS" --lease-name "$LEASE" --lease-duration-s "$DURATION" --identity "$name" \
    --interval-ms 500 --listen "127.0.0.1:${PORTS[$name]}" "${profiles_flag[@]}" >> "$tmp/$name.log" 2>&1 &
  PIDS[$name]=$!
}
stop() { # stop NAME [SIGNAL]: signals the replica and waits for it to exit
  local pid=${PIDS[$1]:-}
  [ -n "$pid" ] || return 0
  kill "-${2:-TERM}" "$pid" 2>/dev/null; kill -CONT "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  unset "PIDS[$1]"
}
holder() { kubectl get lease "$LEASE" -n "$LEASE_NS" -o jsonpath='{.spec.holderIdentity}' 2>/dev/null; }
is_holder() { [ "$(holder)" = "$1" ]; }
now() { date +%s.%N; }
since() { python3 -c "print(f'{$(now) - $1:.1f}')"; }
admitted_by() { # admissions counted by a replica's metrics
  curl -sf "http://127.0.0.1:${PORTS[$1]}/metrics" 2>/dev/null | awk '/^computenet_admissions_total\{/ {s += $2} END {print s + 0}'
}
member_jobs() { # member_jobs NAMESPACE: "member uid" for every computenet Job of that hub namespace, on every member
  local m var
  for m in $MEMBER_NAMES; do
    var=$(echo "$m" | tr 'a-z-' 'A-Z_')_KUBECONFIG
    [ -n "${!var:-}" ] || continue # a Slurm member has no kubeconfig
    kubectl --kubeconfig "${!var}" get jobs -A -l "computenet.io/job-namespace=$1" \
      -o jsonpath='{range .items[*]}{.metadata.labels.computenet\.io/job-uid}{"\n"}{end}' 2>/dev/null | sed "s/^/$m /"
  done
}

cleanup() {
  # A leader cleans up the jobs' member objects and finalizers; whatever is left is forced.
  local n
  for n in "${!PIDS[@]}"; do stop "$n" KILL; done
  if kubectl get ns "$NS" "$BURST_NS" >/dev/null 2>&1; then
    start cleanup
    kubectl delete tj --all -n "$NS" --wait=false >/dev/null 2>&1
    kubectl delete tj --all -n "$BURST_NS" --wait=false >/dev/null 2>&1
    wait_for 90 bash -c "[ -z \"\$(kubectl get tj -n $NS -o name 2>/dev/null; kubectl get tj -n $BURST_NS -o name 2>/dev/null)\" ]"
    stop cleanup
  fi
  for ns in "$NS" "$BURST_NS"; do
    kubectl get tj -n "$ns" -o name 2>/dev/null |
      xargs -r -P 8 -n 20 kubectl patch -n "$ns" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
  done
  for m in $MEMBER_NAMES; do
    var=$(echo "$m" | tr 'a-z-' 'A-Z_')_KUBECONFIG
    [ -n "${!var:-}" ] || continue
    for ns in "$NS" "$BURST_NS"; do
      kubectl --kubeconfig "${!var}" delete jobs,services -A -l "computenet.io/job-namespace=$ns" --wait=false >/dev/null 2>&1
    done
  done
  kubectl delete ns "$NS" "$BURST_NS" "$LEASE_NS" --wait=false >/dev/null 2>&1
  kubectl delete cnq f-lease-q f-lease-q2 --ignore-not-found >/dev/null 2>&1
  kubectl delete mcl ai-1 general-2 ai-3 --ignore-not-found >/dev/null 2>&1
  if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

[ -r "$FAKETIME_LIB" ] || { echo "libfaketime not found at $FAKETIME_LIB (tests/testbed/install-deps.sh installs faketime)" >&2; exit 1; }
kubectl apply -f "$root/deploy/crds/" >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=30s >/dev/null
for ns in "$NS" "$BURST_NS" "$LEASE_NS"; do
  wait_for 120 bash -c "[ \"\$(kubectl get ns $ns -o jsonpath='{.status.phase}' 2>/dev/null)\" != Terminating ]" ||
    { echo "namespace $ns still terminating" >&2; exit 1; }
done
mcl() { # mcl NAME KIND SITE [CORDONED]
  cat <<EOT
---
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: $1}
spec:
  kind: $2
  site: $3
  cordoned: ${4:-false}
  kubernetes: {kubeconfigSecretRef: {name: $1-kubeconfig, namespace: computenet-system, key: kubeconfig}}
EOT
}
kubectl apply -f - >/dev/null <<EOT
apiVersion: v1
kind: Namespace
metadata: {name: $NS, labels: {computenet.io/tenant: f-lease}}
---
apiVersion: v1
kind: Namespace
metadata: {name: $BURST_NS, labels: {computenet.io/tenant: f-lease}}
---
apiVersion: v1
kind: Namespace
metadata: {name: $LEASE_NS}
---
apiVersion: computenet.io/v1alpha1
kind: ComputeQueue
metadata: {name: f-lease-q}
spec:
  namespaceSelector: {matchLabels: {computenet.io/tenant: f-lease}}
  quotas: [{resource: nvidia.com/gpu, nominal: 64}]
---
apiVersion: computenet.io/v1alpha1
kind: ComputeQueue
metadata: {name: f-lease-q2}
spec:
  namespaceSelector: {matchLabels: {computenet.io/tenant: f-lease}}
  quotas: [{resource: nvidia.com/gpu, nominal: 64}]
EOT
mcl ai-1 AI west | kubectl apply -f - >/dev/null
kubectl delete mcl ai-3 general-2 --ignore-not-found >/dev/null 2>&1

tj() { # tj NAME NAMESPACE [RUN_SECONDS]
  cat <<EOT
---
apiVersion: computenet.io/v1alpha1
kind: TrainingJob
metadata: {name: $1, namespace: $2, annotations: {computenet.io/run-seconds: "${3:-3600}"}}
spec:
  queueName: f-lease-q
  replicas: 1
  resources: {cpu: "1", memory: 4Gi, accelerators: {count: 1}}
  workload: {image: example/train:1.0, command: ["python", "train.py"]}
  work: {gpuHours: 1}
EOT
}
field() { kubectl get tj "$1" -n "$NS" -o jsonpath="$2" 2>/dev/null; }
t0=$(date +%s)

# --- (a) a standby whose wall clock is 30 s ahead
start lead-a
check "a replica takes the free lease" wait_for 30 is_holder lead-a
start skewed-a LD_PRELOAD="$FAKETIME_LIB" FAKETIME=+30s FAKETIME_DONT_FAKE_MONOTONIC=1
skewed_now=$(LD_PRELOAD="$FAKETIME_LIB" FAKETIME=+30s date +%s)
echo "    the standby's wall clock is $((skewed_now - $(date +%s))) s ahead"
wait_for 20 curl -sf "http://127.0.0.1:${PORTS[skewed-a]}/readyz" >/dev/null
kept=1
for _ in $(seq 1 $((DURATION * 8))); do # 4 lease durations, sampled every 0.5 s
  is_holder lead-a || { kept=0; break; }
  sleep 0.5
done
check "skewed clock: the standby (wall clock +30 s) never takes the live lease (4 lease durations)" \
  bash -c "[ $kept = 1 ] && ! grep -qE ' leading\$' '$tmp/skewed-a.log'"
term=$(now)
stop lead-a TERM
# The standby looks every retry period (a fifth of the lease duration), so it takes a
# released lease about one retry period after the SIGTERM. Had the leader not released it,
# the standby would wait until it had seen the lease unchanged for a whole lease duration:
# at least 4/5 of a duration after the SIGTERM (the leader last renewed at most one retry
# period before it). Half a duration tells the two apart with a margin either side; it
# is not a speed target (a loaded machine once took 2.5 s, one retry period plus polling).
# Timed from the SIGTERM with sub-second precision.
wait_for 10 is_holder skewed-a
took=$(since "$term")
bound=$(python3 -c "print($DURATION / 2)")
echo "    takeover after SIGTERM: $took s"
check "a SIGTERMed leader releases the lease (its log says so)" grep -q 'released the leader lease' "$tmp/lead-a.log"
check "the skewed standby takes the released lease at a look, before it could have expired (< $bound s)" \
  bash -c "[ \"\$(kubectl get lease $LEASE -n $LEASE_NS -o jsonpath='{.spec.holderIdentity}')\" = skewed-a ] &&
    python3 -c 'import sys; sys.exit(not $took < $bound)'"
stop skewed-a TERM

# --- (b) a hung leader (SIGSTOP) between its decision and its admission write
start hung-b COMPUTENET_TEST_ADMIT_DELAY_MS=4000
check "the first replica leads" wait_for 30 is_holder hung-b
check "ai-1 is Ready" wait_for 60 bash -c "[ \"\$(kubectl get mcl ai-1 -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}')\" = True ]"
start standby-b
wait_for 20 curl -sf "http://127.0.0.1:${PORTS[standby-b]}/readyz"
tj hung-job "$NS" | kubectl apply -f - >/dev/null
wait_for 20 grep -q 'test-only admission delay.*"hung-job"' "$tmp/hung-b.log"
kill -STOP "${PIDS[hung-b]}"
stopped=$(now)
sleep 0.5 # a renewal in flight when it stopped lands
last_renewal=$(kubectl get lease "$LEASE" -n "$LEASE_NS" -o jsonpath='{.spec.renewTime}')
# While it hangs, its decision goes stale: ai-1 is cordoned and ai-3 joins.
mcl ai-1 AI west true | kubectl apply -f - >/dev/null
mcl ai-3 AI east | kubectl apply -f - >/dev/null
check "hung leader: the standby takes over after about the lease duration" wait_for $((DURATION * 4)) is_holder standby-b
took=$(since "$stopped")
after_renewal=$(python3 -c "
import datetime, time
r = datetime.datetime.fromisoformat('$last_renewal'.replace('Z', '+00:00')).timestamp()
print(f'{time.time() - r:.1f}')")
echo "    takeover after SIGSTOP: $took s; after the hung leader's last renewal: $after_renewal s (lease duration $DURATION s)"
check "  ... not before the lease duration passed since its last renewal" python3 -c "import sys; sys.exit(0 if $after_renewal >= $DURATION else 1)"
check "the new leader admits the job to ai-3 (ai-1 is cordoned) and dispatches it" wait_for 60 bash -c "
  [ \"\$(kubectl get tj hung-job -n $NS -o jsonpath='{.status.placement.cluster}/{.status.remote.cluster}')\" = ai-3/ai-3 ]"
kill -CONT "${PIDS[hung-b]}"
check "the continued old leader exits" wait_for 10 bash -c "! kill -0 ${PIDS[hung-b]} 2>/dev/null"
wait "${PIDS[hung-b]}" 2>/dev/null; unset "PIDS[hung-b]"
sleep 3
uid=$(field hung-job '{.metadata.uid}')
placed=$(member_jobs "$NS" | grep " $uid$" | awk '{print $1}' | sort | tr '\n' ' ')
echo "    member Jobs of hung-job: ${placed:-none}"
check "the old leader's stale admission is not written (still placed on ai-3)" bash -c "
  [ \"\$(kubectl get tj hung-job -n $NS -o jsonpath='{.status.placement.cluster}')\" = ai-3 ]"
check "the old leader dispatched nothing: one Job, on ai-3 only" bash -c "[ '$placed' = 'ai-3 ' ]"
stop standby-b TERM
mcl ai-1 AI west | kubectl apply -f - >/dev/null
mcl general-2 General central | kubectl apply -f - >/dev/null

# --- (d) a spec patched between the decision and the admission write
start patch-d COMPUTENET_TEST_ADMIT_DELAY_MS=3000
wait_for 30 is_holder patch-d
tj patched-job "$NS" | kubectl apply -f - >/dev/null
wait_for 20 grep -q 'test-only admission delay.*"patched-job".*generation.*Some(1)' "$tmp/patch-d.log"
check "a spec patch inside the window is accepted (not yet admitted)" \
  kubectl patch tj patched-job -n "$NS" --type=merge -p '{"spec":{"replicas":2,"queueName":"f-lease-q2"}}'
check "the job is admitted" wait_for 30 bash -c "[ \"\$(kubectl get tj patched-job -n $NS -o jsonpath='{.status.admitted}')\" = true ]"
gen=$(field patched-job '{.metadata.generation}')
admitted_gen=$(field patched-job '{.status.conditions[?(@.type=="Admitted")].observedGeneration}')
echo "    generation $gen; Admitted condition's observedGeneration $admitted_gen; placement GPUs $(field patched-job '{.status.placement.gpus}')"
check "the decision made on the old spec was refused at the write (409) and made again" \
  grep -q 'admission refused.*"patched-job"' "$tmp/patch-d.log"
check "the admission's generation is the current generation" bash -c "[ -n '$gen' ] && [ '$gen' = '$admitted_gen' ]"
check "the placement is for the patched spec (2 replicas x 1 GPU)" bash -c "[ \"\$(kubectl get tj patched-job -n $NS -o jsonpath='{.status.placement.gpus}')\" = 2 ]"
check "the member's Job runs the patched spec (2 replicas)" wait_for 30 bash -c "
  uid=\$(kubectl get tj patched-job -n $NS -o jsonpath='{.metadata.uid}')
  m=\$(kubectl get tj patched-job -n $NS -o jsonpath='{.status.placement.cluster}'); var=\$(echo \"\$m\" | tr 'a-z-' 'A-Z_')_KUBECONFIG
  [ \"\$(kubectl --kubeconfig \"\${!var}\" get jobs -A -l computenet.io/job-uid=\$uid -o jsonpath='{.items[*].spec.parallelism}')\" = 2 ]"
check "the spec is frozen once admitted" bash -c "
  ! kubectl patch tj patched-job -n $NS --type=merge -p '{\"spec\":{\"replicas\":3}}' >/dev/null 2>&1"
check "the refused admission is counted: computenet_admission_conflicts_total of the decided queue" bash -c "
  curl -sf http://127.0.0.1:${PORTS[patch-d]}/metrics | grep -Eq '^computenet_admission_conflicts_total\\{queue=\"f-lease-q\"\\} [1-9]'"
stop patch-d TERM

# --- (c) kill -9 of the leader 5 times during a burst of one-GPU jobs
python3 - "$BURST" "$tmp" "$BURST_NS" <<'PY'
import sys
n, tmp, ns = int(sys.argv[1]), sys.argv[2], sys.argv[3]
for p in range(8):
    with open(f"{tmp}/burst-{p}.yaml", "w") as f:
        for i in range(p, n, 8):
            f.write(f"""---
apiVersion: computenet.io/v1alpha1
kind: TrainingJob
metadata: {{name: burst-{i:04d}, namespace: {ns}, annotations: {{computenet.io/run-seconds: "8"}}}}
spec:
  queueName: f-lease-q
  replicas: 1
  resources: {{cpu: "1", memory: 4Gi, accelerators: {{count: 1}}}}
  workload: {{image: example/train:1.0, command: ["python", "train.py"]}}
  work: {{gpuHours: 0.001}}
""")
PY
gen=1
start "burst-$gen"; start "burst-$((gen + 1))"; gen=$((gen + 2))
restarts=0
keep_two() { # as a Deployment would: a replica that exited (it lost the lease) is replaced
  local n alive=0
  for n in "${!PIDS[@]}"; do
    case $n in burst-*) ;; *) continue ;; esac
    if kill -0 "${PIDS[$n]}" 2>/dev/null; then alive=$((alive + 1)); else wait "${PIDS[$n]}" 2>/dev/null; unset "PIDS[$n]"; fi
  done
  while [ "$alive" -lt 2 ]; do start "burst-$gen"; gen=$((gen + 1)); alive=$((alive + 1)); restarts=$((restarts + 1)); done
}
wait_for 30 bash -c "[ -n \"\$(kubectl get lease $LEASE -n $LEASE_NS -o jsonpath='{.spec.holderIdentity}')\" ]"
wait_for 60 bash -c "[ \"\$(kubectl get mcl ai-1 ai-3 -o jsonpath='{.items[*].status.conditions[?(@.type==\"Ready\")].status}')\" = 'True True' ]"
burst_start=$(now)
creators=()
for p in $(seq 0 7); do kubectl create --validate=false -f "$tmp/burst-$p.yaml" >/dev/null 2>&1 & creators+=($!); done
takeovers=()
for k in 1 2 3 4 5; do
  sleep 3
  keep_two
  victim=$(holder)
  if [ -z "$victim" ] || [ -z "${PIDS[$victim]:-}" ]; then echo "    kill $k: no leader of ours holds the lease (${victim:-none})"; continue; fi
  killed=$(now)
  stop "$victim" KILL
  start "burst-$gen"; gen=$((gen + 1)) # the killed replica comes back as a new standby
  # The time to take over: from the kill to the new leader's first admission.
  new=
  end=$(( $(date +%s) + DURATION * 3 + 20 ))
  while [ "$(date +%s)" -lt "$end" ]; do
    h=$(holder)
    keep_two
    if [ -n "$h" ] && [ "$h" != "$victim" ] && [ -n "${PORTS[$h]:-}" ] && [ "$(admitted_by "$h")" -gt 0 ] 2>/dev/null; then new=$h; break; fi
    sleep 0.1
  done
  if [ -n "$new" ]; then
    t=$(since "$killed"); takeovers+=("$t")
    echo "    kill $k: $victim killed; $new leads and admitted its first job after $t s"
  else
    echo "    kill $k: $victim killed; no new leader admitted within the limit"
  fi
done
wait "${creators[@]}"
check "kill -9 x5: every kill was followed by a new leader's admission" bash -c "[ ${#takeovers[@]} = 5 ]"
echo "    time to take over (kill -9 to first admission, lease duration $DURATION s): ${takeovers[*]:-none} s"
dispatched() { kubectl get tj -n "$BURST_NS" -o jsonpath='{range .items[*]}{.status.dispatchTime}{"\n"}{end}' | grep -c .; }
end=$(( $(date +%s) + 240 ))
while [ "$(dispatched)" != "$BURST" ] && [ "$(date +%s)" -lt "$end" ]; do keep_two; sleep 1; done
check "every one of the $BURST jobs is dispatched" [ "$(dispatched)" = "$BURST" ]
echo "    replicas that exited by themselves (lost the lease) and were replaced: $restarts"
echo "    burst dispatched in $(since "$burst_start") s"
sleep 2
kubectl get tj -n "$BURST_NS" -o json > "$tmp/hub.json"
member_jobs "$BURST_NS" > "$tmp/members.txt"
python3 - "$tmp/hub.json" "$tmp/members.txt" "$BURST" > "$tmp/count.txt" <<'PY'
import collections, json, sys
items = json.load(open(sys.argv[1]))["items"]
want = int(sys.argv[3])
placed = {j["metadata"]["uid"]: (j.get("status") or {}).get("placement", {}).get("cluster") for j in items}
jobs = collections.Counter()
where = collections.defaultdict(set)
for line in open(sys.argv[2]):
    member, _, uid = line.strip().partition(" ")
    if uid:
        jobs[uid] += 1
        where[uid].add(member)
lost = [u for u in placed if jobs[u] == 0]
dup = [u for u, c in jobs.items() if c > 1]
stray = [u for u in jobs if u not in placed]
misplaced = [u for u in placed if jobs[u] and where[u] != {placed[u]}]
per_member = collections.Counter(m for ms in where.values() for m in ms)
print(f"hub jobs {len(placed)}; member Jobs {sum(jobs.values())} ({dict(per_member)}); "
      f"lost {len(lost)}, duplicated {len(dup)}, stray {len(stray)}, misplaced {len(misplaced)}")
sys.exit(0 if len(placed) == want and not (lost or dup or stray or misplaced) else 1)
PY
counted=$?
sed 's/^/    /' "$tmp/count.txt"
check "0 lost, 0 duplicated: each job's UID has exactly one Job over all members, on its placement" [ "$counted" = 0 ]
echo "    wall time of the group so far: $(( $(date +%s) - t0 )) s"
summary
