#!/usr/bin/env bash
# Start Kueue as MultiKueue on a running test bed (tests/testbed/up.sh --members 3 ...): a
# manager on the hub and a worker Kueue on ai-1 and on ai-3, three processes of this host.
#
#   start.sh [stock|patched]          (default stock; binaries from build.sh)
#
# Environment: TESTBED_RUN_DIR (as for up.sh); KUEUE_PORT_BASE (default 18700: health, metrics
# and webhook ports base+0..2 for the hub, base+10..12 for ai-1, base+20..22 for ai-3, all on
# 127.0.0.1); KUEUE_QPS / KUEUE_BURST (every process's own client, Kueue's shipped 50 / 100;
# -1 = no client-side limit); KUEUE_REMOTE_QPS / KUEUE_REMOTE_BURST (patched binary only: the
# hub's clients to the workers, client-go's 5 / 10 when unset).
# State in $TESTBED_RUN_DIR/kueue: pids/kueue@<cluster>.pid, logs/, the Configurations.
# Needs root once: Kueue reads its metrics certificate from the fixed path
# /etc/kueue/metrics/certs (a self-signed one for 127.0.0.1 is written there if absent).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../../testbed/lib.sh
. "$here/../../testbed/lib.sh"
variant=${1:-stock}
case $variant in stock|patched) ;; *) echo "start.sh: stock or patched, not $variant" >&2; exit 2 ;; esac
[ -r "$RUN/env" ] || { echo "start.sh: no test bed in $RUN (tests/testbed/up.sh)" >&2; exit 1; }
# shellcheck disable=SC1091
. "$RUN/env"
DIR=$("$here/build.sh" --print-dir)
BIN=$DIR/$variant/kueue
[ -x "$BIN" ] || { echo "start.sh: no $BIN (run $here/build.sh)" >&2; exit 1; }
KRUN=$RUN/kueue
mkdir -p "$KRUN/pids" "$KRUN/logs" "$KRUN/certs"
BASE=${KUEUE_PORT_BASE:-18700}
QPS=${KUEUE_QPS:-50} BURST=${KUEUE_BURST:-100}
H=(kubectl --kubeconfig "$HUB_KUBECONFIG")

# Certificates: the webhook server starts in every process (no webhook configuration points at
# it) and wants tls.crt/tls.key in webhook.certDir; with internal cert management off, the
# metrics server always watches /etc/kueue/metrics/certs and the process exits without it.
if [ ! -s "$KRUN/certs/tls.crt" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$KRUN/certs/tls.key" -out "$KRUN/certs/tls.crt" 2>/dev/null
fi
if [ ! -s /etc/kueue/metrics/certs/tls.crt ]; then
  mkdir -p /etc/kueue/metrics/certs && cp "$KRUN/certs/tls.crt" "$KRUN/certs/tls.key" /etc/kueue/metrics/certs/
fi

# CRDs (server-side: the Workload CRD is too big for client-side apply's annotation; the base
# CRDs have no conversion webhook), polled until Established, then the objects.
for kc in "$HUB_KUBECONFIG" "$AI_1_KUBECONFIG" "$AI_3_KUBECONFIG"; do
  kubectl --kubeconfig "$kc" apply --server-side -f "$DIR/crds/" >/dev/null
done
for kc in "$HUB_KUBECONFIG" "$AI_1_KUBECONFIG" "$AI_3_KUBECONFIG"; do
  for _ in $(seq 120); do
    n=$(kubectl --kubeconfig "$kc" get crd -o jsonpath='{range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Established")].status}{"\n"}{end}' | grep -c '\.kueue\.x-k8s\.io True$' || true)
    [ "$n" -ge "$(find "$DIR/crds" -name '*.yaml' | wc -l)" ] && break
    sleep 0.5
  done
done
kubectl --kubeconfig "$AI_1_KUBECONFIG" apply -f "$here/worker.yaml" >/dev/null
kubectl --kubeconfig "$AI_3_KUBECONFIG" apply -f "$here/worker.yaml" >/dev/null
"${H[@]}" apply -f "$here/hub.yaml" >/dev/null
# MultiKueue reads key "kubeconfig" of a Secret in its own namespace; the test bed's member
# Secrets have embedded certificates and https://127.0.0.1:<port>, which Kueue accepts.
for m in ai-1 ai-3; do
  "${H[@]}" -n computenet-system get secret "$m-kubeconfig" -o json \
    | python3 -c 'import json,sys; s=json.load(sys.stdin); print(json.dumps({"apiVersion":"v1","kind":"Secret","metadata":{"name":s["metadata"]["name"],"namespace":"kueue-system"},"data":{"kubeconfig":s["data"]["kubeconfig"]}}))' \
    | "${H[@]}" apply -f - >/dev/null
done

# One Configuration per process: no leader election, no internal cert management, only
# batch/job, no visibility server (VisibilityOnDemand would bind :8082 in every process).
config() { # cluster port-offset extra-line
  cat > "$KRUN/$1.yaml" <<EOT
apiVersion: config.kueue.x-k8s.io/v1beta2
kind: Configuration
namespace: kueue-system
health: {healthProbeBindAddress: "127.0.0.1:$((BASE + $2))"}
metrics: {bindAddress: "127.0.0.1:$((BASE + $2 + 1))"}
webhook: {host: 127.0.0.1, port: $((BASE + $2 + 2)), certDir: $KRUN/certs}
leaderElection: {leaderElect: false}
internalCertManagement: {enable: false}
clientConnection: {qps: $QPS, burst: $BURST}
integrations: {frameworks: ["batch/job"]}
featureGates: {VisibilityOnDemand: false}
$3
EOT
}
config hub 0 'multiKueue: {gcInterval: 1m, origin: peer-hub}'
config ai-1 10 ''
config ai-3 20 ''
start() { # cluster kubeconfig
  pidfile_pid "$KRUN/pids/kueue@$1.pid" >/dev/null && { echo "kueue@$1 already running"; return; }
  nohup "$BIN" --kubeconfig "$2" --config "$KRUN/$1.yaml" --zap-log-level=info > "$KRUN/logs/kueue-$1.log" 2>&1 &
  echo $! > "$KRUN/pids/kueue@$1.pid"
}
start ai-1 "$AI_1_KUBECONFIG"
start ai-3 "$AI_3_KUBECONFIG"
start hub "$HUB_KUBECONFIG"
for off in 0 10 20; do
  for _ in $(seq 240); do curl -sf "http://127.0.0.1:$((BASE + off))/readyz" >/dev/null && break; sleep 0.5; done
  curl -sf "http://127.0.0.1:$((BASE + off))/readyz" >/dev/null || { echo "start.sh: Kueue on port $((BASE + off)) not ready (logs in $KRUN/logs)" >&2; exit 1; }
done
# The workers' clusters and the admission check must be Active before jobs are sent.
"${H[@]}" wait --for=condition=Active multikueuecluster/ai-1 multikueuecluster/ai-3 admissioncheck/multikueue --timeout=120s >/dev/null
echo "kueue ($variant) up: hub $(cat "$KRUN/pids/kueue@hub.pid"), ai-1 $(cat "$KRUN/pids/kueue@ai-1.pid"), ai-3 $(cat "$KRUN/pids/kueue@ai-3.pid"); qps/burst local $QPS/$BURST, remote ${KUEUE_REMOTE_QPS:-5 (client-go default)}/${KUEUE_REMOTE_BURST:-10}"
