#!/usr/bin/env bash
# Tenancy group "priority": priorities only as an admin allows them, and status written by
# the service only.
#
# Two tenants, alice (namespace t-priority-a, queue t-priority-qa allowing priorities 0 to
# 10) and bob (t-priority-b, queue t-priority-qb with the default range, only 0, and no
# GPU quota at first), act as impersonated users (kubectl --as) bound by RoleBindings to the
# chart's ClusterRole computenet-edit (the test bed has no kube-controller-manager, so the
# aggregation to edit/view is not performed here). Shows:
# - a job whose priority is above its queue's range stays Pending, Admitted=False
#   PriorityNotAllowed with the range in the message; one inside the range is admitted;
# - computenet-edit grants no trainingjobs/status: a tenant's status patch is Forbidden;
# - with a broader Role that does allow status patches, bob forges admitted=true and a
#   placement on a member: the service does not dispatch it (no workload on the member),
#   resets it (no placement, Admitted=False AdmissionNotIssued, a Warning Event), and once
#   an admin gives the queue a quota admits it properly, sealed, and dispatches it;
# - the service made its seal key Secret (32 bytes) itself.
#
# The serve process sees only namespaces starting with t-priority- (test-only
# COMPUTENET_TEST_NAMESPACE_PREFIX) and has its own lease, hub id, member and key Secret, so
# it leaves other groups' jobs alone. A serve of another group running at the same time sees
# these jobs too and may act on them (e.g. dispatch the forged one if it does not check
# seals); run the group alone for a strict result.
#
# Needs the test bed (tests/testbed/up.sh --members 3 --gpu-nodes 8 --no-taint), the CRDs of
# this tree applied (server-side: it adds fields), and
#   cargo build -p computenet
# Ports: 18200. About 1 minute.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$here/lib.sh"
use_testbed
tmp=$(mktemp -d)
NS_A=t-priority-a NS_B=t-priority-b
Q_A=t-priority-qa Q_B=t-priority-qb
MEMBER=t-priority-ai3
# The member namespace prefix; the jobs run in $MEMBER_PREFIX-<tenant namespace>.
MEMBER_PREFIX=t-priority-jobs
MEMBER_NSS=("$MEMBER_PREFIX-$NS_A" "$MEMBER_PREFIX-$NS_B")
LEASE=t-priority-leader
KEY_SECRET=t-priority-admission-key
PORT=18200
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  for ns in "$NS_A" "$NS_B"; do
    kubectl get tj -n "$ns" -o name 2>/dev/null | xargs -r kubectl patch -n "$ns" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
  done
  kubectl delete ns "$NS_A" "$NS_B" --wait=false >/dev/null 2>&1
  kubectl delete cnq "$Q_A" "$Q_B" --ignore-not-found >/dev/null 2>&1
  kubectl delete mcl "$MEMBER" --ignore-not-found >/dev/null 2>&1
  kubectl delete lease "$LEASE" -n computenet-system --ignore-not-found >/dev/null 2>&1
  kubectl delete secret "$KEY_SECRET" -n computenet-system --ignore-not-found >/dev/null 2>&1
  KUBECONFIG=$AI_3_KUBECONFIG kubectl delete ns "${MEMBER_NSS[@]}" --wait=false --ignore-not-found >/dev/null 2>&1
  [ "${ROLES_MINE:-0}" = 1 ] && kubectl delete -f "$root/deploy/manifests/tenant-roles.yaml" --ignore-not-found >/dev/null 2>&1
  if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

kubectl apply --server-side --force-conflicts -f "$root/deploy/crds/" >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=30s >/dev/null
wait_for 60 bash -c "! kubectl get ns $NS_A $NS_B >/dev/null 2>&1" || { echo "namespaces still terminating" >&2; exit 1; }
# The member namespaces of an earlier run must be gone (dispatch would find them terminating).
for ns in "${MEMBER_NSS[@]}"; do
  wait_for 90 bash -c "! KUBECONFIG=$AI_3_KUBECONFIG kubectl get ns $ns >/dev/null 2>&1" ||
    { echo "member namespace $ns still terminating" >&2; exit 1; }
done
kubectl delete lease "$LEASE" -n computenet-system --ignore-not-found >/dev/null 2>&1
kubectl delete secret "$KEY_SECRET" -n computenet-system --ignore-not-found >/dev/null 2>&1
# The chart's tenant roles, as rendered; removed afterwards unless they were there (a helm
# install of the chart refuses to adopt them).
kubectl get clusterrole computenet-edit >/dev/null 2>&1 || ROLES_MINE=1
kubectl apply -f "$root/deploy/manifests/tenant-roles.yaml" >/dev/null

{
  tenant_queue "$NS_A" t-priority-a "$Q_A"
  echo "  priorityRange: {min: 0, max: 10}"
  echo "---"
  tenant_queue "$NS_B" t-priority-b "$Q_B" 0
  cat <<EOT
---
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: $MEMBER}
spec:
  kind: AI
  site: t-priority
  kubernetes: {kubeconfigSecretRef: {name: ai-3-kubeconfig, namespace: computenet-system, key: kubeconfig}, namespace: $MEMBER_PREFIX}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice-edit, namespace: $NS_A}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: computenet-edit}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bob-edit, namespace: $NS_B}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: computenet-edit}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: bob}]
---
# Broader than the chart grants: bob may also write his jobs' status.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: status-writer, namespace: $NS_B}
rules: [{apiGroups: [computenet.io], resources: [trainingjobs/status], verbs: [get, patch, update]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bob-status, namespace: $NS_B}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: status-writer}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: bob}]
EOT
} | kubectl apply -f - >/dev/null

# tj NAME NS QUEUE PRIORITY: a small one-GPU job, for this group's member only (its site:
# other groups' MemberClusters may be registered on the shared hub meanwhile).
tj() {
  cat <<EOT
apiVersion: computenet.io/v1alpha1
kind: TrainingJob
metadata: {name: $1, namespace: $2, annotations: {computenet.io/run-seconds: "3600"}}
spec:
  queueName: $3
  priority: $4
  replicas: 1
  resources: {cpu: "1", memory: 4Gi, accelerators: {count: 1}}
  workload: {image: example/train:1.0, command: [python, train.py]}
  work: {gpuHours: 1}
  placement: {sites: [t-priority]}
EOT
}
field() { kubectl get tj "$2" -n "$1" -o jsonpath="$3" 2>/dev/null; }
admitted_cond() { field "$1" "$2" '{.status.phase} {.status.conditions[?(@.type=="Admitted")].reason}'; }
placed_here() { [ "$(field "$1" "$2" '{.status.admitted} {.status.placement.cluster}')" = "true $MEMBER" ]; }
# member_jobs UID: the member Jobs of a TrainingJob on ai-3.
member_jobs() {
  KUBECONFIG=$AI_3_KUBECONFIG kubectl get jobs -A -l "computenet.io/job-uid=$1" -o name 2>/dev/null
}

COMPUTENET_TEST_NAMESPACE_PREFIX=t-priority- setsid "$BIN" serve --kubeconfig "$HUB_KUBECONFIG" \
  --lease-namespace computenet-system --lease-name "$LEASE" --hub-id t-priority \
  --admission-key-secret "$KEY_SECRET" --interval-ms 500 --listen "127.0.0.1:$PORT" > "$tmp/serve.log" 2>&1 &
PIDS+=($!)
check "the service leads with its caches listed" wait_for 60 grep -q 'caches ready' "$tmp/serve.log"
check "the service created its admission key Secret with 32 random bytes" bash -c "
  [ \"\$(kubectl get secret $KEY_SECRET -n computenet-system -o jsonpath='{.data.key}' | base64 -d | wc -c)\" = 32 ]"

# --- priority
tj greedy "$NS_A" "$Q_A" 50 | kubectl --as=alice create -f - >/dev/null
tj allowed "$NS_A" "$Q_A" 10 | kubectl --as=alice create -f - >/dev/null
check "priority: a job above its queue's range is refused (PriorityNotAllowed)" wait_for 30 bash -c "
  $(declare -f field admitted_cond); [ \"\$(admitted_cond $NS_A greedy)\" = 'Pending PriorityNotAllowed' ]"
check "priority: the refusal names the queue's range" bash -c "
  $(declare -f field); field $NS_A greedy '{.status.conditions[?(@.type==\"Admitted\")].message}' | grep -q '(0 to 10)'"
check "priority: a job inside its queue's range is admitted" wait_for 30 bash -c "
  $(declare -f field placed_here); MEMBER=$MEMBER; placed_here $NS_A allowed"
check "priority: the admission carries the service's seal" bash -c "
  $(declare -f field); [ \"\$(field $NS_A allowed '{.status.admissionSeal}' | wc -c)\" = 64 ]"
tj bobs-priority "$NS_B" "$Q_B" 1 | kubectl --as=bob create -f - >/dev/null
check "priority: a queue without a range allows no priority but 0" wait_for 30 bash -c "
  $(declare -f field admitted_cond); [ \"\$(admitted_cond $NS_B bobs-priority)\" = 'Pending PriorityNotAllowed' ]"

# --- status
check "status: the chart's computenet-edit grants no trainingjobs/status" bash -c "
  [ \"\$(kubectl auth can-i patch trainingjobs.computenet.io --subresource=status --as=alice -n $NS_A)\" = no ] &&
  [ \"\$(kubectl auth can-i create trainingjobs.computenet.io --as=alice -n $NS_A)\" = yes ]"
out=$(kubectl --as=alice -n "$NS_A" patch tj greedy --subresource=status --type=merge \
  -p "{\"status\":{\"admitted\":true,\"placement\":{\"cluster\":\"$MEMBER\",\"gpus\":1,\"estimatedRuntimeSeconds\":1,\"estimatedEnergyKWh\":0,\"estimatedCost\":0}}}" 2>&1)
check "status: a tenant's status patch is refused by RBAC" bash -c "printf '%s' \"\$1\" | grep -q Forbidden" _ "$out"

tj forged "$NS_B" "$Q_B" 0 | kubectl --as=bob create -f - >/dev/null
check "status: bob's job waits for quota" wait_for 30 bash -c "
  $(declare -f field admitted_cond); [ \"\$(admitted_cond $NS_B forged)\" = 'Queued QuotaExceeded' ]"
uid=$(field "$NS_B" forged '{.metadata.uid}')
forge='{"status":{"phase":"Admitted","admitted":true,"attempt":1,"placement":{"cluster":"'$MEMBER'","gpus":1,"estimatedRuntimeSeconds":1,"estimatedEnergyKWh":0,"estimatedCost":0}}}'
check "status: with a broader Role bob's status patch is stored" \
  kubectl --as=bob -n "$NS_B" patch tj forged --subresource=status --type=merge -p "$forge"
warned() {
  kubectl get events -n "$NS_B" --field-selector "involvedObject.uid=$uid,reason=AdmissionNotIssued,type=Warning" \
    -o jsonpath='{.items[*].message}' | grep -q 'not issued by computenet'
}
reset() {
  [ "$(field "$NS_B" forged '{.status.admitted}|{.status.placement.cluster}|{.status.conditions[?(@.type=="Admitted")].reason}')" \
    = "false||AdmissionNotIssued" ] || [ "$(field "$NS_B" forged '{.status.admitted}|{.status.placement.cluster}|{.status.phase}')" = "false||Queued" ]
}
check "status: the forged admission is reset (no placement) with a Warning Event AdmissionNotIssued" \
  wait_for 30 bash -c "$(declare -f field warned reset); NS_B=$NS_B uid=$uid; warned && reset"
sleep 3 # a few passes more: nothing of the forgery may be dispatched
check "status: a forged admission from a broader role is ignored by the service" bash -c "
  $(declare -f member_jobs field); AI_3_KUBECONFIG=$AI_3_KUBECONFIG
  [ -z \"\$(member_jobs $uid)\" ] && [ \"\$(field $NS_B forged '{.status.admitted}')\" = false ] &&
  ! grep -q 'created .* for $NS_B/forged' '$tmp/serve.log'"
kubectl patch cnq "$Q_B" --type=merge -p '{"spec":{"quotas":[{"resource":"nvidia.com/gpu","nominal":8}]}}' >/dev/null
check "status: once its queue has quota the service admits it properly, sealed, and dispatches it" wait_for 60 bash -c "
  $(declare -f member_jobs field placed_here); AI_3_KUBECONFIG=$AI_3_KUBECONFIG MEMBER=$MEMBER
  placed_here $NS_B forged && [ \"\$(field $NS_B forged '{.status.admissionSeal}' | wc -c)\" = 64 ] && [ -n \"\$(member_jobs $uid)\" ]"
# A seal copied from another job does not hold for this one.
seal=$(field "$NS_A" allowed '{.status.admissionSeal}')
kubectl --as=bob -n "$NS_B" patch tj bobs-priority --subresource=status --type=merge \
  -p '{"status":{"phase":"Admitted","admitted":true,"attempt":1,"admissionSeal":"'"$seal"'","placement":{"cluster":"'$MEMBER'","gpus":1,"estimatedRuntimeSeconds":1,"estimatedEnergyKWh":0,"estimatedCost":0}}}' >/dev/null
uid2=$(field "$NS_B" bobs-priority '{.metadata.uid}')
check "status: a seal copied from another job is refused too" wait_for 30 bash -c "
  kubectl get events -n $NS_B --field-selector 'involvedObject.uid=$uid2,reason=AdmissionNotIssued' -o name | grep -q . &&
  [ -z \"\$(KUBECONFIG=$AI_3_KUBECONFIG kubectl get jobs -A -l computenet.io/job-uid=$uid2 -o name 2>/dev/null)\" ]"
summary
