#!/usr/bin/env bash
# Metering, budgets and fair share with memory, on real members:
# - jobs of two tenants run on two members, one Kubernetes (ai-1, its power measured by
#   the test bed's Prometheus) and one Slurm (through slurmrestd); each attempt is recorded
#   once in the usage store (ComputeUsage) with the job's member, accelerator type, GPUs and
#   times, its energy marked Measured or Estimated; the recorded wall time is the job's
#   (admission to the end the service saw) and exceeds what the member ran by at most one
#   polling interval of that member plus the dispatch;
# - `kubectl computenet usage` totals equal the Prometheus counters
#   computenet_usage_{gpu_seconds,energy_kwh,cost}_total;
# - a queue whose budget (GPU-hours per period of some seconds) is spent admits nothing new,
#   with the reason BudgetExhausted (in the job's condition and the queue's status), and
#   admits again in the next period;
# - a queue with heavy past usage yields to a fresh one: two equal jobs wait for the same
#   capacity, the heavy user's submitted first, and the fresh queue's is admitted first;
# - a tenant that strips its running job's finalizer and deletes it is billed all the same;
# - a spent budget on the cohort above the queues holds them all, naming the cohort.
#
# Needs the test bed with Slurm and Prometheus (tests/testbed/up.sh --members 3 --gpu-nodes 8
# --no-taint) and cargo build -p computenet -p kubectl-computenet. About 4 minutes.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
use_testbed
export SLURM_CONF
[ -n "${SLURMRESTD_URL:-}" ] || { echo "the test bed runs without Slurm (up.sh --no-slurm?)" >&2; exit 1; }
[ -n "${PROMETHEUS_URL:-}" ] || { echo "the test bed runs without Prometheus (up.sh --no-prometheus?)" >&2; exit 1; }
PLUGIN_BIN=${PLUGIN_BIN:-$root/target/debug/kubectl-computenet}
[ -x "$PLUGIN_BIN" ] || { echo "plugin not found at $PLUGIN_BIN (cargo build -p kubectl-computenet)" >&2; exit 1; }
tmp=$(mktemp -d)
mkdir -p "$tmp/bin" && ln -s "$PLUGIN_BIN" "$tmp/bin/kubectl-computenet"
export PATH="$tmp/bin:$PATH"
# Clear of the job-kind controllers' ports (tests/testbed/jobkinds/lib.sh: 18400-18482).
PORT=${METERING_PORT:-18510}
EXPORTER_PORT=${METERING_EXPORTER_PORT:-19410}
need_free_ports "METERING_PORT / METERING_EXPORTER_PORT" "$PORT" "$EXPORTER_PORT" || exit 1
NSS=(mt-a mt-b mt-c mt-x)
QUEUES=(mt-a-q mt-b-q mt-c-q mt-x-q)
SERVE_PID='' EXPORTER_PID=''

cleanup() {
  for ns in "${NSS[@]}"; do kubectl delete tj --all -n "$ns" --timeout=30s >/dev/null 2>&1; done
  [ -n "$SERVE_PID" ] && { kill "$SERVE_PID" 2>/dev/null; wait "$SERVE_PID" 2>/dev/null; }
  [ -n "$EXPORTER_PID" ] && { kill "$EXPORTER_PID" 2>/dev/null; wait "$EXPORTER_PID" 2>/dev/null; }
  echo '[]' > "$PROMETHEUS_TARGETS_FILE"
  for ns in "${NSS[@]}"; do
    kubectl get tj -n "$ns" -o name 2>/dev/null | xargs -r kubectl patch -n "$ns" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
    kubectl delete ns "$ns" --wait=false >/dev/null 2>&1
  done
  kubectl delete cnq "${QUEUES[@]}" --ignore-not-found >/dev/null 2>&1
  kubectl delete mcl mt-ai mt-sl --ignore-not-found >/dev/null 2>&1
  kubectl delete cnc mt-org --ignore-not-found >/dev/null 2>&1
  for q in "${QUEUES[@]}"; do
    kubectl get cnu -o name 2>/dev/null | grep "/$q\." | xargs -r kubectl delete >/dev/null 2>&1
  done
  for id in $(squeue -h -o '%i %k' 2>/dev/null | awk '/mt-b/{print $1}'); do scancel "$id" 2>/dev/null; done
  if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# A DCGM-style exporter: 2,000 W over ai-1's GPUs at 50 % utilisation (the catalogue
# predicts more at that load: a power scale below 1, so measured energy differs from the
# estimate).
cat > "$tmp/metrics" <<EOT
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
DCGM_FI_DEV_POWER_USAGE{cluster="mt-ai",gpu="0"} 12000
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{cluster="mt-ai",gpu="0"} 50
# TYPE facility_pue gauge
facility_pue{site="mt-west"} 1.2
EOT
metrics_exporter "$tmp/metrics" "$EXPORTER_PORT" "$tmp/exporter.log"
echo "[{\"targets\": [\"127.0.0.1:$EXPORTER_PORT\"], \"labels\": {\"job\": \"mt-exporter\"}}]" > "$PROMETHEUS_TARGETS_FILE"

kubectl apply --server-side --force-conflicts -f "$root/deploy/crds/" >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=30s >/dev/null
for ns in "${NSS[@]}"; do
  wait_for 90 bash -c "! kubectl get ns $ns >/dev/null 2>&1" || { echo "namespace $ns still terminating" >&2; exit 1; }
done
{
  for t in a b c x; do
    tenant_queue "mt-$t" "mt-$t" "mt-$t-q" 64
    echo "  cohort: mt-org"
    echo "---"
  done
  cat <<EOT
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: mt-ai}
spec:
  kind: AI
  site: mt-west
  kubernetes: {kubeconfigSecretRef: {name: ai-1-kubeconfig, namespace: computenet-system, key: kubeconfig}, namespace: computenet-jobs}
  efficiency: {pue: 1.3, energyPricePerKWh: 0.8}
  prometheus: {url: "$PROMETHEUS_URL", insecureHTTP: true, intervalSeconds: 1}
---
EOT
  slurm_member mt-sl mt-hpc
  echo "  efficiency: {pue: 1.5, energyPricePerKWh: 0.6}"
} | kubectl apply -f - >/dev/null

# Usage rows of 60 s so that a budget period of a few minutes is seen at bucket resolution; records
# flushed every 2 s; past usage halves every hour.
setsid "$BIN" serve --kubeconfig "$HUB_KUBECONFIG" --no-leader-election --interval-ms 500 \
  --listen "127.0.0.1:$PORT" --web-auth none --usage-bucket-s 60 --usage-flush-interval-s 2 \
  --fair-share-half-life-h 1 > "$tmp/serve.log" 2>&1 &
SERVE_PID=$!
check "the service is ready" wait_for 60 curl -sf "http://127.0.0.1:$PORT/readyz"
ready() { is "$(kubectl get mcl "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" True; }
check "both members are Ready" wait_show 90 bash -c "$(declare -f is ready); ready mt-ai && ready mt-sl"
check "ai-1's power is measured (a power scale in its status)" wait_show 60 bash -c "
  [ -n \"\$(kubectl get mcl mt-ai -o jsonpath='{.status.measured.powerScale}')\" ]"

# tj NS NAME REPLICAS TYPE RUN_SECONDS [SITE]: a job of REPLICAS x 8 GPUs of TYPE that runs
# RUN_SECONDS (KWOK pods by annotation, Slurm by its command).
tj() {
  cat <<EOT
apiVersion: computenet.io/v1alpha1
kind: TrainingJob
metadata: {name: $2, namespace: $1, annotations: {computenet.io/run-seconds: "$5"}}
spec:
  queueName: $1-q
  replicas: $3
  resources: {cpu: "2", memory: 1Gi, accelerators: {count: 8, types: [$4]}}
  workload: {image: example/train:1.0, command: ["sleep", "$5"]}
  work: {gpuHours: 1}
  placement: {sites: [${6:-mt-west}]}
  maxRunSeconds: 900
EOT
}
field() { kubectl get tj "$2" -n "$1" -o jsonpath="$3" 2>/dev/null; }
phase_is() { is "$(field "$1" "$2" '{.status.phase}')" "$3"; }
declare -f is field phase_is > "$tmp/fns.sh"
wait_phase() { wait_show "$4" bash -c ". $tmp/fns.sh; phase_is $1 $2 $3"; }

# --- Two tenants, two members: A on ai-1 (measured power), B on Slurm.
tj mt-a a1 1 A100-80G 20 | kubectl apply -f - >/dev/null
tj mt-b b1 1 H800 12 mt-hpc | kubectl apply -f - >/dev/null
check "A's job runs to Succeeded on ai-1" wait_phase mt-a a1 Succeeded 120
check "B's job runs to Succeeded on Slurm" wait_phase mt-b b1 Succeeded 120
check "both jobs' attempts are recorded (status.meteredThrough)" wait_show 30 bash -c "
  . $tmp/fns.sh; is \"\$(field mt-a a1 '{.status.meteredThrough}') \$(field mt-b b1 '{.status.meteredThrough}')\" '1 1'"

# record NS NAME: the job's usage record as JSON (from every ComputeUsage of its queue).
record() {
  kubectl get cnu -o json | python3 -c '
import json, sys
ns, name = sys.argv[1], sys.argv[2]
found = [r for o in json.load(sys.stdin)["items"] for r in o["spec"].get("records", []) if r["namespace"] == ns and r["job"] == name]
print(json.dumps(found))' "$1" "$2"
}
record mt-a a1 > "$tmp/a1.json"
record mt-b b1 > "$tmp/b1.json"
kubectl get tj a1 -n mt-a -o json > "$tmp/a1-tj.json"
kubectl get tj b1 -n mt-b -o json > "$tmp/b1-tj.json"
kubectl get mcl mt-ai -o json > "$tmp/mt-ai.json"
# same_as_job RECORD TJ MEMBER TYPE SOURCE: one record, matching the job's placement and times.
same_as_job() {
  python3 - "$@" <<'PYEOF'
import json, sys
records, tj = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
member, accel, source = sys.argv[3:6]
assert len(records) == 1, f"{len(records)} records, expected exactly one"
r, s = records[0], tj["status"]
p = s["placement"]
want = {"member": p["cluster"], "accelerator": p.get("accelerator"), "gpus": p["gpus"], "attempt": s["attempt"],
        "start": s["startTime"], "end": s["completionTime"], "energySource": source, "uid": tj["metadata"]["uid"]}
got = {k: r.get(k) for k in want}
assert got == want, f"record {got} != job {want}"
assert (p["cluster"], p.get("accelerator")) == (member, accel), f"placed on {p['cluster']} {p.get('accelerator')}"
assert abs(r["gpuSeconds"] - 8 * (__import__("datetime").datetime.fromisoformat(s["completionTime"].replace("Z", "+00:00")) -
       __import__("datetime").datetime.fromisoformat(s["startTime"].replace("Z", "+00:00"))).total_seconds()) < 1e-6, r
print(f"    {tj['metadata']['name']}: {r['member']} {r['accelerator']} x{r['gpus']}, {r['start']} .. {r['end']}, "
      f"{r['gpuSeconds']:.0f} GPU-s, {r['energyKWh']:.5f} kWh ({r['energySource']}), cost {r['cost']:.5f}")
PYEOF
}
check "A's record matches its job: ai-1, A100-80G x8, its times, energy Measured" \
  same_as_job "$tmp/a1.json" "$tmp/a1-tj.json" mt-ai A100-80G Measured
check "B's record matches its job: Slurm, H800 x8, its times, energy Estimated" \
  same_as_job "$tmp/b1.json" "$tmp/b1-tj.json" mt-sl H800 Estimated
check "A's measured energy is the catalogue's board power x the measured power scale x PUE" python3 - "$tmp/a1.json" "$tmp/mt-ai.json" <<'PYEOF'
import json, sys
r, m = json.load(open(sys.argv[1]))[0], json.load(open(sys.argv[2]))
scale, pue = float(m["status"]["measured"]["powerScale"]), float(m["status"]["measured"]["pue"])
board = 400.0  # the built-in catalogue's A100-80G board power, W
want = r["gpuSeconds"] * board * scale * pue / 3.6e6
assert abs(r["energyKWh"] - want) <= 0.002 * want, f"{r['energyKWh']} kWh, expected {want} (scale {scale}, PUE {pue}, {board} W)"
assert r["measuredEnergyKWh"] == r["energyKWh"]
PYEOF

# What the members ran: the KWOK pod's start and finish, Slurm's own start and end.
member_seconds_kwok() {
  kubectl --kubeconfig "$AI_1_KUBECONFIG" get pods -A -l "computenet.io/job-uid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["metadata"]["uid"])' "$tmp/a1-tj.json")" -o json |
    python3 -c '
import json, sys, datetime
t = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
pods = json.load(sys.stdin)["items"]
runs = [(t(p["status"]["startTime"]), t(c["state"]["terminated"]["finishedAt"])) for p in pods for c in p["status"]["containerStatuses"] if "terminated" in c["state"]]
print(max(e for _, e in runs) - min(s for s, _ in runs))'
}
member_seconds_slurm() {
  local id; id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["status"]["remote"]["name"])' "$tmp/b1-tj.json")
  sacct -n -X -P -j "$id" -o Start,End 2>/dev/null | head -1 | python3 -c '
import sys, datetime
s, e = sys.stdin.read().strip().split("|")
print((datetime.datetime.fromisoformat(e) - datetime.datetime.fromisoformat(s)).total_seconds())' 2>/dev/null ||
  scontrol show job "$id" 2>/dev/null | python3 -c '
import re, sys, datetime
text = sys.stdin.read()
s, e = (datetime.datetime.fromisoformat(re.search(k + r"=(\S+)", text).group(1)) for k in ("StartTime", "EndTime"))
print((e - s).total_seconds())'
}
# within RECORD MEMBER_SECONDS POLL_S: the record covers what the member ran, and exceeds it
# by at most one polling interval of the member plus 3 s for admission, dispatch and start.
within() {
  python3 - "$1" "$2" "$3" <<'PYEOF'
import json, sys, datetime
r = json.load(open(sys.argv[1]))[0]
t = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
recorded, ran, poll = t(r["end"]) - t(r["start"]), float(sys.argv[2]), float(sys.argv[3])
print(f"    recorded {recorded:.0f} s, the member ran {ran:.1f} s (polling every {poll:.0f} s)")
assert ran - 1 <= recorded <= ran + poll + 3, (recorded, ran, poll)
PYEOF
}
kwok_s=$(member_seconds_kwok 2>/dev/null || echo nan)
slurm_s=$(member_seconds_slurm 2>/dev/null || echo nan)
check "A's recorded time is the pod's run within one polling interval (watch: 1 s)" within "$tmp/a1.json" "$kwok_s" 1
check "B's recorded time is the batch job's run within one polling interval (2 s)" within "$tmp/b1.json" "$slurm_s" 2

# --- Exactly once: the state a crash between the store write and the watermark leaves
# (the attempt's key in the store, the job not marked) is recorded again as nothing.
gpu_rows() { kubectl get cnu -o json | python3 -c '
import json, sys
print(round(sum(r.get("gpuSeconds", 0) for o in json.load(sys.stdin)["items"] if o["spec"]["queue"] == sys.argv[1] for r in o["spec"].get("rows", [])), 6))' "$1"; }
before=$(gpu_rows mt-a-q)
kubectl patch tj a1 -n mt-a --subresource=status --type=merge -p '{"status":{"meteredThrough":0}}' >/dev/null
check "a job whose watermark fell behind its recorded attempt is marked again" wait_show 30 bash -c "
  . $tmp/fns.sh; is \"\$(field mt-a a1 '{.status.meteredThrough}')\" 1"
recorded_once() { # recorded_once NS NAME QUEUE ROWS_BEFORE
  is "$(record "$1" "$2" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" 1 && is "$(gpu_rows "$3")" "$4"
}
check "and its attempt is still recorded once, the rows unchanged" recorded_once mt-a a1 mt-a-q "$before"

# period_for NEED_GPU_S MARGIN_S QUEUE...: the shortest budget period (whole seconds, fixed
# windows counted from the epoch, as the service counts them) whose window holding now has
# at least NEED_GPU_S of the queues' recorded GPU-seconds and ends at least MARGIN_S from now.
# Budget windows are aligned to the clock, so a fixed period would make the checks below
# depend on when the test runs; a period chosen from the recorded rows does not.
period_for() {
  kubectl get cnu -o json | python3 -c '
import json, sys, time
need, margin, queues = float(sys.argv[1]), int(sys.argv[2]), set(sys.argv[3:])
rows = [(r["start"], r.get("gpuSeconds", 0.0)) for o in json.load(sys.stdin)["items"]
        if o["spec"]["queue"] in queues for r in o["spec"].get("rows", [])]
now = int(time.time())
for p in range(margin + 1, 1800):
    start = now - now % p
    if start + p - now >= margin and sum(g for s, g in rows if start <= s < start + p) >= need:
        print(p, start + p - now)
        sys.exit(0)
sys.exit("no period between %d and 1800 s holds %s GPU-s of %s" % (margin + 1, need, sorted(queues)))' "$@"
}

# --- Budget: B spent 8 GPUs x 12 s = 96 GPU-s; its budget of 0.02 GPU-hours (72 GPU-s) per
# period is applied now, with a period whose current window holds B's spending and lasts
# at least 90 s more, time enough for the checks.
read -r budget_period budget_left < <(period_for 72 90 mt-b-q) || { echo "no budget period fits" >&2; exit 1; }
echo "  (B's budget period: ${budget_period} s, ${budget_left} s left in this one)"
kubectl patch cnq mt-b-q --type=merge -p "{\"spec\":{\"budget\":{\"periodSeconds\":$budget_period,\"gpuHours\":0.02}}}" >/dev/null
# The queue's status shows the budget once the service counts it; only then is B's next job
# submitted (before that it may be admitted, the budget not yet seen).
check "B's queue shows its budget exhausted (status and kubectl get cnq)" wait_show 20 bash -c "
  . $tmp/fns.sh
  is \"\$(kubectl get cnq mt-b-q -o jsonpath='{.status.budget.exhausted}')\" true &&
  kubectl get cnq mt-b-q | grep -q 'GPU-h (exhausted)'"
tj mt-b b2 1 H800 5 mt-hpc | kubectl apply -f - >/dev/null
check "B's next job waits with the reason BudgetExhausted" wait_show 30 bash -c "
  . $tmp/fns.sh
  is \"\$(field mt-b b2 '{.status.conditions[?(@.type==\"Admitted\")].reason}')\" BudgetExhausted &&
  is \"\$(field mt-b b2 '{.status.phase}')\" Queued"
check "A's queue is not held by B's budget" bash -c "[ -z \"\$(kubectl get cnq mt-a-q -o jsonpath='{.status.budget}')\" ]"
check "in the next period B's job is admitted and runs" wait_phase mt-b b2 Succeeded $((budget_left + 90))

# --- A heavy past user yields to a fresh queue. X's blocker takes ai-1's four A100-80G
# nodes; A (who ran a1) submits, then C (who ran nothing); both need all four nodes.
tj mt-x blocker 4 A100-80G 15 | kubectl apply -f - >/dev/null
check "the blocker runs" wait_phase mt-x blocker Running 60
tj mt-a heavy 4 A100-80G 5 | kubectl apply -f - >/dev/null
sleep 1
tj mt-c fresh 4 A100-80G 5 | kubectl apply -f - >/dev/null
check "A's queue carries a past share, C's none" wait_show 20 bash -c "
  python3 -c 'import sys; a, c = float(sys.argv[1] or 0), float(sys.argv[2] or 0); sys.exit(0 if a > 0 and c == 0 else 1)' \
    \"\$(kubectl get cnq mt-a-q -o jsonpath='{.status.pastShare}')\" \"\$(kubectl get cnq mt-c-q -o jsonpath='{.status.pastShare}')\""
check "C's job is admitted first when the capacity frees" wait_show 90 bash -c "
  . $tmp/fns.sh; is \"\$(field mt-c fresh '{.status.admitted}')\" true"
check "A's job, submitted earlier, still waits then" bash -c ". $tmp/fns.sh; [ \"\$(field mt-a heavy '{.status.admitted}')\" != true ]"
check "A's job runs after C's" wait_phase mt-a heavy Succeeded 120

# --- A tenant that strips the finalizer and deletes its running job is still billed.
tj mt-x evader 1 A100-80G 300 | kubectl apply -f - >/dev/null
check "the evader runs" wait_phase mt-x evader Running 60
sleep 3
evader_uid=$(field mt-x evader '{.metadata.uid}')
kubectl patch tj evader -n mt-x --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null
kubectl delete tj evader -n mt-x --wait=false >/dev/null
evader_recorded() {
  record mt-x evader | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert len(r) == 1 and r[0]["reason"] == "Deleted" and r[0]["gpuSeconds"] >= 8 * 3, r'
}
check "its attempt is recorded anyway, ended when it was deleted" wait_show 30 evader_recorded
# Its member Job has no TrainingJob left to stop it: the orphan sweep deletes it (once it
# is 30 s old), so a stripped finalizer leaves nothing running on the member.
check "its member Job is deleted as an orphan, and its pod with it" wait_show 90 bash -c "
  [ -n '$evader_uid' ] && [ -z \"\$(KUBECONFIG=$AI_1_KUBECONFIG kubectl get jobs,pods -A -l computenet.io/job-uid=$evader_uid -o name)\" ]"

# --- The plugin's totals equal the Prometheus counters.
check "every attempt is recorded" wait_show 30 bash -c "
  . $tmp/fns.sh; for j in 'mt-a heavy' 'mt-c fresh' 'mt-x blocker' 'mt-b b2'; do
    set -- \$j; [ -n \"\$(field \$1 \$2 '{.status.meteredThrough}')\" ] || exit 1; done"
# totals_match: the plugin's sums equal the counters (read again each time: the service
# sums the store for its counters every few seconds).
totals_match() {
  curl -sf "http://127.0.0.1:$PORT/metrics" > "$tmp/metrics.txt" &&
  kubectl computenet usage --by queue --since 1d -o json > "$tmp/usage.json" &&
  python3 - "$tmp/usage.json" "$tmp/metrics.txt" "${QUEUES[@]}" <<'PYEOF'
import json, re, sys
usage, metrics, queues = json.load(open(sys.argv[1])), open(sys.argv[2]).read(), sys.argv[3:]
def counter(name, queue):
    total = 0.0
    for m in re.finditer(r'^%s\{([^}]*)\} (\S+)$' % name, metrics, re.M):
        if f'queue="{queue}"' in m.group(1):
            total += float(m.group(2))
    return total
groups = {g["queue"]: g for g in usage["groups"]}
for q in queues:
    g = groups.get(q)
    assert g is not None, f"no usage for {q} in {list(groups)}"
    pairs = [(g["gpuHours"] * 3600, counter("computenet_usage_gpu_seconds_total", q), "GPU-seconds"),
             (g["energyKWh"], counter("computenet_usage_energy_kwh_total", q), "kWh"),
             (g["cost"], counter("computenet_usage_cost_total", q), "cost")]
    for cli, prom, what in pairs:
        assert prom > 0 and abs(cli - prom) <= 1e-6 * max(1.0, prom), f"{q} {what}: plugin {cli}, counter {prom}"
    print(f"    {q}: {g['gpuHours'] * 3600:.0f} GPU-s, {g['energyKWh']:.5f} kWh, cost {g['cost']:.5f} in both")
PYEOF
}
check "kubectl computenet usage totals equal computenet_usage_*_total, queue by queue" wait_show 30 totals_match
check "the plugin's CSV has a header and a TOTAL row" bash -c "
  kubectl computenet usage --by queue,namespace --since 1d -o csv > $tmp/usage.csv &&
  head -1 $tmp/usage.csv | grep -qi 'queue,namespace' && grep -q '^TOTAL' $tmp/usage.csv"

# --- A cohort's budget holds every queue under it. The organisation's cohort gets a budget
# its queues have spent already; C's next job waits, and the reason names the cohort.
# Its period is chosen like B's, so that the window holding now holds the queues' spending.
read -r cohort_period _ < <(period_for 3.6 90 "${QUEUES[@]}") || { echo "no cohort budget period fits" >&2; exit 1; }
kubectl apply -f - >/dev/null <<EOT
apiVersion: computenet.io/v1alpha1
kind: ComputeCohort
metadata: {name: mt-org}
spec:
  budget: {periodSeconds: $cohort_period, gpuHours: 0.001}
EOT
cohort_held() {
  is "$(field mt-c c2 '{.status.conditions[?(@.type=="Admitted")].reason}')" BudgetExhausted &&
  field mt-c c2 '{.status.conditions[?(@.type=="Admitted")].message}' | grep -q 'cohort mt-org'
}
check "the cohort shows its budget exhausted (status and kubectl get cnc)" wait_show 20 bash -c "
  [ \"\$(kubectl get cnc mt-org -o jsonpath='{.status.budget.exhausted}')\" = true ] &&
  kubectl get cnc mt-org | grep -q '(exhausted)'"
tj mt-c c2 1 A100-80G 5 | kubectl apply -f - >/dev/null
check "under a spent cohort budget a job waits with BudgetExhausted naming the cohort" wait_show 30 cohort_held
kubectl delete cnc mt-org >/dev/null
check "without the cohort's budget it runs" wait_phase mt-c c2 Succeeded 60

summary
