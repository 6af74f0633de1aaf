#!/usr/bin/env bash
# Check the job-kind controllers of a test bed started with up.sh --jobkinds: in a namespace
# that enforces Pod Security "restricted" on one AI member (default ai-3, else the first member
# with controllers), a tiny JobSet, a PyTorchJob (master + workers) and a TrainJob on a
# ClusterTrainingRuntime each run to completion on KWOK nodes; the hub has the five CRDs.
# Prints "ok - NAME" / "not ok - NAME", then "N passed, M failed"; exits 1 on failure.
# Deletes what it created (the namespace and the ClusterTrainingRuntime).
#
#   verify.sh [MEMBER]
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ ! -s "$RUN/env" ]; then echo "verify.sh: $RUN/env not found: run up.sh --jobkinds first" >&2; exit 1; fi
# shellcheck disable=SC1091
source "$RUN/env"
if [ "${JOBKINDS:-0}" != 1 ]; then echo "verify.sh: the test bed was not started with --jobkinds" >&2; exit 1; fi
M=${1:-}
if [ -z "$M" ]; then
  M=${JOBKINDS_MEMBERS%% *}
  [[ " $JOBKINDS_MEMBERS " == *" ai-3 "* ]] && M=ai-3
fi
kcv=$(env_prefix "$M")_KUBECONFIG
K=(kubectl --kubeconfig="${!kcv}")
HUB=(kubectl --kubeconfig="$HUB_KUBECONFIG")
NS=jobkinds-verify
RT=jobkinds-verify-torch

PASS=0 FAIL=0
OUT=$(mktemp -d)
exec 3>&1
note() { sed 's/^/#   /' >&3; }   # details worth seeing when a check passes too
cleanup() {
  "${K[@]}" delete namespace "$NS" --ignore-not-found --wait=false >/dev/null 2>&1
  "${K[@]}" delete clustertrainingruntime "$RT" --ignore-not-found >/dev/null 2>&1
  rm -rf "$OUT"
}
trap cleanup EXIT
check() { # name cmd...
  local name=$1
  shift
  if "$@" >"$OUT/out" 2>&1; then
    echo "ok - $name"; PASS=$((PASS + 1))
  else
    echo "not ok - $name"; FAIL=$((FAIL + 1))
    sed 's/^/#   /' "$OUT/out" | tail -n 25
  fi
}
# until_jsonpath TIMEOUT_S KIND/NAME JSONPATH VALUE: poll (-n $NS) until the value matches.
until_jsonpath() {
  local end=$(( $(date +%s) + $1 )) v
  while :; do
    v=$("${K[@]}" -n "$NS" get "$2" -o "jsonpath=$3" 2>&1)
    [ "$v" = "$4" ] && return 0
    if [ "$(date +%s)" -ge "$end" ]; then
      echo "$2: $3 = '$v' after $1 s (want '$4')"
      "${K[@]}" -n "$NS" get "$2" -o yaml | sed -n '/^status:/,$p'
      "${K[@]}" -n "$NS" get pods -o wide
      "${K[@]}" -n "$NS" get events --sort-by=.lastTimestamp | tail -n 10
      return 1
    fi
    sleep 0.5
  done
}
# Restricted-compliant security settings for every container and pod we write.
POD_SC='securityContext: {runAsNonRoot: true, runAsUser: 65534, seccompProfile: {type: RuntimeDefault}}'
CTR_SC='securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}, runAsNonRoot: true, runAsUser: 65534, seccompProfile: {type: RuntimeDefault}}'

echo "# member $M, namespace $NS (Pod Security enforce=restricted)"

hub_crds() {
  local c
  for c in "${JK_CRD_NAMES[@]}"; do
    echo "$c: $("${HUB[@]}" get crd "$c" -o 'jsonpath={.status.conditions[?(@.type=="Established")].status}')"
    [ "$("${HUB[@]}" get crd "$c" -o 'jsonpath={.status.conditions[?(@.type=="Established")].status}')" = True ] || return 1
  done
}
check "hub: the five CRDs are Established" hub_crds

restricted_ns() {
  "${K[@]}" delete namespace "$NS" --ignore-not-found --wait=true --timeout=60s || return 1
  "${K[@]}" create namespace "$NS" || return 1
  "${K[@]}" label namespace "$NS" pod-security.kubernetes.io/enforce=restricted \
    pod-security.kubernetes.io/enforce-version=latest || return 1
  # proof that enforcement is on: a plain pod is refused
  if "${K[@]}" -n "$NS" run plain --image=busybox --restart=Never --dry-run=server -o name 2>"$OUT/err"; then
    echo "a pod without securityContext was admitted"; return 1
  fi
  cat "$OUT/err"; grep -q 'violates PodSecurity "restricted' "$OUT/err"
}
check "namespace $NS enforces restricted (a plain pod is refused)" restricted_ns

# ---------------------------------------------------------------- JobSet: 1 leader + 2 workers
jobset_completes() {
  "${K[@]}" -n "$NS" apply -f - <<EOF || return 1
apiVersion: jobset.x-k8s.io/v1alpha2
kind: JobSet
metadata: {name: js-verify}
spec:
  replicatedJobs:
  - name: leader
    replicas: 1
    template:
      spec:
        parallelism: 1
        completions: 1
        backoffLimit: 0
        template:
          metadata: {annotations: {computenet.io/run-seconds: "2"}}
          spec:
            restartPolicy: Never
            $POD_SC
            containers:
            - name: leader
              image: busybox
              $CTR_SC
              resources: {limits: {nvidia.com/gpu: 1}}
  - name: workers
    replicas: 1
    template:
      spec:
        parallelism: 2
        completions: 2
        backoffLimit: 0
        template:
          metadata: {annotations: {computenet.io/run-seconds: "2"}}
          spec:
            restartPolicy: Never
            $POD_SC
            containers:
            - name: worker
              image: busybox
              $CTR_SC
              resources: {limits: {nvidia.com/gpu: 1}}
EOF
  until_jsonpath 90 jobset/js-verify '{.status.conditions[?(@.type=="Completed")].status}' True || return 1
  # defaulted by the JobSet mutating webhook (the CRD schema does not)
  echo "successPolicy.operator: $("${K[@]}" -n "$NS" get jobset js-verify -o 'jsonpath={.spec.successPolicy.operator}')"
  [ "$("${K[@]}" -n "$NS" get jobset js-verify -o 'jsonpath={.spec.successPolicy.operator}')" = All ] || return 1
  "${K[@]}" -n "$NS" get pods -l jobset.sigs.k8s.io/jobset-name=js-verify \
    -o 'custom-columns=POD:.metadata.name,PHASE:.status.phase,INIT:.spec.initContainers[*].name,CONTAINERS:.spec.containers[*].name' \
    | tee "$OUT/js-pods" | note
  [ "$(grep -c Succeeded "$OUT/js-pods")" -eq 3 ]
}
check "JobSet (1 leader + 2 workers, restricted pods) Completed; webhook defaulted successPolicy" jobset_completes

# ---------------------------------------------------------------- PyTorchJob: master + 2 workers
pytorchjob_succeeds() {
  # Its pods are owned by the PyTorchJob, not a Job: KWOK ends them only because of run-seconds.
  local r t
  {
    echo "apiVersion: kubeflow.org/v1"
    echo "kind: PyTorchJob"
    echo "metadata: {name: ptj-verify}"
    echo "spec:"
    echo "  runPolicy: {cleanPodPolicy: None}"
    echo "  pytorchReplicaSpecs:"
    for r in Master:1 Worker:2; do cat <<EOF
    ${r%:*}:
      replicas: ${r#*:}
      restartPolicy: Never
      template:
        metadata: {annotations: {computenet.io/run-seconds: "2"}}
        spec:
          $POD_SC
          containers:
          - name: pytorch
            image: pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime
            command: [torchrun, /workspace/train.py]
            $CTR_SC
            resources: {limits: {nvidia.com/gpu: 1}}
EOF
    done
  } | "${K[@]}" -n "$NS" apply -f - || return 1
  until_jsonpath 90 pytorchjob/ptj-verify '{.status.conditions[?(@.type=="Succeeded")].status}' True || return 1
  "${K[@]}" -n "$NS" get pods -l training.kubeflow.org/job-name=ptj-verify \
    -o 'custom-columns=POD:.metadata.name,PHASE:.status.phase,INIT:.spec.initContainers[*].name,CONTAINERS:.spec.containers[*].name' \
    | tee "$OUT/ptj-pods" | note
  [ "$(grep -c Succeeded "$OUT/ptj-pods")" -eq 3 ] || return 1
  # the operator's init container on the workers, and its security context
  t=$("${K[@]}" -n "$NS" get pod ptj-verify-worker-0 -o 'jsonpath={.spec.initContainers[?(@.name=="init-pytorch")].securityContext}')
  echo "worker init-pytorch securityContext: $t" | note
  [[ $t == *'"allowPrivilegeEscalation":false'* ]] && [[ $t == *'"ALL"'* ]]
}
check "PyTorchJob (master + 2 workers with init-pytorch, restricted) Succeeded" pytorchjob_succeeds

# ---------------------------------------------------------------- TrainJob on a ClusterTrainingRuntime
trainjob_completes() {
  "${K[@]}" apply -f - <<EOF || return 1
apiVersion: trainer.kubeflow.org/v1alpha1
kind: ClusterTrainingRuntime
metadata: {name: $RT}
spec:
  mlPolicy:
    numNodes: 1
    torch: {numProcPerNode: auto}
  template:
    spec:
      replicatedJobs:
      - name: node
        template:
          metadata:
            labels: {trainer.kubeflow.org/trainjob-ancestor-step: trainer}
          spec:
            template:
              metadata: {annotations: {computenet.io/run-seconds: "2"}}
              spec:
                $POD_SC
                containers:
                - name: node
                  image: pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime
                  command: [torchrun, /workspace/train.py]
                  $CTR_SC
EOF
  "${K[@]}" -n "$NS" apply -f - <<EOF || return 1
apiVersion: trainer.kubeflow.org/v1alpha1
kind: TrainJob
metadata: {name: tj-verify}
spec:
  runtimeRef: {apiGroup: trainer.kubeflow.org, kind: ClusterTrainingRuntime, name: $RT}
  trainer:
    numNodes: 2
    resourcesPerNode: {limits: {nvidia.com/gpu: 1}, requests: {nvidia.com/gpu: 1}}
EOF
  until_jsonpath 90 trainjob/tj-verify '{.status.conditions[?(@.type=="Complete")].status}' True || return 1
  echo "JobSet owner: $("${K[@]}" -n "$NS" get jobset tj-verify -o 'jsonpath={.metadata.ownerReferences[0].kind}')"
  "${K[@]}" -n "$NS" get pods -l jobset.sigs.k8s.io/jobset-name=tj-verify \
    -o 'custom-columns=POD:.metadata.name,PHASE:.status.phase,INIT:.spec.initContainers[*].name,CONTAINERS:.spec.containers[*].name' \
    | tee "$OUT/tj-pods" | note
  [ "$(grep -c Succeeded "$OUT/tj-pods")" -eq 2 ]
}
check "TrainJob (2 nodes on a ClusterTrainingRuntime, restricted) Complete through a JobSet" trainjob_completes

refused_without_runtime() {
  # the Trainer webhook refuses a TrainJob whose runtime does not exist
  if "${K[@]}" -n "$NS" create --dry-run=server -f - 2>&1 <<EOF; then return 1; fi
apiVersion: trainer.kubeflow.org/v1alpha1
kind: TrainJob
metadata: {name: tj-no-runtime}
spec:
  runtimeRef: {apiGroup: trainer.kubeflow.org, kind: ClusterTrainingRuntime, name: no-such-runtime}
EOF
  return 0
}
check "Trainer webhook refuses a TrainJob without its runtime" refused_without_runtime

no_forbidden_events() {
  # nothing the controllers tried to create was refused by Pod Security
  "${K[@]}" -n "$NS" get events -o 'custom-columns=REASON:.reason,OBJECT:.involvedObject.name,MESSAGE:.message' | tee "$OUT/ev" | grep -i -E 'forbidden|violates' && return 1
  return 0
}
check "no Pod Security refusals in the namespace's events" no_forbidden_events

delete_all() {
  "${K[@]}" -n "$NS" delete trainjob tj-verify --wait=true --timeout=60s &&
    "${K[@]}" -n "$NS" delete jobset js-verify --wait=true --timeout=60s &&
    "${K[@]}" -n "$NS" delete pytorchjob ptj-verify --wait=true --timeout=60s &&
    "${K[@]}" delete clustertrainingruntime "$RT" --wait=true --timeout=60s &&
    "${K[@]}" delete namespace "$NS" --wait=true --timeout=90s
}
check "delete TrainJob, JobSet, PyTorchJob, runtime and namespace" delete_all

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
