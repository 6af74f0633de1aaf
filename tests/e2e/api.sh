#!/usr/bin/env bash
# The computenet.io/v1alpha1 API on a real kube-apiserver (the test bed's hub), driven with
# kubectl: the generated CRDs install, valid objects are accepted, invalid ones are refused
# with a clear message, and a TrainingJob's spec is frozen once admitted (except suspend).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck disable=SC1091
. "$root/tests/testbed/run/env"
export KUBECONFIG=$HUB_KUBECONFIG
tmp=$(mktemp -d); trap 'rm -rf "$tmp"; kubectl delete ns e2e-api --ignore-not-found --wait=false >/dev/null 2>&1' EXIT

check "CRDs apply" kubectl apply -f "$root/deploy/crds/"
check "CRDs established" kubectl wait --for=condition=Established crd/trainingjobs.computenet.io crd/memberclusters.computenet.io crd/computequeues.computenet.io crd/computecohorts.computenet.io --timeout=30s
# Discovery and the published OpenAPI follow a new CRD within seconds: allow for that.
check "short names and category resolve" wait_for 30 bash -c 'kubectl get tj,mcl,cnq,cnc -A >/dev/null && kubectl get computenet -A >/dev/null'
check "kubectl explain shows field docs" wait_for 30 bash -c 'kubectl explain trainingjob.spec.replicas | grep -q "all or nothing"'
kubectl create namespace e2e-api >/dev/null 2>&1

job() { # job NAME EXTRA_SPEC_YAML
  cat > "$tmp/$1.yaml" <<EOT
apiVersion: computenet.io/v1alpha1
kind: TrainingJob
metadata: {name: $1, namespace: e2e-api}
spec:
  queueName: research
  replicas: 2
  resources: {cpu: "8", memory: 64Gi, accelerators: {count: 8, types: [A100-80G, H800]}}
  workload: {image: example/bert:1.0, command: ["torchrun", "train.py"]}
$2
EOT
  echo "$tmp/$1.yaml"
}
check "a valid TrainingJob is accepted" kubectl apply -f "$(job good '  work: {model: bert, steps: 100000}
  placement: {clusterKinds: [AI, HPC], dataSet: city-corpus, objective: Balanced}
  maxRunSeconds: 86400')"
check "defaults are filled in" bash -c '[ "$(kubectl get tj good -n e2e-api -o jsonpath="{.spec.placement.objective} {.spec.priority} {.spec.suspend}")" = "Balanced 0 false" ]'
refused "replicas must be at least 1" "spec.replicas.*greater than or equal to 1" "$(job zero '' | xargs sed -i 's/replicas: 2/replicas: 0/' ; echo "$tmp/zero.yaml")"
refused "objective is an enum" 'Unsupported value: "Quickest"' "$(job enum '  placement: {objective: Quickest}')"
refused "model and gpuHours are exclusive" "either model and steps, or gpuHours" "$(job both '  work: {model: bert, steps: 10, gpuHours: 3}')"
refused "model needs steps" "model and steps go together" "$(job nosteps '  work: {model: bert}')"
refused "negative gpuHours" "gpuHours.*greater than or equal to 0" "$(job neg '  work: {gpuHours: -1}')"
refused "maxRunSeconds is positive" "maxRunSeconds.*greater than or equal to 1" "$(job norun '  maxRunSeconds: 0')"
refused "accelerator count is positive" "count.*greater than or equal to 1" "$(job nogpu '' | xargs sed -i 's/count: 8/count: 0/'; echo "$tmp/nogpu.yaml")"

# Bounds on every number and a pattern on quantity strings: what the scheduler could not
# read (or would read wrongly) never gets stored.
jobsed() { # jobsed NAME SED_EXPR [EXTRA_SPEC_YAML]: a job with its lines edited by sed
  local f; f=$(job "$1" "${3:-}"); sed -i "$2" "$f"; echo "$f"
}
check "memory as plain bytes beyond int32 is accepted" kubectl apply -f "$(jobsed bytes 's/memory: 64Gi/memory: 68719476736/')"
check "a CPU count as an integer is accepted" kubectl apply -f "$(jobsed intcpu 's/cpu: "8"/cpu: 8/')"
refused "a quantity with a leading space" 'spec.resources.cpu.*should match' "$(jobsed space 's/cpu: "8"/cpu: " 8"/')"
refused "a quantity with a trailing space" 'spec.resources.cpu.*should match' "$(jobsed trail 's/cpu: "8"/cpu: "8 "/')"
refused "a quantity with an unknown suffix" 'spec.resources.memory.*should match' "$(jobsed suffix 's/memory: 64Gi/memory: 8x/')"
refused "a quantity with signs" 'spec.resources.memory.*should match' "$(jobsed signs 's/memory: 64Gi/memory: "+-8"/')"
refused "a quantity with an exponent" 'spec.resources.memory.*should match' "$(jobsed exp 's/memory: 64Gi/memory: "1e400"/')"
refused "a negative integer quantity" 'spec.resources.memory.*greater than or equal to 0' "$(jobsed negmem 's/memory: 64Gi/memory: -1/')"
refused "an integer quantity beyond 2^53" 'spec.resources.memory.*less than or equal to 9007199254740991' "$(jobsed hugemem 's/memory: 64Gi/memory: 9007199254740992/')"
refused "a very long quantity string" 'spec.resources.cpu.*may not be (longer|more) than 32' "$(jobsed longcpu 's/cpu: "8"/cpu: "000000000000000000000000000000008"/')"
refused "priority above its maximum" 'spec.priority.*less than or equal to 1000000000' "$(job prihigh '  priority: 1000000001')"
refused "priority below its minimum" 'spec.priority.*greater than or equal to -1000000' "$(job prilow '  priority: -1000001')"
refused "replicas above their maximum" 'spec.replicas.*less than or equal to 4096' "$(jobsed manyrep 's/replicas: 2/replicas: 4097/')"
refused "accelerator count above its maximum" 'count.*less than or equal to 64' "$(jobsed manygpu 's/count: 8/count: 65/')"
refused "minMemoryGiB above its maximum" 'minMemoryGiB.*less than or equal to 4096' "$(jobsed bigmem 's/count: 8,/count: 8, minMemoryGiB: 4097,/')"
refused "gpuHours above its maximum" 'gpuHours.*less than or equal to 1e\+07' "$(job hours '  work: {gpuHours: 1e300}')"
refused "steps above their maximum" 'steps.*less than or equal to 1000000000000' "$(job steps '  work: {model: bert, steps: 1000000000001}')"
refused "batchSize above its maximum" 'batchSize.*less than or equal to 10000000' "$(job batch '  work: {model: bert, steps: 10, batchSize: 10000001}')"
refused "maxRunSeconds above ten years" 'maxRunSeconds.*less than or equal to 315360000' "$(job longrun '  maxRunSeconds: 315360001')"
refused "an env name with =" 'env\[0\].name.*should match' "$(jobsed enveq 's/command: \["torchrun", "train.py"\]}/command: ["torchrun", "train.py"], env: [{name: "A=B", value: x}]}/')"
refused "an env name starting with a digit" 'env\[0\].name.*should match' "$(jobsed envdigit 's/command: \["torchrun", "train.py"\]}/command: ["torchrun", "train.py"], env: [{name: 1A, value: x}]}/')"

# Elastic and restartable jobs (the job has replicas: 2).
check "an elastic, restartable job is accepted" kubectl apply -f "$(job adaptive '  elastic: {minReplicas: 1, maxReplicas: 4}
  checkpoint: {restartable: true}')"
check "checkpoint defaults are filled in" bash -c '[ "$(kubectl get tj adaptive -n e2e-api -o jsonpath="{.spec.checkpoint.gracePeriodSeconds} {.spec.checkpoint.restartCostSeconds}")" = "30 60" ]'
refused "elastic min above max" "minReplicas must be at most elastic.maxReplicas" "$(job minmax '  elastic: {minReplicas: 3, maxReplicas: 2}')"
refused "replicas outside the elastic range" "spec.replicas must lie within spec.elastic" "$(job outside '  elastic: {minReplicas: 3, maxReplicas: 8}')"
refused "elastic maxReplicas above 4096" 'maxReplicas.*less than or equal to 4096' "$(job bigelastic '  elastic: {minReplicas: 1, maxReplicas: 4097}')"
refused "gracePeriodSeconds above an hour" 'gracePeriodSeconds.*less than or equal to 3600' "$(job grace '  checkpoint: {restartable: true, gracePeriodSeconds: 3601}')"
refused "a negative restartCostSeconds" 'restartCostSeconds.*greater than or equal to 0' "$(job cost '  checkpoint: {restartable: true, restartCostSeconds: -1}')"
kubectl patch tj adaptive -n e2e-api --subresource=status --type=merge -p '{"status":{"admitted":true,"phase":"Admitted"}}' >/dev/null
check "the elastic range is frozen after admission" bash -c 'kubectl patch tj adaptive -n e2e-api --type=merge -p "{\"spec\":{\"elastic\":{\"maxReplicas\":8}}}" 2>&1 | grep -q "spec is frozen once the job is admitted"'
check "checkpointing is frozen after admission" bash -c 'kubectl patch tj adaptive -n e2e-api --type=json -p "[{\"op\":\"remove\",\"path\":\"/spec/checkpoint\"}]" 2>&1 | grep -q "spec is frozen once the job is admitted"'

# Frozen after admission: the scheduler marks status.admitted; then only suspend may change.
kubectl patch tj good -n e2e-api --subresource=status --type=merge -p '{"status":{"admitted":true,"phase":"Admitted"}}' >/dev/null
check "spec changes are refused after admission" bash -c '! kubectl patch tj good -n e2e-api --type=merge -p "{\"spec\":{\"replicas\":4}}" 2>&1 | grep -q patched'
check "the refusal says why" bash -c 'kubectl patch tj good -n e2e-api --type=merge -p "{\"spec\":{\"replicas\":4}}" 2>&1 | grep -q "spec is frozen once the job is admitted"'
check "suspend may change after admission" kubectl patch tj good -n e2e-api --type=merge -p '{"spec":{"suspend":true}}'

member() { # member NAME SPEC_YAML
  printf 'apiVersion: computenet.io/v1alpha1\nkind: MemberCluster\nmetadata: {name: %s}\nspec:\n%s\n' "$1" "$2" > "$tmp/m-$1.yaml"
  echo "$tmp/m-$1.yaml"
}
check "a Kubernetes member is accepted" kubectl apply -f "$(member e2e-ai '  kind: AI
  site: west
  kubernetes: {kubeconfigSecretRef: {name: ai-west-kubeconfig, namespace: computenet-system, key: kubeconfig}, namespace: computenet-jobs}
  efficiency: {pue: 1.25, energyPricePerKWh: 0.62}
  dataSets: [city-corpus]')"
refused "a member needs exactly one connection" "exactly one connection" "$(member e2e-none '  kind: AI
  site: west')"
refused "both connections are refused" "exactly one connection" "$(member e2e-both '  kind: HPC
  site: west
  kubernetes: {kubeconfigSecretRef: {name: a, namespace: b, key: c}}
  slurm: {endpoint: "http://127.0.0.1:6820", userName: u, tokenSecretRef: {name: a, namespace: b, key: c}}')"
refused "PUE below 1 is refused" "pue.*greater than or equal to 1" "$(member e2e-pue '  kind: AI
  site: west
  kubernetes: {kubeconfigSecretRef: {name: a, namespace: b, key: c}}
  efficiency: {pue: 0.5}')"
refused "member kind is an enum" 'Unsupported value: "Quantum"' "$(member e2e-kind '  kind: Quantum
  site: west
  kubernetes: {kubeconfigSecretRef: {name: a, namespace: b, key: c}}')"
check "a queue is accepted" kubectl apply -f - <<'EOT'
apiVersion: computenet.io/v1alpha1
kind: ComputeQueue
metadata: {name: e2e-research}
spec:
  namespaceSelector: {matchLabels: {computenet.io/tenant: research}}
  cohort: city
  weight: 1
  quotas: [{resource: nvidia.com/gpu, nominal: 64, borrowingLimit: 32}]
EOT
refused "a quota with a leading space" 'nominal.*should match' - <<'EOT'
apiVersion: computenet.io/v1alpha1
kind: ComputeQueue
metadata: {name: e2e-bad-quota}
spec:
  quotas: [{resource: cpu, nominal: " 8"}]
EOT
refused "a negative borrowing limit" 'borrowingLimit.*greater than or equal to 0' - <<'EOT'
apiVersion: computenet.io/v1alpha1
kind: ComputeQueue
metadata: {name: e2e-bad-quota}
spec:
  quotas: [{resource: nvidia.com/gpu, nominal: 8, borrowingLimit: -1}]
EOT
refused "an accelerator peak above its maximum" 'peakTflops.*less than or equal to' "$(member e2e-peak '  kind: AI
  site: west
  kubernetes: {kubeconfigSecretRef: {name: a, namespace: b, key: c}}
  efficiency: {accelerators: {A100: {peakTflops: 1e300, boardPowerW: 400, memoryGiB: 80}}}')"
check "printer columns are served" bash -c 'kubectl get cnq e2e-research -o wide | head -1 | grep -q "GPU USAGE/QUOTA" && kubectl get mcl e2e-ai | head -1 | grep -q "GPUS FREE/TOTAL" && kubectl get tj -n e2e-api | head -1 | grep -q "POSITION"'
kubectl delete mcl e2e-ai --ignore-not-found >/dev/null 2>&1
kubectl delete cnq e2e-research --ignore-not-found >/dev/null 2>&1
summary
