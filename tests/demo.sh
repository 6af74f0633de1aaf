#!/usr/bin/env bash
# Try the service locally: builds computenet, brings up the test bed (hub, two AI and one
# general-purpose Kubernetes member, Slurm, Prometheus), starts `computenet serve` against
# it, registers the members and the queues, submits the sample TrainingJobs of seeds/jobs/,
# waits until they run, and prints where they run and how to look further.
#
#   tests/demo.sh                  start it (stops a test bed already up first)
#   tests/demo.sh --down           stop it all (computenet serve and the test bed)
#   tests/demo.sh --run-seconds N  how long the sample jobs' pods run (default 3600)
#
# The test bed's Kubernetes nodes are KWOK fakes: pods are Running without running
# anything, for N seconds (the test bed's computenet.io/run-seconds annotation, added to the
# sample jobs as they are submitted; their spec is unchanged).
# Environment: COMPUTENET_BIN (a computenet binary to use instead of building one with
# `cargo build --release`), COMPUTENET_DEMO_PORT (dashboard and metrics port, default
# 18080), COMPUTENET_DEMO_TIMEOUT (seconds each step may take, default 60). Slurm needs
# root: without it the test bed runs without Slurm.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
here=$PWD
cd "$root"
# shellcheck source=testbed/lib.sh
. "$root/tests/testbed/lib.sh"   # RUN, PIDS, LOGS, now_ms, fmt_ms, pidfile_pid
# shellcheck source=e2e/lib.sh
. "$root/tests/e2e/lib.sh"       # use_testbed

PORT=${COMPUTENET_DEMO_PORT:-18080}
TIMEOUT=${COMPUTENET_DEMO_TIMEOUT:-60}
RUN_SECONDS=3600
usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }
down=0
while [ $# -gt 0 ]; do
  case $1 in
    --down) down=1; shift ;;
    --run-seconds) RUN_SECONDS=${2:-}; shift 2 ;;
    --run-seconds=*) RUN_SECONDS=${1#*=}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "demo.sh: unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $RUN_SECONDS =~ ^[0-9]+$ ]] || { echo "demo.sh: --run-seconds must be a number" >&2; exit 2; }

if [ "$down" = 1 ]; then
  # down.sh stops computenet serve (its pid file is with the test bed's) and the test bed.
  exec "$TB/down.sh"
fi

SERVE_LOG=$LOGS/computenet-serve.log
T0=$(now_ms)
el() { fmt_ms $(( $(now_ms) - T0 )); }
log() { printf '[%5ss] %s\n' "$(el)" "$*"; }
fail() { # what logfile
  echo "demo.sh: FAILED: $1" >&2
  if [ -n "${2:-}" ] && [ -e "$2" ]; then
    echo "---- last lines of $2" >&2; tail -n 20 "$2" >&2; echo "----" >&2
  fi
  [ -e "$RUN" ] && echo "demo.sh: stop what is up with: tests/demo.sh --down" >&2
  exit 1
}
# wait_until TIMEOUT CMD...: polls CMD every 0.5 s until it succeeds (then 0) or TIMEOUT
# seconds pass (then 1); once computenet serve runs, fails at once if it exits.
wait_until() {
  local end=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    if [ -e "$PIDS/computenet.pid" ] && ! pidfile_pid "$PIDS/computenet.pid" >/dev/null; then
      fail "computenet serve exited" "$SERVE_LOG"
    fi
    [ "$(date +%s)" -ge "$end" ] && return 1
    sleep 0.5
  done
}

# ---- the binary
if [ -n "${COMPUTENET_BIN:-}" ]; then
  [ -x "$COMPUTENET_BIN" ] || fail "COMPUTENET_BIN=$COMPUTENET_BIN is not an executable"
else
  command -v cargo >/dev/null 2>&1 || { [ -x "$HOME/.cargo/bin/cargo" ] && PATH=$HOME/.cargo/bin:$PATH; }
  command -v cargo >/dev/null 2>&1 || fail "cargo not found: install a Rust toolchain >= 1.85 (rustup)"
  # The release build: the one the README's first command (cargo run --release) has made.
  log "building computenet (cargo build --release -p computenet)"
  cargo build --release --locked -p computenet || fail "cargo build --release -p computenet"
  target=${CARGO_TARGET_DIR:-target}
  case $target in /*) ;; *) target=$root/$target ;; esac
  export COMPUTENET_BIN=$target/release/computenet
fi
T_BUILT=$(now_ms)

# ---- the test bed: ai-1 and ai-3 (4 A100-80G + 4 H800 nodes of 8 GPUs each), general-2
# (8 CPU nodes of 32 cores: the 8 x 32-core tokenize-city-corpus gang needs all of them),
# Slurm (4 nodes of 8 GPUs), Prometheus. KWOK nodes untainted: the pods carry no toleration.
up_args=(--members 3 --gpu-nodes 8 --cpu-nodes 8 --no-taint)
if [ "$(id -u)" -ne 0 ]; then
  up_args+=(--no-slurm)
  log "not root: the test bed runs without Slurm"
fi
if [ -e "$RUN" ]; then
  log "a test bed is up: stopping it first"
  "$TB/down.sh" >/dev/null || fail "tests/testbed/down.sh"
fi
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null &&
  fail "port 127.0.0.1:$PORT is in use (set COMPUTENET_DEMO_PORT to another port)"
bin=$("$TB/build.sh" --print-bin)
first=""
[ -x "$bin/kube-apiserver" ] && [ -x "$bin/kwok" ] ||
  first="; first use: installs packages and builds the control plane, about 5 minutes on 2 cores"
log "starting the test bed (tests/testbed/up.sh ${up_args[*]}$first)"
up_log=$(mktemp)
if ! "$TB/up.sh" "${up_args[@]}" >"$up_log" 2>&1; then
  cat "$up_log" >&2; rm -f "$up_log"
  fail "tests/testbed/up.sh (its output is above; component logs are in $LOGS)"
fi
mv "$up_log" "$LOGS/up.log"
use_testbed   # the test bed's env, KUBECONFIG=$HUB_KUBECONFIG, BIN=$COMPUTENET_BIN
log "test bed up: hub, members $MEMBER_NAMES${PROMETHEUS_URL:+, Prometheus} ($(grep -o 'ready in [0-9.]* s' "$LOGS/up.log" || echo "log: $LOGS/up.log"))"
T_BED=$(now_ms)

# ---- the service's objects on the hub: CRDs, members, tenant namespaces, queues
kubectl apply -f deploy/crds/ >/dev/null || fail "kubectl apply -f deploy/crds/"
kubectl wait --for=condition=Established crd --all --timeout="${TIMEOUT}s" >/dev/null ||
  fail "the CRDs are not Established after ${TIMEOUT}s"
{
  k8s_member() { # name kind site pue price carbon [data set]
    cat <<EOT
---
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: $1}
spec:
  kind: $2
  site: $3
  kubernetes: {kubeconfigSecretRef: {name: $1-kubeconfig, namespace: computenet-system, key: kubeconfig}, namespace: computenet-jobs}
  efficiency: {pue: $4, energyPricePerKWh: $5, carbonGPerKWh: $6}
  dataSets: [${7:-}]
EOT
  }
  k8s_member ai-1 AI west 1.25 0.62 540 city-public-data
  k8s_member general-2 General west 1.3 0.62 540 city-public-data
  k8s_member ai-3 AI east 1.4 0.75 580
  if [ -n "${SLURMRESTD_URL:-}" ]; then
    cat <<EOT
---
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: slurm}
spec:
  kind: HPC
  site: north
  slurm:
    endpoint: $SLURMRESTD_URL
    insecureHTTP: true # the test bed's slurmrestd speaks plain http
    apiVersion: $SLURM_API_VERSION
    userName: $SLURM_USER_NAME
    tokenSecretRef: {name: slurm-token, namespace: computenet-system, key: token}
    workingDirectory: $SLURM_JOB_DIR
    standardOutput: "%x-%j.out"
  efficiency: {pue: 1.15, energyPricePerKWh: 0.55, carbonGPerKWh: 520}
  dataSets: [city-public-data]
EOT
  fi
  # team-a -> queue research (deploy/examples), team-b -> queue students; one cohort.
  for f in deploy/examples/tenant-namespace.yaml deploy/examples/queue.yaml; do echo ---; cat "$f"; done
  cat <<EOT
---
apiVersion: v1
kind: Namespace
metadata:
  name: team-b
  labels: {computenet.io/tenant: students}
---
apiVersion: computenet.io/v1alpha1
kind: ComputeQueue
metadata: {name: students}
spec:
  namespaceSelector:
    matchLabels: {computenet.io/tenant: students}
  cohort: city
  quotas:
    - {resource: nvidia.com/gpu, nominal: 16, borrowingLimit: 16}
EOT
} > "$RUN/demo-objects.yaml"
kubectl apply -f "$RUN/demo-objects.yaml" >/dev/null || fail "kubectl apply -f $RUN/demo-objects.yaml"
log "registered members $(kubectl get mcl -o jsonpath='{.items[*].metadata.name}'), queues $(kubectl get cnq -o jsonpath='{.items[*].metadata.name}')"
# Measured throughput: Sia's bert step times (A100-40G, data/) as the service's profiles,
# so bert-large is placed by a measured estimate rather than the peak-TFLOPS fallback.
kubectl create configmap computenet-profiles -n computenet-system \
  --from-file=sia.bert.placements-dgx-ext.csv=data/sia/traces/bert/placements-dgx-ext.csv \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null || fail "creating the computenet-profiles ConfigMap"
log "throughput profiles: bert (Sia's measured step times) in ConfigMap computenet-system/computenet-profiles"

# ---- computenet serve, in the background; its pid file is with the test bed's, so
# down.sh stops it too.
# A local demo: the dashboard without a token, which only a loopback address allows.
setsid "$BIN" serve --kubeconfig "$HUB_KUBECONFIG" --no-leader-election --listen "127.0.0.1:$PORT" --web-auth none \
  </dev/null >"$SERVE_LOG" 2>&1 &
echo $! > "$PIDS/computenet.pid"
wait_until "$TIMEOUT" curl -sf -m 2 "http://127.0.0.1:$PORT/readyz" ||
  fail "computenet serve is not ready (http://127.0.0.1:$PORT/readyz) after ${TIMEOUT}s" "$SERVE_LOG"
log "computenet serve ready (pid $(cat "$PIDS/computenet.pid"), dashboard http://127.0.0.1:$PORT/)"
# Prometheus scrapes the service's metrics.
if [ -n "${PROMETHEUS_TARGETS_FILE:-}" ]; then
  echo "[{\"targets\": [\"127.0.0.1:$PORT\"], \"labels\": {\"job\": \"computenet\"}}]" > "$PROMETHEUS_TARGETS_FILE"
fi

not_ready_members() {
  kubectl get mcl -o jsonpath='{range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
    awk '$2 != "True" {print $1}'
}
members_ready() { kubectl get mcl >/dev/null && [ -z "$(not_ready_members)" ]; }
wait_until "$TIMEOUT" members_ready ||
  fail "members not Ready after ${TIMEOUT}s: $(not_ready_members | paste -sd' ')" "$SERVE_LOG"
log "members Ready"

# ---- the sample jobs, as they are, plus the test bed's run-time annotation
kubectl annotate --local -f seeds/jobs/ -o yaml "computenet.io/run-seconds=$RUN_SECONDS" |
  kubectl apply -f - >/dev/null || fail "kubectl apply of seeds/jobs/"
log "submitted $(find seeds/jobs -name '*.yaml' | wc -l) TrainingJobs from seeds/jobs/"
not_running() {
  kubectl get tj -A -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name} {.status.phase}{"\n"}{end}' |
    awk '$2 != "Running" && $2 != "Succeeded" {print $1 " (" ($2 == "" ? "no phase" : $2) ")"}'
}
all_running() { kubectl get tj -A >/dev/null && [ -z "$(not_running)" ]; }   # or already done
if ! wait_until "$TIMEOUT" all_running; then
  kubectl get tj -A -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name}: {.status.phase}: {.status.explanation.summary}{"\n"}{end}' >&2
  fail "jobs not placed and started after ${TIMEOUT}s: $(not_running | paste -sd' ')" "$SERVE_LOG"
fi
READY_MS=$(( $(now_ms) - T0 ))
log "all $(kubectl get tj -A -o name | wc -l) jobs placed and started"

# ---- what there is to see
# at PATH: PATH as the caller may type it ($PWD/... or relative when under the caller's folder)
at() { case $1 in "$here"/*) echo "${2:-}${1#"$here"/}" ;; *) echo "$1" ;; esac; }
show() { printf '\n$ %s\n' "$*"; "$@"; }
show kubectl get tj -A
show kubectl get mcl
show kubectl get cnq
# shellcheck disable=SC2016  # '$PWD/' is printed for the reader's shell to expand
cat <<EOT

ready in $(fmt_ms "$READY_MS") s (cargo build $(fmt_ms $(( T_BUILT - T0 ))) s, test bed $(fmt_ms $(( T_BED - T_BUILT ))) s, service and placement $(fmt_ms $(( T0 + READY_MS - T_BED ))) s)

Dashboard:   http://127.0.0.1:$PORT/   (metrics: /metrics, JSON: /api/pool${PROMETHEUS_URL:+; Prometheus: $PROMETHEUS_URL})
kubectl:     export KUBECONFIG=$(at "$HUB_KUBECONFIG" '$PWD/')
             kubectl describe tj bert-large -n team-a     # Events; why it runs where it runs
             kubectl get tj bert-large -n team-a -o jsonpath='{.status.explanation}'
Members:     source $(at "$RUN/env")   (AI_1_KUBECONFIG, GENERAL_2_KUBECONFIG, ...)
Service log: $(at "$SERVE_LOG")
Stop it all: $(at "$root/tests/demo.sh") --down
EOT
