#!/usr/bin/env bash
# Smoke test of a running test bed (started by up.sh). Prints one "ok - NAME" or
# "not ok - NAME" line per check and a final "N passed, M failed"; exits 1 on failure.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ ! -s "$RUN/env" ]; then
  echo "smoke.sh: $RUN/env not found: start the test bed with up.sh first" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
# shellcheck disable=SC1091
source "$RUN/env"

PASS=0 FAIL=0
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
check() { # name cmd... : run cmd, report, keep its output for failures
  local name=$1
  shift
  if "$@" >"$OUT/out" 2>&1; then
    echo "ok - $name"; PASS=$((PASS + 1))
  else
    echo "not ok - $name"; FAIL=$((FAIL + 1))
    sed 's/^/#   /' "$OUT/out" | tail -n 20
  fi
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }

HUB=(kubectl --kubeconfig="$HUB_KUBECONFIG")
K8S_MEMBERS=() AI_MEMBER=
for m in $MEMBER_NAMES; do
  p=$(env_prefix "$m"); kind=${p}_KIND profile=${p}_PROFILE
  [ "${!kind}" = kubernetes ] && K8S_MEMBERS+=("$m")
  [ "${!kind}" = kubernetes ] && [ "${!profile}" = ai ] && [ -z "$AI_MEMBER" ] && AI_MEMBER=$m
done

# a. hub API and RBAC
# The list is read whole before grep -q looks at it: with pipefail, kubectl killed by
# SIGPIPE after an early match would fail the check.
hub_lists_namespaces() {
  local names
  names=$("${HUB[@]}" get namespaces -o name) || return 1
  echo "$names"
  grep -qx namespace/computenet-system <<<"$names"
}
hub_rbac_denies_unprivileged() {
  local a
  a=$("${HUB[@]}" auth can-i list secrets -n computenet-system --as=system:serviceaccount:default:nobody 2>&1)
  echo "can-i as unprivileged user: $a"
  [ "$a" = no ] && [ "$("${HUB[@]}" auth can-i '*' '*' 2>&1)" = yes ]
}
check "hub: kubectl lists namespaces" hub_lists_namespaces
check "hub: RBAC on (unprivileged user is denied, admin allowed)" hub_rbac_denies_unprivileged

# e. member secrets in the hub
hub_secrets() {
  local m want=()
  for m in "${K8S_MEMBERS[@]}"; do want+=("$m-kubeconfig"); done
  [ -n "${SLURMRESTD_URL:-}" ] && want+=(slurm-token slurm-jwt-key)
  for s in "${want[@]}"; do
    "${HUB[@]}" -n computenet-system get secret "$s" -o name || return 1
  done
  # a member kubeconfig from the hub secret really reaches that member
  for m in "${K8S_MEMBERS[@]}"; do
    "${HUB[@]}" -n computenet-system get secret "$m-kubeconfig" -o jsonpath='{.data.kubeconfig}' |
      base64 -d > "$OUT/kc-$m"
    kubectl --kubeconfig="$OUT/kc-$m" get --raw=/readyz || return 1
  done
  if [ -n "${SLURMRESTD_URL:-}" ]; then
    [ "$("${HUB[@]}" -n computenet-system get secret slurm-token -o jsonpath='{.data.token}' | base64 -d)" = "$SLURM_USER_TOKEN" ] &&
      [ "$("${HUB[@]}" -n computenet-system get secret slurm-token -o jsonpath='{.data.user}' | base64 -d)" = "$SLURM_USER_NAME" ] &&
      "${HUB[@]}" -n computenet-system get secret slurm-jwt-key -o jsonpath='{.data.jwt_hs256\.key}' | base64 -d | cmp - "$SLURM_JWT_KEY_FILE"
  fi
}
check "hub: member secrets (${K8S_MEMBERS[*]}${SLURMRESTD_URL:+ slurm}) present and usable" hub_secrets

# b. Jobs on KWOK GPU nodes in the AI member
if [ -n "$AI_MEMBER" ]; then
  p=$(env_prefix "$AI_MEMBER"); kc=${p}_KUBECONFIG
  M=(kubectl --kubeconfig="${!kc}")
  NS=smoke-$$-$RANDOM
  job_manifest() { # name completions annotations
    cat <<EOF
apiVersion: batch/v1
kind: Job
metadata:
  name: $1
  namespace: $NS
spec:
  completions: $2
  parallelism: $2
  backoffLimit: 0
  template:
    metadata:
      annotations: {$3}
    spec:
      restartPolicy: Never
      nodeSelector:
        nvidia.com/gpu.product: H800
      tolerations:
      - key: kwok.x-k8s.io/node
        operator: Exists
        effect: NoSchedule
      containers:
      - name: train
        image: registry.invalid/train:latest
        resources:
          requests: {cpu: "1", memory: 1Gi, nvidia.com/gpu: "1"}
          limits: {nvidia.com/gpu: "1"}
EOF
  }
  gpu_job_completes() {
    "${M[@]}" create namespace "$NS" >/dev/null || return 1
    job_manifest gpu-ok 2 '"computenet.io/run-seconds": "2"' | "${M[@]}" create -f - || return 1
    "${M[@]}" -n "$NS" wait --for=condition=complete job/gpu-ok --timeout=60s || {
      "${M[@]}" -n "$NS" get job,pods -o wide; return 1; }
    "${M[@]}" -n "$NS" get pods -l job-name=gpu-ok -o custom-columns=POD:.metadata.name,NODE:.spec.nodeName,PHASE:.status.phase --no-headers > "$OUT/pods"
    cat "$OUT/pods"
    [ "$(wc -l < "$OUT/pods")" -eq 2 ] || return 1
    local node
    # shellcheck disable=SC2013
    for node in $(awk '{print $2}' "$OUT/pods"); do
      "${M[@]}" get node "$node" -o jsonpath='{.metadata.annotations.kwok\.x-k8s\.io/node} {.metadata.labels.nvidia\.com/gpu\.product} {.status.allocatable.nvidia\.com/gpu}{"\n"}' |
        grep -qx 'fake H800 8' || { echo "pod on unexpected node $node"; return 1; }
    done
  }
  gpu_job_fails() {
    job_manifest gpu-fail 1 '"computenet.io/fail": "true", "computenet.io/exit-code": "3"' | "${M[@]}" create -f - || return 1
    "${M[@]}" -n "$NS" wait --for=condition=failed job/gpu-fail --timeout=60s || {
      "${M[@]}" -n "$NS" get job,pods -o wide; return 1; }
    "${M[@]}" -n "$NS" get pods -l job-name=gpu-fail -o jsonpath='{.items[0].status.containerStatuses[0].state.terminated.exitCode}' | grep -qx 3
  }
  jobs_deleted_with_pods() {
    "${M[@]}" -n "$NS" delete job gpu-ok gpu-fail --wait=true --timeout=30s || return 1
    for _ in $(seq 100); do
      [ -z "$("${M[@]}" -n "$NS" get pods -o name 2>/dev/null)" ] && break
      sleep 0.2
    done
    [ -z "$("${M[@]}" -n "$NS" get pods -o name)" ] || { "${M[@]}" -n "$NS" get pods; return 1; }
    "${M[@]}" delete namespace "$NS" --wait=false >/dev/null
  }
  check "$AI_MEMBER: GPU Job (2 x nvidia.com/gpu=1 on H800) completes on KWOK nodes" gpu_job_completes
  check "$AI_MEMBER: Job with a failing pod (computenet.io/fail) reaches Failed" gpu_job_fails
  check "$AI_MEMBER: deleting Jobs removes their pods" jobs_deleted_with_pods
else
  echo "# no AI member (--members 0): Job checks skipped"
fi

# c. Slurm job through slurmrestd
if [ -n "${SLURMRESTD_URL:-}" ]; then
  API=$SLURMRESTD_URL/slurm/$SLURM_API_VERSION
  H=(-H "X-SLURM-USER-NAME: $SLURM_USER_NAME" -H "X-SLURM-USER-TOKEN: $SLURM_USER_TOKEN")
  slurm_job_completes() {
    local body jid st
    body=$(cat <<EOF
{"script": "#!/bin/bash\necho start \$(hostname) gpus=\$CUDA_VISIBLE_DEVICES\nsleep 1\necho done",
 "job": {"name": "smoke", "nodes": "2", "tasks": 2, "cpus_per_task": 2, "memory_per_node": 1024,
         "gres": "gpu:2", "time_limit": 5,
         "current_working_directory": "$SLURM_JOB_DIR", "standard_output": "$SLURM_JOB_DIR/%j.out",
         "environment": {"PATH": "/usr/bin:/bin"}}}
EOF
)
    jid=$(curl -sS -m 10 "${H[@]}" -H 'Content-Type: application/json' -X POST "$API/job/submit" --data "$body" |
      tee "$OUT/submit" | json 'print(d["job_id"])') || { cat "$OUT/submit"; return 1; }
    echo "job_id=$jid"
    for _ in $(seq 150); do
      st=$(curl -sS -m 10 "${H[@]}" "$API/job/$jid" | json 'j=d["jobs"][0]; print(j["job_state"], j["nodes"], j["gres_detail"])')
      case $st in
        COMPLETED*) echo "$st"; return 0 ;;
        FAILED*|CANCELLED*|TIMEOUT*|NODE_FAIL*|OUT_OF_MEMORY*|BOOT_FAIL*|DEADLINE*) echo "$st"; cat "$SLURM_JOB_DIR/$jid.out"; return 1 ;;
      esac
      sleep 0.2
    done
    echo "still $st after 30 s"; return 1
  }
  check "slurm: job via slurmrestd (2 nodes, gres gpu:2) reaches COMPLETED" slurm_job_completes
fi

# d. Prometheus
if [ -n "${PROMETHEUS_URL:-}" ]; then
  prom_query() {
    curl -sS -m 10 "$PROMETHEUS_URL/api/v1/query?query=up" | tee "$OUT/prom" |
      json 'assert d["status"] == "success", d; print(len(d["data"]["result"]), "series")'
  }
  check "prometheus: instant query up returns success" prom_query
fi

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
