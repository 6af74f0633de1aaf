#!/usr/bin/env bash
# Tenancy group "web": the service's HTTP side keeps tenants' data to those allowed.
#
# One `computenet serve` with the defaults (--web-auth kubernetes, no --metrics-job-labels)
# and its own lease and hub id; a tenant's job with a distinctive name waits in a queue
# with a zero GPU quota, so it is in the pool's data. Then:
# - /api/pool refuses a request without a token or with an invalid one (401), and the
#   dashboard page rendered in headless Chromium without a token shows no data;
# - a service account's token (kubectl create token) without a grant gets 403;
# - a token whose service account is bound to the chart's ClusterRole
#   computenet-dashboard-viewer (taken from deploy/manifests/rbac.yaml, renamed for this
#   test) gets 200 with the job in it, and the page rendered with #token=... shows it;
# - /metrics (open) has the queue's counts but not the job's name;
# - --web-auth none is refused at start on 0.0.0.0 and serves without a token on 127.0.0.1.
#
# Needs the test bed (tests/testbed/up.sh --members 3 --gpu-nodes 8 --no-taint), chromium
# for the page checks (skipped without it), and cargo build -p computenet
# Ports: 18240-18242. About 1 minute.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$here/lib.sh"
use_testbed
tmp=$(mktemp -d)
NS=t-web-a
QUEUE=t-web-q
LEASE=t-web-leader
ROLE=t-web-dashboard-viewer
JOB=t-web-secret-project-$RANDOM
PORT=18240 PORT_OPEN=18241 PORT_REFUSED=18242
URL=http://127.0.0.1:$PORT
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  kubectl get tj -n "$NS" -o name 2>/dev/null | xargs -r kubectl patch -n "$NS" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
  kubectl delete ns "$NS" --wait=false >/dev/null 2>&1
  kubectl delete cnq "$QUEUE" --ignore-not-found >/dev/null 2>&1
  kubectl delete clusterrolebinding "$ROLE" --ignore-not-found >/dev/null 2>&1
  kubectl delete clusterrole "$ROLE" --ignore-not-found >/dev/null 2>&1
  kubectl delete lease "$LEASE" -n computenet-system --ignore-not-found >/dev/null 2>&1
  if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# The CRDs, only where missing (other tests on the shared hub may have newer ones).
for f in "$root"/deploy/crds/*.yaml; do
  kubectl get -f "$f" >/dev/null 2>&1 || kubectl create -f "$f" >/dev/null
done
kubectl wait --for=condition=Established crd --all --timeout=30s >/dev/null
wait_for 60 bash -c "! kubectl get ns $NS >/dev/null 2>&1" || { echo "namespace $NS still terminating" >&2; exit 1; }
kubectl delete lease "$LEASE" -n computenet-system --ignore-not-found >/dev/null 2>&1
{ tenant_queue "$NS" t-web "$QUEUE" 0; cat <<EOT; } | kubectl apply -f - >/dev/null
---
apiVersion: computenet.io/v1alpha1
kind: TrainingJob
metadata: {name: $JOB, namespace: $NS}
spec:
  queueName: $QUEUE
  replicas: 1
  resources: {cpu: "1", memory: 4Gi, accelerators: {count: 1}}
  workload: {image: example/train:1.0, command: [python, train.py]}
  work: {gpuHours: 1}
EOT

# The chart's dashboard ClusterRole, as rendered, under this test's name.
python3 - "$root/deploy/manifests/rbac.yaml" "$ROLE" > "$tmp/role.yaml" <<'PYEOF'
import sys, yaml
role = next(d for d in yaml.safe_load_all(open(sys.argv[1]))
            if d and d["kind"] == "ClusterRole" and d["metadata"]["name"] == "computenet-dashboard-viewer")
role["metadata"] = {"name": sys.argv[2]}
print(yaml.safe_dump(role))
PYEOF
kubectl apply -f "$tmp/role.yaml" >/dev/null
kubectl create serviceaccount viewer -n "$NS" >/dev/null
kubectl create serviceaccount outsider -n "$NS" >/dev/null
kubectl create clusterrolebinding "$ROLE" --clusterrole="$ROLE" --serviceaccount="$NS:viewer" >/dev/null
VIEWER=$(kubectl create token viewer -n "$NS" --duration=10m)
OUTSIDER=$(kubectl create token outsider -n "$NS" --duration=10m)

setsid "$BIN" serve --kubeconfig "$HUB_KUBECONFIG" --lease-namespace computenet-system --lease-name "$LEASE" \
  --hub-id t-web-hub --interval-ms 500 --listen "127.0.0.1:$PORT" > "$tmp/serve.log" 2>&1 &
PIDS+=($!)
wait_for 60 curl -sf "$URL/readyz" || { echo "the service is not ready" >&2; tail -20 "$tmp/serve.log" >&2; exit 1; }

# status URL [TOKEN]: the HTTP status of a GET
status() { curl -s -o /dev/null -w '%{http_code}' ${2:+-H "Authorization: Bearer $2"} "$1"; }
# The job is in the pool's data once it waits with a position.
in_pool() { curl -sf -H "Authorization: Bearer $VIEWER" "$URL/api/pool" | grep -qF "\"$JOB\""; }
wait_for 60 in_pool

refuses_anonymous() {
  local s
  s=$(status "$URL/api/pool") && [ "$s" = 401 ] || { echo "/api/pool without a token: $s"; return 1; }
  s=$(status "$URL/api/pool" not-a-token) && [ "$s" = 401 ] || { echo "/api/pool with an invalid token: $s"; return 1; }
  curl -s -D - -o "$tmp/anon.txt" "$URL/api/pool" | grep -qi '^www-authenticate: bearer' || { echo "no WWW-Authenticate"; return 1; }
  ! grep -qF "$JOB" "$tmp/anon.txt" || { echo "the refusal names the job"; return 1; }
  # The page itself carries no data.
  ! curl -s "$URL/" | grep -qF "$JOB" || { echo "the page names the job"; return 1; }
}
check "web: the dashboard refuses an unauthenticated request" refuses_anonymous
check "web: a token without the RBAC grant is refused (403)" bash -c "
  s=\$(curl -s -o '$tmp/outsider.txt' -w '%{http_code}' -H 'Authorization: Bearer $OUTSIDER' '$URL/api/pool'); echo \"status \$s\"
  [ \"\$s\" = 403 ] && ! grep -qF '$JOB' '$tmp/outsider.txt'"
check "web: a token bound to computenet-dashboard-viewer is allowed (200)" bash -c "
  s=\$(curl -s -o '$tmp/viewer.json' -w '%{http_code}' -H 'Authorization: Bearer $VIEWER' '$URL/api/pool'); echo \"status \$s\"
  [ \"\$s\" = 200 ] && grep -qF '\"$JOB\"' '$tmp/viewer.json'"
no_job_names() {
  curl -sf "$URL/metrics" > "$tmp/metrics.txt" || return 1
  # Current (the queue's waiting job is counted) and nameless.
  grep -qF "computenet_queue_jobs{queue=\"$QUEUE\",state=\"pending\"} 1" "$tmp/metrics.txt" || { echo "no pending count"; return 1; }
  ! grep -F -e "$JOB" -e "namespace=\"$NS\"" -e computenet_pending_job_position "$tmp/metrics.txt"
}
check "web: /metrics carries no job names by default" no_job_names
check "web: no token or Authorization header is logged" bash -c "! grep -F -e '$VIEWER' -e '$OUTSIDER' -e 'not-a-token' -e 'Bearer' '$tmp/serve.log'"

# --- The page in headless Chromium: without a token it asks for one and shows nothing;
# with #token=... it renders the pool.
if command -v chromium >/dev/null 2>&1; then
  chrome() {
    timeout 90 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
      --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
      --user-data-dir="$(mktemp -d -p "$tmp")" --virtual-time-budget=6000 --dump-dom "$1" 2>>"$tmp/chromium.log"
  }
  chrome "$URL/" > "$tmp/anon.html"
  check "web: the page without a token asks for one and shows no data" bash -c "
    grep -qF '<form id=\"login\">' '$tmp/anon.html' && grep -qF 'a token is needed' '$tmp/anon.html' &&
    grep -qF '<body data-generated-at=\"0\"' '$tmp/anon.html' && ! grep -qF '$JOB' '$tmp/anon.html'"
  chrome "$URL/#token=$VIEWER" > "$tmp/viewer.html"
  check "web: the page with #token= of an allowed user shows the pool" bash -c "
    grep -qE '<body data-generated-at=\"[1-9][0-9]+\"' '$tmp/viewer.html' && grep -qF 'data-job=\"$NS/$JOB\"' '$tmp/viewer.html' &&
    grep -qF '<form id=\"login\" hidden=\"\">' '$tmp/viewer.html'"
else
  echo "skip - the dashboard page in headless Chromium (no chromium)"
fi

# --- --web-auth none: only on loopback.
refused_at_start() {
  local rc=0
  timeout 30 "$BIN" serve --kubeconfig "$HUB_KUBECONFIG" --web-auth none --listen "0.0.0.0:$PORT_REFUSED" \
    --lease-namespace computenet-system --lease-name "$LEASE" --hub-id t-web-hub > "$tmp/refused.log" 2>&1 || rc=$?
  cat "$tmp/refused.log"
  [ "$rc" != 0 ] && [ "$rc" != 124 ] && grep -qF -- '--web-auth none' "$tmp/refused.log" && grep -qF -- '--listen' "$tmp/refused.log"
}
check "web: --web-auth none on a non-loopback address is refused at start" refused_at_start
# A standby on the same lease: it serves HTTP without scheduling anything.
setsid "$BIN" serve --kubeconfig "$HUB_KUBECONFIG" --lease-namespace computenet-system --lease-name "$LEASE" \
  --hub-id t-web-hub --web-auth none --listen "127.0.0.1:$PORT_OPEN" > "$tmp/open.log" 2>&1 &
PIDS+=($!)
check "web: --web-auth none on 127.0.0.1 serves /api/pool without a token" wait_for 30 bash -c \
  "[ \"\$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$PORT_OPEN/api/pool)\" = 200 ]"
summary
