#!/usr/bin/env bash
# Tenancy group "slurm": two tenants (hub namespaces t-slurm-a and t-slurm-b) on one Slurm
# member that maps each to its own Unix user (cn-tenant-a, cn-tenant-b) and directory.
# Shows: their batch jobs run as different users, in different directories (the output
# file lands in the tenant's directory, owned by its user); a batch job submitted by
# tenant B's user with a comment naming tenant A's running job is ignored (A is not marked
# Succeeded by it and keeps its recorded job id; a still-running forgery under B's own
# namespace is not cancelled as a duplicate of A's); a third namespace with no mapping is
# not placed on the member, and says why in its explanation.
#
# Needs the test bed with Slurm and its tenant users and directories (tests/testbed/up.sh
# creates cn-tenant-a and cn-tenant-b and $SLURM_JOB_DIR/<user>, mode 0700), run as root
# (scontrol token for tenant B). Ports: 18220 (serve). About 1.5 minutes.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"
use_testbed
export SLURM_CONF
[ -n "${SLURMRESTD_URL:-}" ] || { echo "the test bed runs without Slurm (up.sh --no-slurm?)" >&2; exit 1; }
read -r USER_A USER_B _ <<<"${SLURM_TENANT_USERS:-cn-tenant-a cn-tenant-b}"
DIR_A=$SLURM_JOB_DIR/$USER_A DIR_B=$SLURM_JOB_DIR/$USER_B
for u in "$USER_A" "$USER_B"; do
  id "$u" >/dev/null 2>&1 && [ -d "$SLURM_JOB_DIR/$u" ] ||
    { echo "no Slurm tenant user $u with directory $SLURM_JOB_DIR/$u (see tests/testbed/up.sh)" >&2; exit 1; }
done
NS_A=t-slurm-a NS_B=t-slurm-b NS_C=t-slurm-c
MEMBER=t-slurm-hpc SITE=t-slurm HUB_ID=t-slurm-hub LEASE=t-slurm-serve PORT=18220
tmp=$(mktemp -d)
SERVE_PID=

ours() { squeue -h -o '%i %k' 2>/dev/null | grep -E "job=($NS_A|$NS_B|$NS_C)/" | awk '{print $1}'; }
cleanup() {
  kubectl delete tj --all -n "$NS_A" --timeout=30s >/dev/null 2>&1
  kubectl delete tj --all -n "$NS_B" --timeout=30s >/dev/null 2>&1
  kubectl delete tj --all -n "$NS_C" --timeout=30s >/dev/null 2>&1
  [ -n "$SERVE_PID" ] && { kill "$SERVE_PID" 2>/dev/null; wait "$SERVE_PID" 2>/dev/null; }
  for ns in "$NS_A" "$NS_B" "$NS_C"; do
    kubectl get tj -n "$ns" -o name 2>/dev/null | xargs -r -n1 kubectl patch -n "$ns" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
  done
  ours | xargs -r scancel 2>/dev/null
  kubectl delete ns "$NS_A" "$NS_B" "$NS_C" --wait=false >/dev/null 2>&1
  kubectl delete cnq "$NS_A" "$NS_B" "$NS_C" >/dev/null 2>&1
  kubectl delete mcl "$MEMBER" >/dev/null 2>&1
  kubectl delete lease "$LEASE" -n computenet-system --ignore-not-found >/dev/null 2>&1
  rm -f "$DIR_A"/t-slurm-* "$DIR_B"/t-slurm-*
  if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

field() { kubectl get tj "$2" -n "$1" -o jsonpath="$3" 2>/dev/null; }
phase_is() { [ "$(field "$1" "$2" '{.status.phase}')" = "$3" ]; }
job_field() { scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }
slurm_id() { field "$1" "$2" '{.status.remote.name}'; }

# tj NS NAME COMMAND: a one-replica, one-GPU job (the test bed's Slurm nodes all have GPUs) for the member of this group only (its site).
tj() {
  cat <<EOT
---
apiVersion: computenet.io/v1alpha1
kind: TrainingJob
metadata: {name: $2, namespace: $1}
spec:
  queueName: $1
  replicas: 1
  resources: {cpu: "1", memory: 256Mi, accelerators: {count: 1}}
  workload: {image: example/train:1.0, command: $3}
  work: {gpuHours: 1}
  placement: {clusterKinds: [HPC], sites: [$SITE]}
  maxRunSeconds: 600
EOT
}

kubectl apply -f "$root/deploy/crds/" >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=30s >/dev/null
for ns in "$NS_A" "$NS_B" "$NS_C"; do
  wait_for 60 bash -c "! kubectl get ns $ns >/dev/null 2>&1" || { echo "namespace $ns still terminating" >&2; exit 1; }
  tenant_queue "$ns" "$ns" "$ns" | kubectl apply -f - >/dev/null
done
{ slurm_member "$MEMBER" "$SITE"; cat <<EOT
    tenants:
    - {namespaces: [$NS_A], userName: $USER_A}
    - {namespaces: [$NS_B], userName: $USER_B}
EOT
} | kubectl apply -f - >/dev/null
[ "$(kubectl get mcl "$MEMBER" -o jsonpath='{.spec.slurm.tenants[1].userName}')" = "$USER_B" ] ||
  { echo "the hub's MemberCluster CRD dropped spec.slurm.tenants" >&2; exit 1; }

setsid "$BIN" serve --kubeconfig "$HUB_KUBECONFIG" --lease-namespace computenet-system --lease-name "$LEASE" \
  --hub-id "$HUB_ID" --interval-ms 500 --member-timeout-s 10 --listen "127.0.0.1:$PORT" > "$tmp/serve.log" 2>&1 &
SERVE_PID=$!
ready_is() { [ "$(kubectl get mcl "$MEMBER" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]; }
wait_for 60 ready_is || { echo "member $MEMBER not Ready"; tail -20 "$tmp/serve.log"; }

# --- Two tenants: each job as its user, in its directory.
{ tj "$NS_A" t-slurm-job '["bash", "-c", "pwd; id -un; sleep 8"]'
  tj "$NS_B" t-slurm-job '["bash", "-c", "pwd; id -un; sleep 8"]'
  tj "$NS_C" t-slurm-job '["true"]'; } | kubectl apply -f - >/dev/null
both_running() { phase_is "$NS_A" t-slurm-job Running && phase_is "$NS_B" t-slurm-job Running; }
wait_for 60 both_running
ID_A=$(slurm_id "$NS_A" t-slurm-job) ID_B=$(slurm_id "$NS_B" t-slurm-job)
users() { # the owner of each tenant's batch job, as slurmctld reports it
  [ -n "$ID_A" ] && [ -n "$ID_B" ] &&
    [ "$(squeue -h -j "$ID_A" -o %u)" = "$USER_A" ] && [ "$(squeue -h -j "$ID_B" -o %u)" = "$USER_B" ]
}
check "slurm: two tenants' jobs run as different users" users
both_done() { phase_is "$NS_A" t-slurm-job Succeeded && phase_is "$NS_B" t-slurm-job Succeeded; }
directories() {
  wait_for 60 both_done || { echo "not both Succeeded"; return 1; }
  local id dir user out
  for pair in "$ID_A:$DIR_A:$USER_A" "$ID_B:$DIR_B:$USER_B"; do
    IFS=: read -r id dir user <<<"$pair"
    [ "$(job_field "$id" WorkDir)" = "$dir" ] || { echo "job $id WorkDir $(job_field "$id" WorkDir), want $dir"; return 1; }
    out=$(job_field "$id" StdOut)
    [ "$(dirname "$out")" = "$dir" ] || { echo "job $id StdOut $out not in $dir"; return 1; }
    [ "$(stat -c %U "$out")" = "$user" ] || { echo "$out owned by $(stat -c %U "$out")"; return 1; }
    [ "$(head -2 "$out" | paste -sd' ')" = "$dir $user" ] || { echo "$out says: $(head -2 "$out")"; return 1; }
  done
  [ "$DIR_A" != "$DIR_B" ] && [ "$(stat -c %a "$DIR_A")" = 700 ] && [ "$(stat -c %a "$DIR_B")" = 700 ]
}
check "slurm: two tenants' jobs run in different directories" directories

# --- A forged comment: tenant B's user claims tenant A's running job.
tj "$NS_A" t-slurm-long '["sleep", "60"]' | kubectl apply -f - >/dev/null
wait_for 60 phase_is "$NS_A" t-slurm-long Running
UID_A=$(kubectl get tj t-slurm-long -n "$NS_A" -o jsonpath='{.metadata.uid}')
ATTEMPT=$(field "$NS_A" t-slurm-long '{.status.attempt}')
ID_LONG=$(slurm_id "$NS_A" t-slurm-long)
NAME_A="cn-$(printf %s "$UID_A" | tr -cd '[:alnum:]' | cut -c1-20 | tr '[:upper:]' '[:lower:]')"
TOKEN_B=$(scontrol token username="$USER_B" lifespan=600 | sed 's/^SLURM_JWT=//')
forge() { # forge NAMESPACE COMMAND: submits as tenant B's user a job claiming A's attempt; prints its id
  curl -sf -m 10 -H "X-SLURM-USER-NAME: $USER_B" -H "X-SLURM-USER-TOKEN: $TOKEN_B" -H 'Content-Type: application/json' \
    "$SLURMRESTD_URL/slurm/$SLURM_API_VERSION/job/submit" -d @- <<EOT | python3 -c 'import json,sys; print(json.load(sys.stdin)["job_id"])'
{"script": "#!/bin/bash\n$2\n", "job": {"name": "$NAME_A", "comment": "computenet hub=$HUB_ID uid=$UID_A attempt=$ATTEMPT job=$1/t-slurm-long",
 "current_working_directory": "$DIR_B", "standard_output": "t-slurm-forged-%j.out", "nodes": "1", "tasks": 1,
 "environment": {"PATH": "/usr/bin:/bin"}}}
EOT
}
forged_ignored() {
  local done_id running_id
  [ -n "$ID_LONG" ] || { echo "A's job records no Slurm job id"; return 1; }
  done_id=$(forge "$NS_A" true) || { echo "forged submit refused"; return 1; }
  running_id=$(forge "$NS_B" "sleep 60") || { echo "forged submit refused"; return 1; }
  wait_for 20 bash -c "scontrol show job $done_id | grep -q JobState=COMPLETED" || { echo "forged job $done_id did not complete"; return 1; }
  [ "$(squeue -h -j "$done_id" -o %u 2>/dev/null || job_field "$done_id" UserId)" != "$USER_A" ] || return 1
  sleep 8 # several polls (2 s) and reconciler passes (0.5 s) with both forgeries listed
  phase_is "$NS_A" t-slurm-long Running || { echo "A's job is $(field "$NS_A" t-slurm-long '{.status.phase}')"; return 1; }
  [ "$(slurm_id "$NS_A" t-slurm-long)" = "$ID_LONG" ] || { echo "A's recorded job id changed"; return 1; }
  [ "$(job_field "$running_id" JobState)" = RUNNING ] ||
    { echo "the forgery in B's namespace is $(job_field "$running_id" JobState): treated as A's duplicate"; return 1; }
  [ "$(job_field "$ID_LONG" JobState)" = RUNNING ] || { echo "A's own job is $(job_field "$ID_LONG" JobState)"; return 1; }
  scancel "$running_id"
}
check "slurm: a forged comment is ignored" forged_ignored

# --- A namespace with no mapping: never placed there, and the explanation says why.
not_placed() {
  local reason
  reason=$(field "$NS_C" t-slurm-job "{.status.explanation.rejected[?(@.cluster==\"$MEMBER\")].reason}")
  printf '%s' "$reason" | grep -q "no user mapped" || { echo "rejection: '$reason'"; return 1; }
  [ -z "$(field "$NS_C" t-slurm-job '{.status.placement.cluster}')" ] &&
    ! squeue -h -o %k | grep -q "job=$NS_C/"
}
check "slurm: a namespace with no mapping is not placed on the member" wait_for 20 not_placed
if [ "$FAILED" != 0 ]; then tail -30 "$tmp/serve.log" | sed 's/^/    serve: /'; fi
summary
