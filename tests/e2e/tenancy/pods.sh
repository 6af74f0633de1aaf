#!/usr/bin/env bash
# Tenancy group "pods": two tenants' jobs on one Kubernetes member stay apart.
# - each hub namespace's jobs run in their own member namespace, which the service creates
#   labelled Pod Security `restricted` (enforce, warn, audit) with the tenant and the hub;
# - the pods run as non-root (65534) with no privilege escalation, all capabilities
#   dropped, the RuntimeDefault seccomp profile and no service-account token; the member's
#   PodSecurity admission refuses a root or privileged pod in that namespace;
# - each gang has a NetworkPolicy selecting its pods and admitting only its own pods (the
#   test bed has no CNI, so the objects are asserted, not the traffic), and the policy goes
#   with the job.
# The service reaches the member with a ServiceAccount token holding only the permissions
# of deploy/examples/member-rbac.yaml.
#
# Needs the test bed (tests/testbed/up.sh --members 3 --gpu-nodes 8 --no-taint) and
#   cargo build -p computenet
# Ports: 18210. Runs about 1 minute.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"
use_testbed
started_at=$(date +%s)
tmp=$(mktemp -d)
P=t-pods
NS_A=$P-a NS_B=$P-b
Q_A=$P-qa Q_B=$P-qb
MEMBER=$P-ai-1
SITE=$P-site
PREFIX=$P-jobs
MEMBER_NS_A=$PREFIX-$NS_A MEMBER_NS_B=$PREFIX-$NS_B
HUB_ID=$P-hub
SA_NS=$P-sa
SECRET=$P-ai-1
PORT=18210
SERVE_PID=''
ai1() { kubectl --kubeconfig "$AI_1_KUBECONFIG" "$@"; }

cleanup() {
  kubectl delete tj --all -n "$NS_A" --timeout=30s >/dev/null 2>&1
  kubectl delete tj --all -n "$NS_B" --timeout=30s >/dev/null 2>&1
  [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null
  for ns in "$NS_A" "$NS_B"; do
    kubectl get tj -n "$ns" -o name 2>/dev/null | xargs -r kubectl patch -n "$ns" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
  done
  kubectl delete ns "$NS_A" "$NS_B" --wait=false >/dev/null 2>&1
  kubectl delete cnq "$Q_A" "$Q_B" --ignore-not-found >/dev/null 2>&1
  kubectl delete mcl "$MEMBER" --ignore-not-found >/dev/null 2>&1
  ai1 delete ns "$MEMBER_NS_A" "$MEMBER_NS_B" "$SA_NS" --wait=false >/dev/null 2>&1
  ai1 delete clusterrole,clusterrolebinding "$P-member" --ignore-not-found >/dev/null 2>&1
  kubectl delete secret "$SECRET" -n computenet-system --ignore-not-found >/dev/null 2>&1
  if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

kubectl apply -f "$root/deploy/crds/" >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=30s >/dev/null
# A run before this one may still be deleting its namespaces.
wait_for 90 bash -c "! kubectl get ns $NS_A $NS_B >/dev/null 2>&1 && ! kubectl --kubeconfig '$AI_1_KUBECONFIG' get ns $MEMBER_NS_A >/dev/null 2>&1 && ! kubectl --kubeconfig '$AI_1_KUBECONFIG' get ns $MEMBER_NS_B >/dev/null 2>&1 && ! kubectl --kubeconfig '$AI_1_KUBECONFIG' get ns $SA_NS >/dev/null 2>&1" ||
  { echo "namespaces of an earlier run still terminating" >&2; exit 1; }

# The member's credential: a ServiceAccount token on ai-1 with just the permissions of
# deploy/examples/member-rbac.yaml (renamed for this group), so that they are shown to suffice.
ai1 create namespace "$SA_NS" >/dev/null
ai1 create serviceaccount computenet -n "$SA_NS" >/dev/null
sed -e "s/name: computenet-member/name: $P-member/" -e "s/namespace: computenet-member/namespace: $SA_NS/" \
  "$root/deploy/examples/member-rbac.yaml" | ai1 apply -f - >/dev/null
token=$(ai1 create token computenet -n "$SA_NS" --duration=1h)
ca=$(ai1 config view --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
cat > "$tmp/kubeconfig" <<EOT
apiVersion: v1
kind: Config
clusters: [{name: m, cluster: {server: "$AI_1_URL", certificate-authority-data: $ca}}]
contexts: [{name: m, context: {cluster: m, user: u}}]
current-context: m
users: [{name: u, user: {token: "$token"}}]
EOT
kubectl create secret generic "$SECRET" -n computenet-system --from-file=kubeconfig="$tmp/kubeconfig" --dry-run=client -o yaml |
  kubectl label --local -f - computenet.io/credentials=true -o yaml | kubectl apply -f - >/dev/null

# Two tenants, each with its own queue; one member of its own name and site, so that only
# these jobs go there (they ask for the site).
{ tenant_queue "$NS_A" "$NS_A" "$Q_A"; echo ---; tenant_queue "$NS_B" "$NS_B" "$Q_B"; cat <<EOT; } | kubectl apply -f - >/dev/null
---
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: $MEMBER}
spec:
  kind: AI
  site: $SITE
  kubernetes: {kubeconfigSecretRef: {name: $SECRET, namespace: computenet-system, key: kubeconfig}, namespace: $PREFIX}
EOT

setsid "$BIN" serve --kubeconfig "$HUB_KUBECONFIG" --no-leader-election --hub-id "$HUB_ID" --interval-ms 500 \
  --listen "127.0.0.1:$PORT" --profiles-configmap '' > "$tmp/serve.log" 2>&1 &
SERVE_PID=$!
check "the service is ready" wait_for 60 curl -sf "http://127.0.0.1:$PORT/readyz"

# tj NS NAME QUEUE [REPLICAS]: a gang of two (or REPLICAS) one-GPU replicas that runs for
# ten minutes.
tj() {
  cat <<EOT
---
apiVersion: computenet.io/v1alpha1
kind: TrainingJob
metadata: {name: $2, namespace: $1, annotations: {computenet.io/run-seconds: "600"}}
spec:
  queueName: $3
  replicas: ${4:-2}
  resources: {cpu: "1", memory: 1Gi, accelerators: {count: 1}}
  workload: {image: example/train:1.0, command: ["python", "train.py"]}
  work: {gpuHours: 1}
  placement: {sites: [$SITE]}
EOT
}
{ tj "$NS_A" gang "$Q_A"; tj "$NS_B" gang "$Q_B"; } | kubectl apply -f - >/dev/null
phase_is() { [ "$(kubectl get tj gang -n "$1" -o jsonpath='{.status.phase}' 2>/dev/null)" = "$2" ]; }
check "both tenants' gangs run" wait_for 90 bash -c "$(declare -f phase_is); phase_is $NS_A Running && phase_is $NS_B Running"
UID_A=$(kubectl get tj gang -n "$NS_A" -o jsonpath='{.metadata.uid}')
UID_B=$(kubectl get tj gang -n "$NS_B" -o jsonpath='{.metadata.uid}')
REMOTE_A=$(kubectl get tj gang -n "$NS_A" -o jsonpath='{.status.remote.name}')
# pods_of UID: "namespace name" of each member pod of that TrainingJob, in any namespace.
pods_of() { ai1 get pods -A -l "computenet.io/job-uid=$1" -o jsonpath='{range .items[*]}{.metadata.namespace} {.metadata.name}{"\n"}{end}'; }
wait_for 30 bash -c "[ \"\$(KUBECONFIG=$AI_1_KUBECONFIG kubectl get pods -n $MEMBER_NS_A -l computenet.io/job-uid=$UID_A -o name | wc -l)\" = 2 ]"
pods_of "$UID_A" > "$tmp/pods-a"
pods_of "$UID_B" > "$tmp/pods-b"
echo "    tenant A's pods: $(tr '\n' ' ' < "$tmp/pods-a")"
echo "    tenant B's pods: $(tr '\n' ' ' < "$tmp/pods-b")"
echo "    member namespaces made by hub: $(ai1 get ns "$MEMBER_NS_A" "$MEMBER_NS_B" -o jsonpath='{..computenet\.io/hub}') (this group's: $HUB_ID)"

namespace_ok() { # namespace_ok MEMBER_NS TENANT
  for mode in enforce warn audit; do
    [ "$(ai1 get ns "$1" -o jsonpath="{.metadata.labels.pod-security\.kubernetes\.io/$mode}")" = restricted ] ||
      { echo "$1: $mode is not restricted"; return 1; }
  done
  [ "$(ai1 get ns "$1" -o jsonpath='{.metadata.labels.pod-security\.kubernetes\.io/enforce-version}')" = latest ] || { echo "$1: enforce-version"; return 1; }
  [ "$(ai1 get ns "$1" -o jsonpath='{.metadata.labels.computenet\.io/tenant-namespace}')" = "$2" ] || { echo "$1: tenant label"; return 1; }
  # The hub that made it (this group's, unless another service on the shared hub came first).
  [ -n "$(ai1 get ns "$1" -o jsonpath='{.metadata.labels.computenet\.io/hub}')" ] || { echo "$1: no hub label"; return 1; }
}
check "pods: each tenant's pods run in its own member namespace labelled Pod Security restricted" bash -c "
  $(declare -f ai1 namespace_ok); AI_1_KUBECONFIG='$AI_1_KUBECONFIG' HUB_ID='$HUB_ID'
  [ \"\$(wc -l < '$tmp/pods-a')\" = 2 ] && [ \"\$(wc -l < '$tmp/pods-b')\" = 2 ] || { echo 'not two pods each'; exit 1; }
  [ \"\$(cut -d' ' -f1 '$tmp/pods-a' | sort -u)\" = '$MEMBER_NS_A' ] || { echo 'A is not (only) in $MEMBER_NS_A'; exit 1; }
  [ \"\$(cut -d' ' -f1 '$tmp/pods-b' | sort -u)\" = '$MEMBER_NS_B' ] || { echo 'B is not (only) in $MEMBER_NS_B'; exit 1; }
  namespace_ok '$MEMBER_NS_A' '$NS_A' && namespace_ok '$MEMBER_NS_B' '$NS_B'"

pod_a=$(head -1 "$tmp/pods-a" | cut -d' ' -f2)
ai1 get pod "$pod_a" -n "$MEMBER_NS_A" -o json > "$tmp/pod-a.json"
# A root, privileged pod in tenant A's member namespace: PodSecurity admission must refuse it.
cat > "$tmp/root-pod.yaml" <<EOT
apiVersion: v1
kind: Pod
metadata: {name: t-pods-root, namespace: $MEMBER_NS_A}
spec:
  containers: [{name: c, image: example/train:1.0, securityContext: {privileged: true, runAsUser: 0}}]
EOT
ai1 create --dry-run=server -f "$tmp/root-pod.yaml" > "$tmp/root-pod.out" 2>&1
echo "    a root pod there: $(head -c 240 "$tmp/root-pod.out")"
check "pods: tenant pods run non-root with no service-account token" python3 - "$tmp/pod-a.json" "$tmp/root-pod.out" <<'EOF'
import json, sys
pod = json.load(open(sys.argv[1]))
spec = pod["spec"]
sc = spec.get("securityContext", {})
c = spec["containers"][0]
csc = c.get("securityContext", {})
problems = []
if spec.get("automountServiceAccountToken") is not False: problems.append("the token is mounted")
if any("projected" in v and any("serviceAccountToken" in s for s in v["projected"].get("sources", []))
       for v in spec.get("volumes", [])): problems.append("a service-account token volume")
if any(m.get("mountPath", "").startswith("/var/run/secrets/kubernetes.io") for m in c.get("volumeMounts", [])):
    problems.append("the token path is mounted")
if sc.get("runAsNonRoot") is not True or sc.get("runAsUser") != 65534 or sc.get("runAsGroup") != 65534:
    problems.append(f"not non-root: {sc}")
if sc.get("seccompProfile", {}).get("type") != "RuntimeDefault": problems.append("no RuntimeDefault seccomp")
if csc.get("allowPrivilegeEscalation") is not False: problems.append("privilege escalation allowed")
if csc.get("capabilities", {}).get("drop") != ["ALL"]: problems.append("capabilities not dropped")
if spec.get("enableServiceLinks") is not False: problems.append("service links on")
refusal = open(sys.argv[2]).read()
if "violates PodSecurity" not in refusal or "restricted" not in refusal:
    problems.append("the root pod was not refused by PodSecurity: " + refusal[:300])
print("\n".join(problems))
sys.exit(1 if problems else 0)
EOF

# No CNI on the test bed (KWOK nodes, no pod network): NetworkPolicy enforcement cannot be
# shown, so the objects are asserted: A's policy selects A's gang and admits A's gang only
# (peers by A's job UID, in A's namespace), which B's pods are not.
ai1 get networkpolicy "$REMOTE_A" -n "$MEMBER_NS_A" -o json > "$tmp/np-a.json" 2>&1
ai1 get networkpolicies -n "$MEMBER_NS_A" -o jsonpath='{.items[*].metadata.name}' > "$tmp/np-names" 2>&1
ai1 get pods -n "$MEMBER_NS_B" -o json > "$tmp/pods-b.json"
check "pods: a NetworkPolicy per gang admits only its own pods to the rendezvous port" python3 - "$tmp/np-a.json" "$tmp/np-names" "$tmp/pod-a.json" "$tmp/pods-b.json" "$UID_A" <<'EOF'
import json, sys
np = json.load(open(sys.argv[1]))
names = open(sys.argv[2]).read().split()
pod_a = json.load(open(sys.argv[3]))
pods_b = json.load(open(sys.argv[4]))["items"]
uid_a = sys.argv[5]
gang = {"computenet.io/job-uid": uid_a}
spec = np["spec"]
problems = []
if spec.get("podSelector") != {"matchLabels": gang}: problems.append(f"podSelector {spec.get('podSelector')}")
if spec.get("policyTypes") != ["Ingress"]: problems.append(f"policyTypes {spec.get('policyTypes')}")
if spec.get("ingress") != [{"from": [{"podSelector": {"matchLabels": gang}}]}]:
    problems.append(f"ingress {spec.get('ingress')}")
labels = pod_a["metadata"].get("labels", {})
if any(labels.get(k) != v for k, v in gang.items()): problems.append("A's pod is not selected by its policy")
ports = [p.get("containerPort") for p in pod_a["spec"]["containers"][0].get("ports", [])]
if 29500 not in ports: problems.append(f"the rendezvous port is not on A's pod: {ports}")
if not pods_b: problems.append("no pods of B to compare")
for p in pods_b:
    if p["metadata"].get("labels", {}).get("computenet.io/job-uid") == uid_a or p["metadata"]["namespace"] == np["metadata"]["namespace"]:
        problems.append(f"B's pod {p['metadata']['name']} would be a peer")
if "computenet-default-deny-ingress" not in names: problems.append(f"no default-deny policy: {names}")
print("\n".join(problems))
sys.exit(1 if problems else 0)
EOF

# A single replica is its own master on localhost: no Service, no policy of its own; the
# namespace's default deny closes it to everything else.
tj "$NS_A" solo "$Q_A" 1 | kubectl apply -f - >/dev/null
check "pods: a single replica runs" wait_for 90 bash -c "[ \"\$(kubectl get tj solo -n $NS_A -o jsonpath='{.status.phase}')\" = Running ]"
REMOTE_SOLO=$(kubectl get tj solo -n "$NS_A" -o jsonpath='{.status.remote.name}')
check "pods: a single replica gets a Job but no Service or NetworkPolicy of its own" bash -c "
  [ -n '$REMOTE_SOLO' ] && kubectl --kubeconfig '$AI_1_KUBECONFIG' get job '$REMOTE_SOLO' -n $MEMBER_NS_A >/dev/null &&
  ! kubectl --kubeconfig '$AI_1_KUBECONFIG' get networkpolicy '$REMOTE_SOLO' -n $MEMBER_NS_A >/dev/null 2>&1 &&
  ! kubectl --kubeconfig '$AI_1_KUBECONFIG' get svc '$REMOTE_SOLO' -n $MEMBER_NS_A >/dev/null 2>&1 &&
  kubectl --kubeconfig '$AI_1_KUBECONFIG' get networkpolicy computenet-default-deny-ingress -n $MEMBER_NS_A >/dev/null"
kubectl delete tj solo -n "$NS_A" --timeout=60s >/dev/null 2>&1
check "pods: a single replica's Job goes with it" wait_for 30 bash -c "
  ! kubectl --kubeconfig '$AI_1_KUBECONFIG' get job '$REMOTE_SOLO' -n $MEMBER_NS_A >/dev/null 2>&1"

kubectl delete tj gang -n "$NS_A" --timeout=60s >/dev/null 2>&1
check "pods: the gang's NetworkPolicy, Service and Job go with the job" wait_for 30 bash -c "
  ! kubectl --kubeconfig '$AI_1_KUBECONFIG' get networkpolicy $REMOTE_A -n $MEMBER_NS_A >/dev/null 2>&1 &&
  ! kubectl --kubeconfig '$AI_1_KUBECONFIG' get job $REMOTE_A -n $MEMBER_NS_A >/dev/null 2>&1 &&
  ! kubectl --kubeconfig '$AI_1_KUBECONFIG' get svc $REMOTE_A -n $MEMBER_NS_A >/dev/null 2>&1"
check "pods: tenant B's gang is untouched" bash -c "$(declare -f phase_is); phase_is $NS_B Running"
check "no panic in the service's log" bash -c "! grep -q panicked '$tmp/serve.log'"
echo "    group wall time: $(( $(date +%s) - started_at )) s"
summary
