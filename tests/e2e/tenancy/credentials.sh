#!/usr/bin/env bash
# Tenancy group "credentials": the service's credentials stay where an admin put them.
#
# A MemberCluster can no longer make the service read any Secret and send it anywhere:
# - a Slurm member whose endpoint is a plain http:// listener (no insecureHTTP) is refused
#   (Ready=False, InsecureEndpoint) and the listener receives no request, so no token;
# - a Secret without the computenet.io/credentials=true label, or in another namespace than
#   the service's, is not read (Ready=False, SecretNotAllowed; a labelled one in the
#   service's namespace connects, as a control);
# - kubeconfigs with exec or tokenFile are refused (KubeconfigNotAllowed, naming the field);
# - with insecureHTTP a listener that answers 302 to a second listener: the second receives
#   nothing (the token goes only to the configured address), and the member shows
#   TransportSecure=False InsecureHTTP;
# - an https listener with a certificate from a private CA: refused without caSecretRef
#   (the token never reaches it), reached with the CA from a labelled Secret;
# - a broken kubeconfig Secret holding a marker: the marker is in neither
#   `kubectl get mcl -o yaml`, `kubectl computenet pool`, nor the service's log.
#
# The checks run against a hub of their own, the apiserver of member general-2 (CRDs
# installed there), so that no other `computenet serve` on the shared test bed reads these
# MemberClusters or sends requests to the listeners. The good kubeconfig reaches ai-1.
#
# Needs the test bed (tests/testbed/up.sh --members 3) and
#   cargo build -p computenet -p kubectl-computenet
# Ports: 18230-18234. About 1 minute.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$here/lib.sh"
use_testbed
[ -n "${GENERAL_2_KUBECONFIG:-}" ] || { echo "the test bed has no member general-2 (up.sh --members 3)" >&2; exit 1; }
PLUGIN=${KUBECTL_COMPUTENET_BIN:-$(dirname "$BIN")/kubectl-computenet}
[ -x "$PLUGIN" ] || { echo "kubectl-computenet not found at $PLUGIN (cargo build -p kubectl-computenet)" >&2; exit 1; }
export KUBECONFIG=$GENERAL_2_KUBECONFIG # this group's hub
tmp=$(mktemp -d)
SYS=t-credentials-system    # the service's namespace: lease and credentials
OTHER=t-credentials-other   # a namespace the service must not read Secrets from
JOBS=t-credentials-jobs     # on ai-1, for the control member
PORT_HTTP=18230 PORT_REDIRECT=18231 PORT_TARGET=18232 PORT_SERVE=18233 PORT_TLS=18234
MARKER="t-credentials-marker-$RANDOM$RANDOM"
TOKEN="t-credentials-token-$RANDOM$RANDOM"
MEMBERS=(t-cred-http t-cred-unlabelled t-cred-elsewhere t-cred-good t-cred-exec t-cred-tokenfile t-cred-redirect t-cred-broken t-cred-noca t-cred-ca)
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  kubectl delete mcl "${MEMBERS[@]}" --ignore-not-found >/dev/null 2>&1
  kubectl delete ns "$SYS" "$OTHER" --wait=false --ignore-not-found >/dev/null 2>&1
  kubectl --kubeconfig "$AI_1_KUBECONFIG" delete ns "$JOBS" --wait=false --ignore-not-found >/dev/null 2>&1
  if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

kubectl apply -f "$root/deploy/crds/" >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=30s >/dev/null
kubectl delete mcl "${MEMBERS[@]}" --ignore-not-found >/dev/null 2>&1
for ns in "$SYS" "$OTHER"; do
  wait_for 60 bash -c "! kubectl get ns $ns >/dev/null 2>&1" || { echo "namespace $ns still terminating" >&2; exit 1; }
  kubectl create ns "$ns" >/dev/null
done

# --- listeners: one recording what reaches it, one redirecting to a third that records.
python3 "$here/tenancy/recorder.py" "$PORT_HTTP" "$tmp/http.log" 2>"$tmp/http.err" &
PIDS+=($!)
python3 "$here/tenancy/recorder.py" "$PORT_REDIRECT" "$tmp/redirect.log" "http://127.0.0.1:$PORT_TARGET" 2>"$tmp/redirect.err" &
PIDS+=($!)
python3 "$here/tenancy/recorder.py" "$PORT_TARGET" "$tmp/target.log" 2>"$tmp/target.err" &
PIDS+=($!)
# A private CA and a certificate for 127.0.0.1 signed by it.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=t-credentials-ca -keyout "$tmp/ca.key" -out "$tmp/ca.crt" >/dev/null 2>&1
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$tmp/tls.key" -out "$tmp/tls.csr" >/dev/null 2>&1
printf 'subjectAltName=IP:127.0.0.1\n' > "$tmp/san.ext"
openssl x509 -req -in "$tmp/tls.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" -CAcreateserial -days 1 \
  -extfile "$tmp/san.ext" -out "$tmp/tls.crt" >/dev/null 2>&1 || { echo "openssl could not make the certificates" >&2; exit 1; }
TLS_CERT=$tmp/tls.crt TLS_KEY=$tmp/tls.key python3 "$here/tenancy/recorder.py" "$PORT_TLS" "$tmp/tls.log" 2>"$tmp/tls.err" &
PIDS+=($!)
for p in "$PORT_HTTP" "$PORT_REDIRECT" "$PORT_TARGET" "$PORT_TLS"; do
  wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$p" || { echo "listener on $p did not start" >&2; exit 1; }
done
: > "$tmp/http.log"; : > "$tmp/redirect.log"; : > "$tmp/target.log"; : > "$tmp/tls.log" # the probes above are not requests

# --- Secrets. kubeconfig_secret NS NAME FILE [LABEL]: a kubeconfig Secret.
kubeconfig_secret() {
  kubectl create secret generic "$2" -n "$1" --from-file=kubeconfig="$3" >/dev/null
  [ "${4:-}" = marked ] && kubectl label secret "$2" -n "$1" computenet.io/credentials=true >/dev/null
  return 0
}
kubeconfig_secret "$SYS" t-cred-good "$AI_1_KUBECONFIG" marked
kubeconfig_secret "$SYS" t-cred-unlabelled "$AI_1_KUBECONFIG"
kubeconfig_secret "$OTHER" t-cred-elsewhere "$AI_1_KUBECONFIG" marked
ca=$(awk '/certificate-authority-data:/ {print $2; exit}' "$AI_1_KUBECONFIG")
cat > "$tmp/exec.kubeconfig" <<EOT
apiVersion: v1
kind: Config
clusters: [{name: m, cluster: {server: "$AI_1_URL", certificate-authority-data: $ca}}]
contexts: [{name: m, context: {cluster: m, user: u}}]
current-context: m
users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh, args: [-c, "touch $tmp/exec-ran"]}}}]
EOT
sed 's|user: {exec: .*}}}]|user: {tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token}}]|' "$tmp/exec.kubeconfig" > "$tmp/tokenfile.kubeconfig"
kubeconfig_secret "$SYS" t-cred-exec "$tmp/exec.kubeconfig" marked
kubeconfig_secret "$SYS" t-cred-tokenfile "$tmp/tokenfile.kubeconfig" marked
# Broken YAML around the marker, and the marker as a value of the wrong type.
printf 'apiVersion: v1\nkind: Config\nclusters: [{name: m, cluster: {server: %s\nusers: "%s\n' "$MARKER" "$MARKER" > "$tmp/broken.kubeconfig"
kubeconfig_secret "$SYS" t-cred-broken "$tmp/broken.kubeconfig" marked
kubectl create secret generic t-cred-token -n "$SYS" --from-literal=token="$TOKEN" --from-file=ca.crt="$tmp/ca.crt" >/dev/null
kubectl label secret t-cred-token -n "$SYS" computenet.io/credentials=true >/dev/null

k8s_member() { # k8s_member NAME SECRET_NS SECRET
  cat <<EOT
---
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: $1}
spec:
  kind: AI
  site: t-credentials
  kubernetes: {kubeconfigSecretRef: {name: $3, namespace: $2, key: kubeconfig}, namespace: $JOBS}
EOT
}
slurm_member() { # slurm_member NAME ENDPOINT INSECURE [CA]
  cat <<EOT
---
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: $1}
spec:
  kind: HPC
  site: t-credentials
  slurm:
    endpoint: $2
    insecureHTTP: $3
    userName: nobody
    tokenSecretRef: {name: t-cred-token, namespace: $SYS, key: token}
EOT
  [ -z "${4:-}" ] || echo "    caSecretRef: {name: t-cred-token, namespace: $SYS, key: ca.crt}"
}
{
  slurm_member t-cred-http "http://127.0.0.1:$PORT_HTTP" false
  slurm_member t-cred-redirect "http://127.0.0.1:$PORT_REDIRECT" true
  slurm_member t-cred-noca "https://127.0.0.1:$PORT_TLS" false
  slurm_member t-cred-ca "https://127.0.0.1:$PORT_TLS" false ca
  k8s_member t-cred-good "$SYS" t-cred-good
  k8s_member t-cred-unlabelled "$SYS" t-cred-unlabelled
  k8s_member t-cred-elsewhere "$OTHER" t-cred-elsewhere
  k8s_member t-cred-exec "$SYS" t-cred-exec
  k8s_member t-cred-tokenfile "$SYS" t-cred-tokenfile
  k8s_member t-cred-broken "$SYS" t-cred-broken
} | kubectl apply -f - >/dev/null || { echo "creating the MemberClusters failed" >&2; exit 1; }

setsid "$BIN" serve --kubeconfig "$GENERAL_2_KUBECONFIG" --lease-namespace "$SYS" --lease-name t-credentials \
  --listen "127.0.0.1:$PORT_SERVE" --interval-ms 500 --profiles-configmap '' > "$tmp/serve.log" 2>&1 &
PIDS+=($!)

ready() { # ready NAME: "STATUS REASON" of the Ready condition
  kubectl get mcl "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].reason}' 2>/dev/null
}
message() { kubectl get mcl "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].message}' 2>/dev/null; }
is() { [ "$(ready "$1")" = "$2" ]; }
wait_for 60 is t-cred-good "True Reachable" || { echo "the control member did not get Ready" >&2; tail -20 "$tmp/serve.log" >&2; }

# --- http listener
refused_http() {
  wait_for 30 is t-cred-http "False InsecureEndpoint" || { echo "Ready: $(ready t-cred-http)"; return 1; }
  message t-cred-http | grep -q "insecureHTTP: true" || { echo "message: $(message t-cred-http)"; return 1; }
  sleep 3 # passes go on; still nothing may arrive
  [ ! -s "$tmp/http.log" ] || { echo "the listener got:"; cat "$tmp/http.log"; return 1; }
}
check "credentials: a MemberCluster pointing a Secret at an http listener is refused" refused_http

# --- labels and namespaces
not_read() {
  wait_for 30 is t-cred-unlabelled "False SecretNotAllowed" || { echo "unlabelled: $(ready t-cred-unlabelled)"; return 1; }
  message t-cred-unlabelled | grep -q "$SYS/t-cred-unlabelled.*computenet.io/credentials=true" ||
    { echo "message: $(message t-cred-unlabelled)"; return 1; }
  wait_for 30 is t-cred-elsewhere "False SecretNotAllowed" || { echo "elsewhere: $(ready t-cred-elsewhere)"; return 1; }
  message t-cred-elsewhere | grep -q "$OTHER/t-cred-elsewhere.*is not in namespace $SYS" ||
    { echo "message: $(message t-cred-elsewhere)"; return 1; }
  # The same kubeconfig, labelled in the service's namespace, connects.
  is t-cred-good "True Reachable" || { echo "control: $(ready t-cred-good)"; return 1; }
}
check "credentials: a Secret without the computenet label / in another namespace is not read" not_read

# --- exec and tokenFile
kubeconfig_refused() {
  wait_for 30 is t-cred-exec "False KubeconfigNotAllowed" || { echo "exec: $(ready t-cred-exec)"; return 1; }
  message t-cred-exec | grep -q "users\[0\].user.exec" || { echo "message: $(message t-cred-exec)"; return 1; }
  wait_for 30 is t-cred-tokenfile "False KubeconfigNotAllowed" || { echo "tokenFile: $(ready t-cred-tokenfile)"; return 1; }
  message t-cred-tokenfile | grep -q "users\[0\].user.tokenFile" || { echo "message: $(message t-cred-tokenfile)"; return 1; }
  if message t-cred-tokenfile | grep -q serviceaccount; then echo "the message names the file"; return 1; fi
  [ ! -e "$tmp/exec-ran" ] || { echo "the exec command ran"; return 1; }
}
check "credentials: a kubeconfig with exec or tokenFile is refused" kubeconfig_refused

# --- redirect
redirect_without_token() {
  wait_for 30 grep -qi "x-slurm-user-token: $TOKEN" "$tmp/redirect.log" || { echo "the redirecting listener got no call"; return 1; }
  redirect_said() { message t-cred-redirect | grep -q "HTTP 302.*redirect, not followed"; }
  wait_for 30 redirect_said || { echo "Ready: $(ready t-cred-redirect) $(message t-cred-redirect)"; return 1; }
  sleep 3
  [ ! -s "$tmp/target.log" ] || { echo "the redirect's target got:"; cat "$tmp/target.log"; return 1; }
  [ "$(kubectl get mcl t-cred-redirect -o jsonpath='{.status.conditions[?(@.type=="TransportSecure")].status} {.status.conditions[?(@.type=="TransportSecure")].reason}')" = "False InsecureHTTP" ] ||
    { echo "no TransportSecure=False InsecureHTTP condition"; return 1; }
}
check "credentials: a redirect does not carry the token" redirect_without_token

# --- a private CA
private_ca() {
  # With the CA the TLS handshake succeeds and the listener's own answer (HTTP 500) shows.
  ca_reached() { message t-cred-ca | grep -q "HTTP 500"; }
  wait_for 30 ca_reached || { echo "with the CA: $(ready t-cred-ca) $(message t-cred-ca)"; return 1; }
  grep -qi "x-slurm-user-token: $TOKEN" "$tmp/tls.log" || { echo "the https listener got no call"; return 1; }
  noca_refused() { message t-cred-noca | grep -qiE "certificate|UnknownIssuer"; }
  wait_for 30 noca_refused || { echo "without the CA: $(ready t-cred-noca) $(message t-cred-noca)"; return 1; }
  [ "$(kubectl get mcl t-cred-ca -o jsonpath='{.status.conditions[?(@.type=="TransportSecure")].status}')" = True ] ||
    { echo "no TransportSecure=True"; return 1; }
}
check "credentials: caSecretRef trusts a private CA for slurmrestd (without it the TLS handshake fails)" private_ca

# --- a broken kubeconfig's text
not_copied() {
  wait_for 30 is t-cred-broken "False NotConnected" || { echo "Ready: $(ready t-cred-broken)"; return 1; }
  message t-cred-broken | grep -q "$SYS/t-cred-broken.*not valid YAML" || { echo "message: $(message t-cred-broken)"; return 1; }
  kubectl get mcl -o yaml > "$tmp/mcl.yaml" || return 1
  "$PLUGIN" pool > "$tmp/pool.txt" 2>&1 || { echo "kubectl computenet pool failed"; cat "$tmp/pool.txt"; return 1; }
  grep -q t-cred-broken "$tmp/pool.txt" || { echo "the pool does not list the member"; return 1; }
  for f in mcl.yaml pool.txt serve.log; do
    if grep -q "$MARKER" "$tmp/$f"; then echo "the marker is in $f"; return 1; fi
  done
  if grep -q "$TOKEN" "$tmp/serve.log"; then echo "the token is in the service's log"; return 1; fi
}
check "credentials: a bad kubeconfig's text is not copied into status" not_copied

summary
