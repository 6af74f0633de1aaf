# Shared settings of the job-kind controller scripts (sourced by build.sh, start.sh, stop.sh,
# verify.sh and by up.sh/down.sh). Sources the test bed's lib.sh for RUN, PIDS, LOGS and the
# pid file helpers.
# shellcheck shell=bash disable=SC2034

JK=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=../lib.sh
source "$JK/../lib.sh"

# Pinned versions: read from the wrapper modules (go-*/go.mod), the single source of truth.
jk_modver() { # module go.mod-file -> version in a require line
  awk -v m="$1" '$1 == m && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$2"
}
JOBSET_MODULE=sigs.k8s.io/jobset
TRAINER_MODULE=github.com/kubeflow/trainer/v2
TRAINING_OPERATOR_MODULE=github.com/kubeflow/training-operator
JOBSET_VERSION=$(jk_modver "$JOBSET_MODULE" "$JK/go-jobset/go.mod")
TRAINER_VERSION=$(jk_modver "$TRAINER_MODULE" "$JK/go-trainer/go.mod")
TRAINING_OPERATOR_VERSION=$(jk_modver "$TRAINING_OPERATOR_MODULE" "$JK/go-training-operator/go.mod")

# Binary names double as pid file program names (<binary>@<member>.pid; /proc/PID/comm is
# checked against their first 15 characters before any signal).
JOBSET_BIN_NAME=jobset-controller
TRAINER_BIN_NAME=trainer-controller-manager
TRAINING_OPERATOR_BIN_NAME=training-operator
JK_BINARIES=("$JOBSET_BIN_NAME" "$TRAINER_BIN_NAME" "$TRAINING_OPERATOR_BIN_NAME")

# Ports on 127.0.0.1 (Trainer and Training Operator webhooks: all interfaces, they have no host
# flag). AI member i (odd) uses JK_PORT_BASE + 30 * (i - 1) / 2 + offset:
#   JobSet webhook +0, metrics +1, health +2; Trainer webhook +10, health +12 (metrics off);
#   Training Operator webhook +20, metrics +21, health +22.
# ai-1: 18400..18422, ai-3: 18430..18452, ai-5: 18460.., clear of the test bed's other ports.
JK_PORT_BASE=${TESTBED_JOBKINDS_PORT_BASE:-18400}
jk_member_base() { # member name (ai-N) -> its port base
  local i=${1##*-}
  echo $(( JK_PORT_BASE + 30 * ((i - 1) / 2) ))
}

# The cert rotator of Trainer and Training Operator needs these namespaces/Secrets in the member.
TRAINER_NS=kubeflow-system
TRAINER_SECRET=kubeflow-trainer-webhook-cert
TRAINING_OPERATOR_NS=kubeflow
TRAINING_OPERATOR_SECRET=training-operator-webhook-cert
# Webhook configurations created in each member (the two validator.* names are fixed: the
# rotators look them up by name to inject their CA).
JK_MUTATING_WEBHOOKS=(jobkinds-jobset-mutating)
JK_VALIDATING_WEBHOOKS=(jobkinds-jobset-validating validator.trainer.kubeflow.org validator.training-operator.kubeflow.org)

JK_CRD_NAMES=(jobsets.jobset.x-k8s.io trainjobs.trainer.kubeflow.org trainingruntimes.trainer.kubeflow.org
  clustertrainingruntimes.trainer.kubeflow.org pytorchjobs.kubeflow.org)

# Module directory in the Go module cache (downloaded from the proxy if missing).
jk_mod_dir() { (cd "$JK/$3" && go mod download -json "$1@$2") | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'; }

# jk_crd_files: the five CRD YAMLs, from the module cache (same versions as the binaries).
jk_crd_files() {
  local d
  d=$(jk_mod_dir "$JOBSET_MODULE" "$JOBSET_VERSION" go-jobset) || return 1
  echo "$d/config/components/crd/bases/jobset.x-k8s.io_jobsets.yaml"
  d=$(jk_mod_dir "$TRAINER_MODULE" "$TRAINER_VERSION" go-trainer) || return 1
  # one by one: the folder also holds a kustomization.yaml that kubectl apply -f dir/ rejects
  local f
  for f in trainjobs trainingruntimes clustertrainingruntimes; do echo "$d/manifests/base/crds/trainer.kubeflow.org_$f.yaml"; done
  d=$(jk_mod_dir "$TRAINING_OPERATOR_MODULE" "$TRAINING_OPERATOR_VERSION" go-training-operator) || return 1
  echo "$d/manifests/base/crds/kubeflow.org_pytorchjobs.yaml"
}

# jk_install_crds KUBECONFIG: server-side apply (the CRDs are too big for the last-applied
# annotation), then poll until Established (`kubectl wait --for=condition=Established` errors
# out right after creation, while .status.conditions is still unset).
jk_install_crds() {
  local kc=$1 f c i files
  files=$(jk_crd_files) || { echo "jobkinds: cannot locate the CRDs in the module cache" >&2; return 1; }
  for f in $files; do
    [ -s "$f" ] || { echo "jobkinds: missing CRD file $f" >&2; return 1; }
    kubectl --kubeconfig="$kc" apply --server-side --force-conflicts -f "$f" >/dev/null || return 1
  done
  for c in "${JK_CRD_NAMES[@]}"; do
    for i in $(seq 150); do
      [ "$(kubectl --kubeconfig="$kc" get crd "$c" -o 'jsonpath={.status.conditions[?(@.type=="Established")].status}' 2>/dev/null)" = True ] && break
      [ "$i" = 150 ] && { echo "jobkinds: CRD $c not Established after 30 s" >&2; return 1; }
      sleep 0.2
    done
  done
}
