# Shared helpers of the end-to-end tests: named checks and a final "N passed, M failed".
# shellcheck shell=bash
PASSED=0
FAILED=0
ok() { PASSED=$((PASSED + 1)); echo "ok - $*"; }
not_ok() { FAILED=$((FAILED + 1)); echo "not ok - $*"; }
# check NAME CMD...: runs CMD, records the result under NAME.
check() {
  local name=$1; shift
  local out
  if out=$("$@" 2>&1); then ok "$name"; else not_ok "$name"; printf '%s\n' "$out" | sed 's/^/    /' | tail -20; fi
}
# refused NAME PATTERN FILE: kubectl apply of FILE must fail with a message matching PATTERN.
refused() {
  local name=$1 pattern=$2 file=$3 out
  if out=$(kubectl apply -f "$file" 2>&1); then
    not_ok "$name (accepted)"; kubectl delete -f "$file" --ignore-not-found >/dev/null 2>&1
  elif printf '%s' "$out" | grep -qE "$pattern"; then
    ok "$name"
  else
    not_ok "$name (wrong message)"; printf '%s\n' "$out" | sed 's/^/    /'
  fi
}
# wait_for TIMEOUT_S CMD...: retries CMD until it succeeds.
wait_for() {
  local end=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -ge "$end" ] && return 1
    sleep 0.5
  done
}
summary() {
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" = 0 ]
}
# use_testbed: the test bed's environment (tests/testbed/run/env), kubectl on the hub, and
# BIN the computenet binary (COMPUTENET_BIN, default target/debug/computenet). Needs $root.
use_testbed() {
  local env=$root/tests/testbed/run/env
  [ -r "$env" ] || { echo "no test bed here: bring it up with tests/testbed/up.sh" >&2; exit 1; }
  # shellcheck disable=SC1090
  . "$env"
  export KUBECONFIG=$HUB_KUBECONFIG
  BIN=${COMPUTENET_BIN:-$root/target/debug/computenet}
  [ -x "$BIN" ] || { echo "computenet binary not found at $BIN (cargo build -p computenet)" >&2; exit 1; }
}

# tenant_queue NS TENANT QUEUE [GPU_QUOTA]: the YAML of a namespace labelled for TENANT and
# a ComputeQueue that selects it (with a GPU quota when given).
tenant_queue() {
  cat <<EOT
apiVersion: v1
kind: Namespace
metadata: {name: $1, labels: {computenet.io/tenant: $2}}
---
apiVersion: computenet.io/v1alpha1
kind: ComputeQueue
metadata: {name: $3}
spec:
  namespaceSelector: {matchLabels: {computenet.io/tenant: $2}}
EOT
  if [ -n "${4:-}" ]; then echo "  quotas: [{resource: nvidia.com/gpu, nominal: $4}]"; fi
}

# need_free_ports WHAT PORT...: fails, naming the taken port and WHAT sets it, when something
# already listens on one of the ports on 127.0.0.1. A service started on a taken port keeps
# scheduling without its HTTP endpoints, and the test would then talk to the other process.
need_free_ports() {
  local what=$1 p
  shift
  for p in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "port $p on 127.0.0.1 is taken (set $what)" >&2
      return 1
    fi
  done
}

# finalize_webhook PORT [NAMESPACE]: the chart's finalize.computenet.io hook (TrainingJobs are
# created with computenet's finalizer) as one item of a MutatingWebhookConfiguration's
# webhooks, calling `computenet serve --webhook-listen 127.0.0.1:PORT` by URL; for
# NAMESPACE only, when given.
finalize_webhook() {
  cat <<EOT
- name: finalize.computenet.io
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Ignore
  timeoutSeconds: 5
  clientConfig: {url: "https://127.0.0.1:$1/mutate"}
EOT
  if [ -n "${2:-}" ]; then echo "  namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: $2}}"; fi
  cat <<'EOT'
  rules:
  - {apiGroups: [computenet.io], apiVersions: ["*"], resources: [trainingjobs], operations: [CREATE]}
EOT
}

# k8s_member NAME SITE: the YAML of a MemberCluster for one of the test bed's Kubernetes
# members (its kubeconfig in the Secret computenet-system/NAME-kubeconfig), of kind AI.
k8s_member() {
  cat <<EOT
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: $1}
spec:
  kind: AI
  site: $2
  kubernetes: {kubeconfigSecretRef: {name: $1-kubeconfig, namespace: computenet-system, key: kubeconfig}}
EOT
}

# slurm_member NAME SITE: the YAML of a MemberCluster for the test bed's Slurm (slurmrestd
# over plain http, JWTs signed with its key); append `    tenants: ...` (under slurm) or
# `  efficiency: ...` (under spec) lines after it as needed.
slurm_member() {
  cat <<EOT
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: $1}
spec:
  kind: HPC
  site: $2
  slurm:
    endpoint: $SLURMRESTD_URL
    insecureHTTP: true # the test bed's slurmrestd speaks plain http
    apiVersion: $SLURM_API_VERSION
    userName: $SLURM_USER_NAME
    jwtKeySecretRef: {name: slurm-jwt-key, namespace: computenet-system, key: jwt_hs256.key}
    workingDirectory: $SLURM_JOB_DIR
    standardOutput: "%x-%j.out"
EOT
}

# is GOT EXPECTED: compares, and says what it got when it differs.
is() {
  [ "$1" = "$2" ] || { echo "got '$1', expected '$2'"; return 1; }
}

# wait_show TIMEOUT_S CMD...: as wait_for, and on a timeout prints CMD's last output.
wait_show() {
  local end=$(( $(date +%s) + $1 )) out; shift
  until out=$("$@" 2>&1); do
    [ "$(date +%s)" -ge "$end" ] && { printf '%s\n' "$out"; return 1; }
    sleep 0.5
  done
}

# metrics_exporter FILE PORT LOG: serves FILE as /metrics on 127.0.0.1:PORT (a stand-in for
# an exporter that Prometheus scrapes; rewrite FILE to change what it serves), in the
# background; its pid in EXPORTER_PID.
metrics_exporter() {
  python3 - "$1" "$2" > "$3" 2>&1 <<'PYEOF' &
import http.server, sys
path, port = sys.argv[1], int(sys.argv[2])
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = open(path, 'rb').read() if self.path == '/metrics' else b'not found\n'
        self.send_response(200 if self.path == '/metrics' else 404)
        self.send_header('Content-Type', 'text/plain; version=0.0.4')
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(('127.0.0.1', port), Handler).serve_forever()
PYEOF
  EXPORTER_PID=$!
}
