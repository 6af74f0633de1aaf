#!/usr/bin/env bash
# Researchers' own job kinds, end to end: a JobSet (a launcher and 4 workers x 8 GPUs), a
# Kubeflow TrainJob and a PyTorchJob, each created in the hub with the label
# computenet.io/queue-name, are
# - held: the service's admission webhook (registered by URL in the hub) stores them suspended;
# - queued as a TrainingJob named <kind>-<name>, placed on the member the core picks, and
#   explained (`kubectl computenet explain jobset/NAME`);
# - run there by the member's real controller (JobSet v0.10.1, Trainer v2.0.0, Training
#   Operator v1.8.1, from tests/testbed/up.sh --jobkinds), on KWOK nodes;
# - mirrored back: the hub object's status shows the member's (Completed / Complete /
#   Succeeded), the TrainingJob Succeeded; the member's copy is then deleted.
# Also: deleting a finished JobSet's TrainingJob does not queue it again; a JobSet over its
# queue's GPU quota waits with the quota reason; a tenant's forged TrainingJob naming that
# JobSet as its source (1 replica, another queue) is refused at dispatch; a JobSet asking
# for the host network is not queued (a Warning Event names the field); deleting a running
# JobSet in the hub deletes the member's copy; a JobSet without the label is left alone; a
# PyTorchJob that may only go to the Slurm member is explained (Slurm runs only
# TrainingJobs).
#
# Needs the test bed (tests/testbed/up.sh --members 3 --gpu-nodes 8 --no-taint --jobkinds)
# and cargo build -p computenet -p kubectl-computenet. Ports 18320 (HTTP), 18321 (webhook).
# About 2 minutes.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$here/lib.sh"
use_testbed
[ "${JOBKINDS:-0}" = 1 ] || { echo "the test bed runs no job-kind controllers: up.sh --jobkinds" >&2; exit 1; }
tmp=$(mktemp -d)
NS=jk
QUEUE=jk-q SMALL=jk-small
W=jk-w E=jk-e
MEMBER_PREFIX=jk-jobs
MEMBER_NS=$MEMBER_PREFIX-$NS
PORT=18320 HOOK_PORT=18321
PLUGIN=${KUBECTL_COMPUTENET:-$root/target/debug/kubectl-computenet}
SERVE_PID=''
kc() { case $1 in "$W") shift; KUBECONFIG=$AI_1_KUBECONFIG kubectl "$@" ;; *) shift; KUBECONFIG=$AI_3_KUBECONFIG kubectl "$@" ;; esac; }

cleanup() {
  [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null
  kubectl delete mutatingwebhookconfiguration computenet-jobkinds-test --ignore-not-found >/dev/null 2>&1
  kubectl delete secret jk-webhook-cert -n computenet-system --ignore-not-found >/dev/null 2>&1
  kubectl get tj -n "$NS" -o name 2>/dev/null | xargs -r kubectl patch -n "$NS" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
  kubectl delete ns "$NS" --wait=false >/dev/null 2>&1
  kubectl delete cnq "$QUEUE" "$SMALL" --ignore-not-found >/dev/null 2>&1
  kubectl delete mcl "$W" "$E" jk-slurm --ignore-not-found >/dev/null 2>&1
  kubectl delete lease jk-leader -n computenet-system --ignore-not-found >/dev/null 2>&1
  kc "$W" delete ns "$MEMBER_NS" --wait=false >/dev/null 2>&1
  kc "$E" delete ns "$MEMBER_NS" --wait=false >/dev/null 2>&1
  if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

kubectl apply --server-side --force-conflicts -f "$root/deploy/crds/" >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=30s >/dev/null
wait_for 90 bash -c "! kubectl get ns $NS >/dev/null 2>&1" || { echo "namespace $NS still terminating" >&2; exit 1; }

# The members' namespaces enforce Pod Security `restricted` (the default): computenet fills
# in what the copies' pod templates leave unset, and the test bed's Training Operator adds
# a compliant init container to PyTorchJob workers.
{ tenant_queue "$NS" jk "$QUEUE" 200; cat <<EOT
---
apiVersion: computenet.io/v1alpha1
kind: ComputeQueue
metadata: {name: $SMALL}
spec:
  namespaceSelector: {matchLabels: {computenet.io/tenant: jk}}
  quotas: [{resource: nvidia.com/gpu, nominal: 8}]
EOT
  for m in "$W:ai-1" "$E:ai-3"; do cat <<EOT
---
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: ${m%%:*}}
spec:
  kind: AI
  site: ${m%%:*}
  kubernetes: {kubeconfigSecretRef: {name: ${m##*:}-kubeconfig, namespace: computenet-system, key: kubeconfig}, namespace: $MEMBER_PREFIX}
  efficiency: {pue: 1.2, energyPricePerKWh: 0.5}
EOT
  done
  echo "---"
  slurm_member jk-slurm jk-slurm
} | kubectl apply -f - >/dev/null || { echo "setup failed" >&2; exit 1; }

# The runtime TrainJobs refer to, in the hub (for the gang) and on both members (for Trainer).
runtime() {
  cat <<'EOT'
apiVersion: trainer.kubeflow.org/v1alpha1
kind: ClusterTrainingRuntime
metadata:
  name: jk-torch
  labels: {trainer.kubeflow.org/framework: torch}
spec:
  mlPolicy: {numNodes: 1, torch: {numProcPerNode: auto}}
  template:
    spec:
      replicatedJobs:
      - name: node
        template:
          metadata:
            labels: {trainer.kubeflow.org/trainjob-ancestor-step: trainer}
          spec:
            template:
              metadata:
                annotations: {computenet.io/run-seconds: "8"}
              spec:
                securityContext: {runAsNonRoot: true, runAsUser: 65534, seccompProfile: {type: RuntimeDefault}}
                containers:
                - name: node
                  image: example/torch:2.5
                  command: [torchrun, train.py]
                  securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
EOT
}
for k in "$HUB_KUBECONFIG" "$AI_1_KUBECONFIG" "$AI_3_KUBECONFIG"; do runtime | KUBECONFIG=$k kubectl apply -f - >/dev/null; done

# The webhook, registered by URL (the service runs on this host), without a caBundle: the
# service makes its certificate (for 127.0.0.1) and writes the CA in.
kubectl delete secret jk-webhook-cert -n computenet-system --ignore-not-found >/dev/null 2>&1
cat <<EOT | kubectl apply -f - >/dev/null
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: computenet-jobkinds-test}
webhooks:
- name: hold.computenet.io
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Fail
  timeoutSeconds: 5
  clientConfig: {url: "https://127.0.0.1:$HOOK_PORT/mutate"}
  objectSelector: {matchExpressions: [{key: computenet.io/queue-name, operator: Exists}]}
  namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: $NS}}
  rules:
  - {apiGroups: [jobset.x-k8s.io], apiVersions: ["*"], resources: [jobsets], operations: [CREATE, UPDATE]}
  - {apiGroups: [trainer.kubeflow.org], apiVersions: ["*"], resources: [trainjobs], operations: [CREATE, UPDATE]}
  - {apiGroups: [kubeflow.org], apiVersions: ["*"], resources: [pytorchjobs], operations: [CREATE, UPDATE]}
$(finalize_webhook "$HOOK_PORT" "$NS")
EOT

COMPUTENET_TEST_NAMESPACE_PREFIX=jk setsid "$BIN" serve --kubeconfig "$HUB_KUBECONFIG" --interval-ms 500 \
  --no-leader-election --hub-id jk --listen "127.0.0.1:$PORT" --web-auth none \
  --webhook-listen "127.0.0.1:$HOOK_PORT" --webhook-hosts 127.0.0.1 --webhook-cert-secret jk-webhook-cert \
  --webhook-configuration computenet-jobkinds-test >> "$tmp/serve.log" 2>&1 &
SERVE_PID=$!
check "the service is ready" wait_for 60 curl -sf "http://127.0.0.1:$PORT/readyz"
check "the service sees the job kinds in the hub" wait_for 30 grep -q 'job kinds queued by the label' "$tmp/serve.log"
check "the service made the webhook certificate and wrote its CA into the configuration" bash -c "
  kubectl get secret jk-webhook-cert -n computenet-system -o jsonpath='{.data.ca\\.crt}' | base64 -d > $tmp/ca.crt &&
  [ \"\$(kubectl get mutatingwebhookconfiguration computenet-jobkinds-test -o jsonpath='{.webhooks[0].clientConfig.caBundle}' | base64 -d)\" = \"\$(cat $tmp/ca.crt)\" ]"

# jobset NAME QUEUE RUN_SECONDS [LABELLED]: a launcher and 4 workers x 8 GPUs.
jobset() {
  local labels="{computenet.io/queue-name: $2}"
  [ "${4:-1}" = 1 ] || labels="{app: plain}"
  cat <<EOT
apiVersion: jobset.x-k8s.io/v1alpha2
kind: JobSet
metadata:
  name: $1
  namespace: $NS
  labels: $labels
  annotations: {computenet.io/gpu-hours: "64", computenet.io/objective: Fastest}
spec:
  replicatedJobs:
  - name: launcher
    replicas: 1
    template:
      spec:
        parallelism: 1
        completions: 1
        template:
          metadata: {annotations: {computenet.io/run-seconds: "$3"}}
          spec:
            restartPolicy: Never
            containers:
            - {name: launcher, image: example/launcher:1.0, resources: {requests: {cpu: "1", memory: 1Gi}}}
  - name: workers
    replicas: 1
    template:
      spec:
        parallelism: 4
        completions: 4
        template:
          metadata: {annotations: {computenet.io/run-seconds: "$3"}}
          spec:
            restartPolicy: Never
            containers:
            - name: worker
              image: example/train:1.0
              resources: {requests: {cpu: "4", memory: 16Gi, nvidia.com/gpu: "8"}, limits: {nvidia.com/gpu: "8"}}
EOT
}

field() { kubectl get "$1" -n "$NS" -o jsonpath="$2" 2>/dev/null; }
member_of() { field "tj/$1" '{.status.placement.cluster}'; }
export -f field is kc member_of
export NS W E AI_1_KUBECONFIG AI_3_KUBECONFIG

# lifecycle WHAT KIND NAME SUSPEND_FIELD POD_LABEL PODS DONE: the object is held and
# queued as 4 x 8 GPUs, admitted to a member, run there by its controller (at least PODS
# pods labelled POD_LABEL=NAME), mirrored back (condition DONE=True, its TrainingJob
# Succeeded), and its copy deleted from the member.
lifecycle() {
  local what=$1 kind=$2 name=$3 suspend=$4 label=$5 pods=$6 done=$7 tj="$2-$3" member
  check "the $what is stored suspended and queued as 4 x 8 GPUs" wait_show 30 bash -c "
    is \"\$(field $kind/$name '{$suspend}')\" true &&
    is \"\$(field tj/$tj '{.spec.replicas} {.spec.resources.accelerators.count}')\" '4 8'"
  check "the $what is admitted to a member" wait_show 60 bash -c "[ -n \"\$(member_of $tj)\" ]"
  member=$(member_of "$tj")
  check "the member's controller runs the $what ($pods pods)" wait_show 60 bash -c "
    [ \"\$(kc $member get pods -n $MEMBER_NS -l $label=$name -o name | wc -l)\" -ge $pods ]"
  check "the hub $what shows $done (mirrored) and its TrainingJob Succeeded" wait_show 90 bash -c "
    is \"\$(field $kind/$name '{.status.conditions[?(@.type==\"$done\")].status}')\" True &&
    is \"\$(field tj/$tj '{.status.phase}')\" Succeeded"
  check "the member's $what is deleted once mirrored" wait_show 60 bash -c \
    "! kc $member get $kind $name -n $MEMBER_NS >/dev/null 2>&1"
}

# --- JobSet
jobset js-demo "$QUEUE" 8 | kubectl apply -f - >/dev/null
check "the JobSet is stored suspended by the webhook (generation 1: no later patch)" is "$(field jobset/js-demo '{.spec.suspend} {.metadata.generation}')" 'true 1'
check "its TrainingJob queues 4 x 8 GPUs, the launcher's CPU spread over them" wait_show 30 bash -c \
  "is \"\$(field tj/jobset-js-demo '{.spec.replicas} {.spec.resources.accelerators.count} {.spec.resources.cpu} {.spec.source.kind}')\" '4 8 4250m JobSet'"
check "it is admitted to a member" wait_show 60 bash -c "[ -n \"\$(member_of jobset-js-demo)\" ]"
JS_MEMBER=$(member_of jobset-js-demo)
check "explain jobset/js-demo names the member and the candidates" bash -c \
  "'$PLUGIN' explain jobset/js-demo -n $NS | tee $tmp/explain-js | grep -q '$JS_MEMBER'"
check "the member's JobSet controller runs the copy (unsuspended, labelled, 5 pods)" wait_show 60 bash -c "
  is \"\$(kc $JS_MEMBER get jobset js-demo -n $MEMBER_NS -o jsonpath='{.spec.suspend} {.metadata.labels.computenet\.io/hub}')\" 'false jk' &&
  [ \"\$(kc $JS_MEMBER get pods -n $MEMBER_NS -l jobset.sigs.k8s.io/jobset-name=js-demo -o name | wc -l)\" -ge 5 ]"
check "the hub JobSet shows Completed (mirrored) and its TrainingJob Succeeded" wait_show 90 bash -c "
  is \"\$(field jobset/js-demo '{.status.conditions[?(@.type==\"Completed\")].status}')\" True &&
  is \"\$(field tj/jobset-js-demo '{.status.phase}')\" Succeeded"
check "the member's copy is deleted once mirrored" wait_show 60 bash -c \
  "! kc $JS_MEMBER get jobset js-demo -n $MEMBER_NS >/dev/null 2>&1"
kubectl delete tj jobset-js-demo -n "$NS" >/dev/null
sleep 3
check "deleting its TrainingJob does not queue the JobSet again (marked queued-as, a Warning Event says so)" bash -c "
  ! kubectl get tj jobset-js-demo -n $NS >/dev/null 2>&1 &&
  is \"\$(field jobset/js-demo '{.metadata.annotations.computenet\\.io/queued-as}')\" jobset-js-demo &&
  kubectl get events -n $NS --field-selector involvedObject.name=js-demo -o jsonpath='{.items[*].message}' | grep -q 'not queued again'"

# --- TrainJob
cat <<EOT | kubectl apply -f - >/dev/null
apiVersion: trainer.kubeflow.org/v1alpha1
kind: TrainJob
metadata:
  name: tj-demo
  namespace: $NS
  labels: {computenet.io/queue-name: $QUEUE}
  annotations: {computenet.io/gpu-hours: "32"}
spec:
  runtimeRef: {name: jk-torch}
  trainer:
    numNodes: 4
    resourcesPerNode: {requests: {cpu: "4", memory: 16Gi, nvidia.com/gpu: "8"}, limits: {nvidia.com/gpu: "8"}}
EOT
lifecycle TrainJob trainjob tj-demo .spec.suspend jobset.sigs.k8s.io/jobset-name 4 Complete

# --- PyTorchJob
pytorchjob() {
  cat <<EOT
apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata:
  name: $1
  namespace: $NS
  labels: {computenet.io/queue-name: $QUEUE}
  annotations: {computenet.io/gpu-hours: "32"$2}
spec:
  pytorchReplicaSpecs:
    Master:
      replicas: 1
      restartPolicy: Never
      template:
        metadata: {annotations: {computenet.io/run-seconds: "8"}}
        spec:
          containers:
          - {name: pytorch, image: example/torch:2.5, resources: {requests: {cpu: "4", memory: 16Gi, nvidia.com/gpu: "8"}, limits: {nvidia.com/gpu: "8"}}}
    Worker:
      replicas: 3
      restartPolicy: Never
      template:
        metadata: {annotations: {computenet.io/run-seconds: "8"}}
        spec:
          containers:
          - {name: pytorch, image: example/torch:2.5, resources: {requests: {cpu: "4", memory: 16Gi, nvidia.com/gpu: "8"}, limits: {nvidia.com/gpu: "8"}}}
EOT
}
pytorchjob ptj-demo "" | kubectl apply -f - >/dev/null
lifecycle PyTorchJob pytorchjob ptj-demo .spec.runPolicy.suspend training.kubeflow.org/job-name 4 Succeeded

# --- over quota, no label, delete while running, Slurm only
jobset js-big "$SMALL" 8 | kubectl apply -f - >/dev/null
check "a JobSet over its queue's quota waits with the quota reason" wait_show 30 bash -c "
  is \"\$(field tj/jobset-js-big '{.status.phase}')\" Queued &&
  field tj/jobset-js-big '{.status.conditions}' | grep -qi quota"
jobset js-plain "$QUEUE" 8 0 | kubectl apply -f - >/dev/null
sleep 3
check "a JobSet without the queue label is left alone (not suspended, not queued)" bash -c "
  [ \"\$(field jobset/js-plain '{.spec.suspend}')\" != true ] && ! kubectl get tj jobset-js-plain -n $NS >/dev/null 2>&1"
# A tenant's own TrainingJob claiming to queue the over-quota JobSet with 1 replica from a
# queue with room: admitted (it fits), but its dispatch reads the JobSet again and refuses.
BIG_UID=$(field jobset/js-big '{.metadata.uid}')
# kubectl create prints the object as stored, so the finalizer in it is the webhook's (the
# service adds it with a later write only when the webhook did not).
forged_finalizers=$(cat <<EOT | kubectl create -f - -o jsonpath='{.metadata.finalizers}'
apiVersion: computenet.io/v1alpha1
kind: TrainingJob
metadata: {name: forged, namespace: $NS}
spec:
  queueName: $QUEUE
  replicas: 1
  resources: {cpu: "1", memory: 1Gi, accelerators: {count: 8}}
  source: {apiVersion: jobset.x-k8s.io/v1alpha2, kind: JobSet, name: js-big, uid: "$BIG_UID"}
EOT
)
check "a TrainingJob is created with the service's finalizer (the webhook's finalize.computenet.io)" \
  is "$forged_finalizers" '["computenet.io/cleanup"]'
check "a forged TrainingJob with spec.source fails at dispatch, and nothing is copied" wait_show 60 bash -c "
  is \"\$(field tj/forged '{.status.phase}')\" Failed &&
  field tj/forged '{.status.conditions}' | grep -q 'written by someone else' &&
  ! kc $W get jobset js-big -n $MEMBER_NS >/dev/null 2>&1 && ! kc $E get jobset js-big -n $MEMBER_NS >/dev/null 2>&1"
# A JobSet whose pods would share the node's network: refused, the Event names the field.
jobset js-host "$QUEUE" 8 | sed 's/            restartPolicy: Never/            restartPolicy: Never\n            hostNetwork: true/' | kubectl apply -f - >/dev/null
check "a JobSet asking for the host network is not queued; a Warning Event names the field" wait_show 30 bash -c "
  ! kubectl get tj jobset-js-host -n $NS >/dev/null 2>&1 &&
  kubectl get events -n $NS --field-selector involvedObject.name=js-host -o jsonpath='{.items[*].message}' | grep -q 'hostNetwork'"
jobset js-long "$QUEUE" 600 | kubectl apply -f - >/dev/null
check "a long JobSet runs on its member" wait_show 90 bash -c "
  is \"\$(field tj/jobset-js-long '{.status.phase}')\" Running"
LONG_MEMBER=$(member_of jobset-js-long)
check "its copy is there" bash -c "kc $LONG_MEMBER get jobset js-long -n $MEMBER_NS >/dev/null"
kubectl delete jobset js-long -n "$NS" --wait=false >/dev/null
check "deleting the hub JobSet deletes its TrainingJob and the member's copy" wait_show 60 bash -c "
  ! kubectl get tj jobset-js-long -n $NS >/dev/null 2>&1 &&
  ! kc $LONG_MEMBER get jobset js-long -n $MEMBER_NS >/dev/null 2>&1"
pytorchjob ptj-slurm ', computenet.io/sites: jk-slurm' | kubectl apply -f - >/dev/null
check "a PyTorchJob that may only go to the Slurm member waits, explained" wait_show 30 bash -c "
  '$PLUGIN' explain pytorchjob/ptj-slurm -n $NS | tee $tmp/explain-slurm | grep -q 'does not run PyTorchJobs'"

if [ "$FAILED" != 0 ]; then
  echo "--- last service log lines"; tail -40 "$tmp/serve.log"
  [ -e "$tmp/explain-js" ] && { echo "--- explain jobset/js-demo"; cat "$tmp/explain-js"; }
  [ -e "$tmp/explain-slurm" ] && { echo "--- explain pytorchjob/ptj-slurm"; cat "$tmp/explain-slurm"; }
fi
summary
