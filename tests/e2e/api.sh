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
check "CRDs established" kubectl wait --for=condition=Established crd/trainingjobs.computenet.io crd/memberclusters.computenet.io crd/computequeues.computenet.io --timeout=30s
# Discovery and the published OpenAPI follow a new CRD within seconds: allow for that.
check "short names and category resolve" wait_for 30 bash -c 'kubectl get tj,mcl,cnq -A >/dev/null && kubectl get computenet -A >/dev/null'
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
check "printer columns are served" bash -c 'kubectl get cnq e2e-research -o wide | head -1 | grep -q "GPU USAGE/QUOTA" && kubectl get mcl e2e-ai | head -1 | grep -q "GPUS FREE/TOTAL" && kubectl get tj -n e2e-api | head -1 | grep -q "POSITION"'
kubectl delete mcl e2e-ai --ignore-not-found >/dev/null 2>&1
kubectl delete cnq e2e-research --ignore-not-found >/dev/null 2>&1
summary
