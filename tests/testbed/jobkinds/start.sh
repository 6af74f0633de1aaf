#!/usr/bin/env bash
# Start the JobSet, Kubeflow Trainer v2 (TrainJob) and Kubeflow Training Operator v1 (PyTorchJob)
# controllers out of cluster against AI members of a running test bed (up.sh --jobkinds calls
# it; by hand it is idempotent: controllers already running are left alone).
#
#   start.sh MEMBER...     e.g. start.sh ai-1 ai-3
#
# Per member: the five CRDs; our own certificates; the three controllers (pid files
# $RUN/pids/<binary>@<member>.pid, logs $RUN/logs/<binary>-<member>.log, state
# $RUN/jobkinds/<member>/); their admission webhooks registered by URL in the member apiserver.
# Needs root (each Trainer / Training Operator runs in a private mount namespace, see below).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# -gt 0 ] || { echo "usage: start.sh MEMBER..." >&2; exit 2; }
BIN=${JOBKINDS_BIN:-$("$JK/build.sh" --print-bin)}
for b in "${JK_BINARIES[@]}"; do
  [ -x "$BIN/$b" ] || { echo "jobkinds/start.sh: $BIN/$b missing; run $JK/build.sh" >&2; exit 1; }
done
# Trainer and Training Operator hard-code their webhook cert dir (/tmp/k8s-webhook-server/
# serving-certs, a Go constant): two of them on one host would overwrite each other's
# certificates. Each one gets a private mount namespace with its own folder bound there.
if [ "$(id -u)" -ne 0 ] || ! command -v unshare >/dev/null; then
  echo "jobkinds/start.sh: needs root and unshare (private mount namespace per controller)" >&2; exit 1
fi

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
running() { pidfile_pid "$PIDS/$1.pid" >/dev/null; }

# spawn PIDNAME LOGFILE CERTDIR|- CMD...: detached (setsid), pid in $PIDS/PIDNAME.pid. With a
# CERTDIR, CMD runs in a private mount namespace where CERTDIR is /tmp/k8s-webhook-server;
# unshare and sh exec, so the pid is the controller's. The empty mount point
# /tmp/k8s-webhook-server is created on the host if missing (and left there).
spawn() {
  local name=$1 logf=$2 certdir=$3
  shift 3
  if [ "$certdir" = - ]; then
    setsid "$@" </dev/null >"$logf" 2>&1 &
  else
    mkdir -p /tmp/k8s-webhook-server "$certdir/serving-certs"
    # shellcheck disable=SC2016
    setsid unshare -m --propagation private sh -c 'mount --bind "$0" /tmp/k8s-webhook-server && exec "$@"' \
      "$certdir" "$@" </dev/null >"$logf" 2>&1 &
  fi
  echo $! > "$PIDS/$name.pid"
}

wait_ready() { # pidname logfile health-port timeout-s
  local end=$(( $(date +%s) + $4 ))
  until curl -sf -m 2 "http://127.0.0.1:$3/readyz" >/dev/null 2>&1; do
    if ! alive "$(tr -dc '0-9' < "$PIDS/$1.pid")"; then
      echo "jobkinds: $1 exited; last lines of $2:" >&2; tail -n 20 "$2" >&2; return 1
    fi
    if [ "$(date +%s)" -ge "$end" ]; then
      echo "jobkinds: $1 not ready after $4 s; last lines of $2:" >&2; tail -n 20 "$2" >&2; return 1
    fi
    sleep 0.2
  done
}

# ca_and_cert DIR CA_NAME SERVER_DNS: RSA CA with SAN DNS:<CA_NAME> and a 10-year serving cert
# for DNS:<SERVER_DNS> + IP:127.0.0.1. This is what the OPA cert-controller rotator of Trainer
# and Training Operator accepts and keeps ("no cert refresh needed"): it verifies the CA against
# CA_NAME, parses ca.key as PKCS#1 (OpenSSL 3 writes PKCS#8 unless -traditional) and wants 90
# days of validity left. The IP SAN lets the apiserver call the webhook by URL.
ca_and_cert() {
  local d=$1 ca=$2 dns=$3
  [ -s "$d/tls.crt" ] && return 0
  mkdir -p "$d"
  openssl genrsa -traditional -out "$d/ca.key" 2048 2>/dev/null
  openssl req -x509 -new -key "$d/ca.key" -days 3650 -subj "/O=computenet-testbed/CN=$ca" \
    -addext "subjectAltName=DNS:$ca" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,digitalSignature,keyEncipherment" -out "$d/ca.crt" 2>/dev/null
  openssl genrsa -traditional -out "$d/tls.key" 2048 2>/dev/null
  openssl req -new -key "$d/tls.key" -subj "/CN=$dns" 2>/dev/null |
    openssl x509 -req -CA "$d/ca.crt" -CAkey "$d/ca.key" -set_serial "0x$(openssl rand -hex 12)" -days 3650 \
      -extfile <(printf 'subjectAltName=DNS:%s,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' "$dns") \
      -out "$d/tls.crt" 2>/dev/null
  chmod 600 "$d/ca.key" "$d/tls.key"
}

start_member() {
  local m=$1 kc=$RUN/kubeconfig-$1 base st p
  local k=(kubectl --kubeconfig="$kc")
  [ -s "$kc" ] || { echo "jobkinds: no kubeconfig for member $m ($kc); is the test bed up?" >&2; return 1; }
  base=$(jk_member_base "$m")
  st=$RUN/jobkinds/$m
  mkdir -p "$st"

  local js=$JOBSET_BIN_NAME@$m tr=$TRAINER_BIN_NAME@$m to=$TRAINING_OPERATOR_BIN_NAME@$m
  local spec
  for spec in "$js:$base $(( base + 1 )) $(( base + 2 ))" "$tr:$(( base + 10 )) $(( base + 12 ))" \
              "$to:$(( base + 20 )) $(( base + 21 )) $(( base + 22 ))"; do
    running "${spec%%:*}" && continue
    for p in ${spec#*:}; do
      port_free "$p" || { echo "jobkinds: $m: port $p busy (set TESTBED_JOBKINDS_PORT_BASE)" >&2; return 1; }
    done
  done

  jk_install_crds "$kc"

  # ---- JobSet: webhook host, port and cert dir exist only in its config file.
  # leaderElect false: the config default (true) wins over the flag default when the flag is
  # absent. internalCertManagement off: else it wants a Secret + Service in its namespace.
  ca_and_cert "$st/jobset/certs" jobset-ca jobset-webhook-service.jobset-system.svc
  cat > "$st/jobset/config.yaml" <<EOF
apiVersion: config.jobset.x-k8s.io/v1alpha1
kind: Configuration
leaderElection:
  leaderElect: false
internalCertManagement:
  enable: false
webhook:
  host: 127.0.0.1
  port: $base
  certDir: $st/jobset/certs
metrics:
  bindAddress: 127.0.0.1:$(( base + 1 ))
  certDir: $st/jobset/certs
health:
  healthProbeBindAddress: 127.0.0.1:$(( base + 2 ))
EOF
  running "$js" || spawn "$js" "$LOGS/$JOBSET_BIN_NAME-$m.log" - "$BIN/$JOBSET_BIN_NAME" \
    --kubeconfig "$kc" --config "$st/jobset/config.yaml" --zap-devel=false --zap-log-level=info

  # ---- Trainer and Training Operator: the cert rotator always runs. It needs its namespace and
  # Secret; we pre-fill the Secret with our CA and cert (it keeps them), and copy tls.* into the
  # cert dir ourselves: the rotator never writes files (in a cluster the kubelet mounts the
  # Secret), and without them no controller starts ("Waiting for certificate generation").
  ca_and_cert "$st/trainer/pki" kubeflow-trainer-ca "kubeflow-trainer-controller-manager.$TRAINER_NS.svc"
  ca_and_cert "$st/training-operator/pki" training-operator-ca "training-operator.$TRAINING_OPERATOR_NS.svc"
  local ns sec d
  for spec in "trainer $TRAINER_NS $TRAINER_SECRET" "training-operator $TRAINING_OPERATOR_NS $TRAINING_OPERATOR_SECRET"; do
    read -r d ns sec <<< "$spec"
    "${k[@]}" create namespace "$ns" --dry-run=client -o yaml | "${k[@]}" apply -f - >/dev/null
    "${k[@]}" -n "$ns" create secret generic "$sec" --from-file="$st/$d/pki/ca.crt" --from-file="$st/$d/pki/ca.key" \
      --from-file="$st/$d/pki/tls.crt" --from-file="$st/$d/pki/tls.key" --dry-run=client -o yaml |
      "${k[@]}" apply -f - >/dev/null
    mkdir -p "$st/$d/k8s-webhook-server/serving-certs"
    cp "$st/$d/pki/tls.crt" "$st/$d/pki/tls.key" "$st/$d/k8s-webhook-server/serving-certs/"
  done
  running "$tr" || spawn "$tr" "$LOGS/$TRAINER_BIN_NAME-$m.log" "$st/trainer/k8s-webhook-server" \
    "$BIN/$TRAINER_BIN_NAME" --kubeconfig "$kc" --leader-elect=false \
    --webhook-server-port "$(( base + 10 ))" --metrics-bind-address 0 \
    --health-probe-bind-address "127.0.0.1:$(( base + 12 ))"

  # The init container the operator adds to Worker pods (init-pytorch, waits for the master's
  # DNS name) has no securityContext by default, so Pod Security "restricted" refuses every
  # Worker pod. This template (same container, restricted-compliant) replaces it.
  cat > "$st/training-operator/init-container.yaml" <<'EOF'
- name: init-pytorch
  image: {{.InitContainerImage}}
  imagePullPolicy: IfNotPresent
  resources:
    limits:
      cpu: 100m
      memory: 20Mi
    requests:
      cpu: 50m
      memory: 10Mi
  securityContext:
    allowPrivilegeEscalation: false
    capabilities:
      drop: [ALL]
    runAsNonRoot: true
    runAsUser: 65534
    seccompProfile:
      type: RuntimeDefault
  command: ['sh', '-c', 'err=1;for i in $(seq {{.MaxTries}}); do if nslookup {{.MasterAddr}}; then err=0 && break; fi;echo waiting for master; sleep 2; done; exit $err']
EOF
  # --enable-scheme=pytorchjob: only the PyTorchJob controller (the others need their CRDs);
  # --gang-scheduler-name= : no volcano / scheduler-plugins.
  running "$to" || spawn "$to" "$LOGS/$TRAINING_OPERATOR_BIN_NAME-$m.log" "$st/training-operator/k8s-webhook-server" \
    "$BIN/$TRAINING_OPERATOR_BIN_NAME" --kubeconfig "$kc" --leader-elect=false \
    --enable-scheme=pytorchjob --gang-scheduler-name= \
    --pytorch-init-container-template-file "$st/training-operator/init-container.yaml" \
    --webhook-server-port "$(( base + 20 ))" --metrics-bind-address "127.0.0.1:$(( base + 21 ))" \
    --health-probe-bind-address "127.0.0.1:$(( base + 22 ))"

  wait_ready "$js" "$LOGS/$JOBSET_BIN_NAME-$m.log" $(( base + 2 )) 60
  wait_ready "$tr" "$LOGS/$TRAINER_BIN_NAME-$m.log" $(( base + 12 )) 90
  wait_ready "$to" "$LOGS/$TRAINING_OPERATOR_BIN_NAME-$m.log" $(( base + 22 )) 90

  # ---- Webhooks by URL (the apiserver runs on this host), failurePolicy Fail, paths and rules
  # as in each module's webhook manifests. JobSet's defaulting webhook is required: it sets
  # successPolicy, startupPolicy, completionMode Indexed, restartPolicy and
  # network.enableDNSHostnames, which the CRD schema does not; without it the reconciler
  # panics on a minimal JobSet. The rotators keep our caBundle (same CA as in their Secret).
  local u ca r
  u=https://127.0.0.1:$base
  ca=$(base64 -w0 < "$st/jobset/certs/ca.crt")
  {
    cat <<EOF
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: jobkinds-jobset-mutating}
webhooks:
- name: mjobset.kb.io
  admissionReviewVersions: [v1]
  clientConfig: {url: "$u/mutate-jobset-x-k8s-io-v1alpha2-jobset", caBundle: "$ca"}
  failurePolicy: Fail
  sideEffects: None
  rules: [{apiGroups: [jobset.x-k8s.io], apiVersions: [v1alpha2], operations: [CREATE], resources: [jobsets]}]
- name: mpod.kb.io
  admissionReviewVersions: [v1]
  clientConfig: {url: "$u/mutate--v1-pod", caBundle: "$ca"}
  failurePolicy: Fail
  sideEffects: None
  objectSelector: {matchExpressions: [{key: jobset.sigs.k8s.io/jobset-name, operator: Exists}]}
  rules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: jobkinds-jobset-validating}
webhooks:
- name: vjobset.kb.io
  admissionReviewVersions: [v1]
  clientConfig: {url: "$u/validate-jobset-x-k8s-io-v1alpha2-jobset", caBundle: "$ca"}
  failurePolicy: Fail
  sideEffects: None
  rules: [{apiGroups: [jobset.x-k8s.io], apiVersions: [v1alpha2], operations: [CREATE, UPDATE], resources: [jobsets]}]
- name: vpod.kb.io
  admissionReviewVersions: [v1]
  clientConfig: {url: "$u/validate--v1-pod", caBundle: "$ca"}
  failurePolicy: Fail
  sideEffects: None
  objectSelector: {matchExpressions: [{key: jobset.sigs.k8s.io/jobset-name, operator: Exists}]}
  rules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: validator.trainer.kubeflow.org}
webhooks:
EOF
    u=https://127.0.0.1:$(( base + 10 ))
    ca=$(base64 -w0 < "$st/trainer/pki/ca.crt")
    for r in clustertrainingruntime trainingruntime trainjob; do
      cat <<EOF
- name: validator.$r.trainer.kubeflow.org
  admissionReviewVersions: [v1]
  clientConfig: {url: "$u/validate-trainer-kubeflow-org-v1alpha1-$r", caBundle: "$ca"}
  failurePolicy: Fail
  sideEffects: None
  rules: [{apiGroups: [trainer.kubeflow.org], apiVersions: [v1alpha1], operations: [CREATE, UPDATE], resources: [${r}s]}]
EOF
    done
    u=https://127.0.0.1:$(( base + 20 ))
    ca=$(base64 -w0 < "$st/training-operator/pki/ca.crt")
    cat <<EOF
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: validator.training-operator.kubeflow.org}
webhooks:
- name: validator.pytorchjob.training-operator.kubeflow.org
  admissionReviewVersions: [v1]
  clientConfig: {url: "$u/validate-kubeflow-org-v1-pytorchjob", caBundle: "$ca"}
  failurePolicy: Fail
  sideEffects: None
  rules: [{apiGroups: [kubeflow.org], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [pytorchjobs]}]
EOF
  } > "$st/webhooks.yaml"
  "${k[@]}" apply -f "$st/webhooks.yaml" >/dev/null
  echo "jobkinds: $m: jobset, trainer, training-operator ready (ports $base..$(( base + 22 )))"
}

# Members in parallel (most of the time is key generation and readiness polling).
pids=() rc=0
for m in "$@"; do
  case $m in ai-[0-9]*) ;; *) echo "jobkinds/start.sh: $m is not an AI member (ai-N)" >&2; exit 2 ;; esac
  start_member "$m" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || rc=1; done
exit $rc
