#!/usr/bin/env bash
# Start the computenet integration test bed on 127.0.0.1: one etcd, a hub kube-apiserver,
# K8s member clusters (apiserver + controller-manager + scheduler + KWOK fake nodes),
# a Slurm cluster with slurmrestd (JWT), Prometheus and, with --jobkinds, the JobSet / Kubeflow
# Trainer / Training Operator controllers on the AI members. See README.md.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<EOF
Usage: up.sh [options]
  --members N        K8s member clusters (default 2). Odd members are AI GPU clusters
                     (ai-1, ai-3, ...), even ones general CPU-only clusters (general-2, ...).
  --gpu-nodes N      KWOK GPU nodes per AI member (default 4; half A100-80G, half H800)
  --cpu-nodes N      KWOK CPU nodes per general member (default 4)
  --slurm-nodes N    slurmd nodes, 8 fake GPUs each (default 4)
  --no-slurm         do not start munge/slurmctld/slurmd/slurmrestd
  --no-prometheus    do not start Prometheus
  --no-taint         do not put the kwok.x-k8s.io/node=fake:NoSchedule taint on KWOK nodes
  --jobkinds         run the real JobSet, Kubeflow Trainer v2 (TrainJob) and Training Operator v1
                     (PyTorchJob) controllers against every AI member, their webhooks registered
                     in the member apiservers; their CRDs also in the hub (no controllers there).
                     Built from the Go module proxy on first use (jobkinds/build.sh). Needs root.
  --prepare-only     install and build what the test bed runs (with --jobkinds, the controllers
                     too), start nothing, leave a running test bed alone, and exit
  -h, --help         this help
State, logs and pid files: $RUN (env file: $RUN/env). Stop with down.sh.
Ports: TESTBED_*_PORT environment variables, see README.md.
EOF
}

MEMBERS=2 GPU_NODES=4 CPU_NODES=4 SLURM_NODES=4 WITH_SLURM=1 WITH_PROM=1 TAINT=1 WITH_JOBKINDS=0 PREPARE_ONLY=0
while [ $# -gt 0 ]; do
  case $1 in
    --members) MEMBERS=$2; shift 2 ;;
    --gpu-nodes) GPU_NODES=$2; shift 2 ;;
    --cpu-nodes) CPU_NODES=$2; shift 2 ;;
    --slurm-nodes) SLURM_NODES=$2; shift 2 ;;
    --members=*) MEMBERS=${1#*=}; shift ;;
    --gpu-nodes=*) GPU_NODES=${1#*=}; shift ;;
    --cpu-nodes=*) CPU_NODES=${1#*=}; shift ;;
    --slurm-nodes=*) SLURM_NODES=${1#*=}; shift ;;
    --no-slurm) WITH_SLURM=0; shift ;;
    --no-prometheus) WITH_PROM=0; shift ;;
    --no-taint) TAINT=0; shift ;;
    --jobkinds) WITH_JOBKINDS=1; shift ;;
    --prepare-only) PREPARE_ONLY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "up.sh: unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done
for v in MEMBERS GPU_NODES CPU_NODES SLURM_NODES; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "up.sh: $v must be a number" >&2; exit 2; }
done
[ "$WITH_SLURM" = 1 ] && [ "$SLURM_NODES" -lt 1 ] && { echo "up.sh: --slurm-nodes must be >= 1" >&2; exit 2; }
if [ "$PREPARE_ONLY" = 0 ] && [ "$WITH_SLURM" = 1 ] && [ "$(id -u)" -ne 0 ]; then
  echo "up.sh: Slurm needs root (slurmctld/slurmd run as root); use --no-slurm otherwise" >&2; exit 2
fi
if [ "$PREPARE_ONLY" = 0 ] && [ "$WITH_JOBKINDS" = 1 ] && [ "$(id -u)" -ne 0 ]; then
  echo "up.sh: --jobkinds needs root (each controller gets a private mount namespace)" >&2; exit 2
fi
OPTIONS="members=$MEMBERS gpu-nodes=$GPU_NODES cpu-nodes=$CPU_NODES slurm=$WITH_SLURM slurm-nodes=$SLURM_NODES prometheus=$WITH_PROM taint=$TAINT jobkinds=$WITH_JOBKINDS"
# the job-kind controllers' helpers (ports, CRD files), also for the health check below
source "$TB/jobkinds/lib.sh"

T_ALL=$(now_ms)

# ---------------------------------------------------------------- build + packages
# Sets BIN, KWOK_MOD and (with --jobkinds) JOBKINDS_BIN. A no-op, but for the checks, once
# everything is installed and cached.
prepare() {
  T_PREP=$(now_ms)
  "$TB/install-deps.sh"
  "$TB/build.sh"
  BIN=$("$TB/build.sh" --print-bin)
  KWOK_VERSION=$(awk '$1 == "require" && $2 == "sigs.k8s.io/kwok" {print $3} $1 == "sigs.k8s.io/kwok" {print $2}' "$TB/go-kwok/go.mod" | head -1)
  KWOK_MOD=$(go env GOMODCACHE 2>/dev/null || echo "$HOME/go/pkg/mod")/sigs.k8s.io/kwok@$KWOK_VERSION
  if [ ! -d "$KWOK_MOD/kustomize/stage" ]; then
    (cd "$TB/go-kwok" && go mod download sigs.k8s.io/kwok)
  fi
  if [ "$WITH_JOBKINDS" = 1 ]; then
    "$TB/jobkinds/build.sh"
    JOBKINDS_BIN=$("$TB/jobkinds/build.sh" --print-bin)
    # the CRD files come from the module cache: download now, not during the start phase
    jk_crd_files >/dev/null
  fi
  PREP_MS=$(( $(now_ms) - T_PREP ))
  echo "build/install checks: $(fmt_ms $PREP_MS) s"
}
if [ "$PREPARE_ONLY" = 1 ]; then
  prepare
  exit 0
fi

# ---------------------------------------------------------------- already up?
healthy() {
  [ -s "$RUN/env" ] && [ -d "$PIDS" ] || return 1
  local f n=0
  for f in "$PIDS"/*.pid; do
    [ -e "$f" ] || continue
    pidfile_pid "$f" >/dev/null || return 1
    n=$((n + 1))
  done
  [ $n -gt 0 ] || return 1
  # shellcheck disable=SC1091
  ( source "$RUN/env"
    kubectl --kubeconfig="$HUB_KUBECONFIG" get --raw=/readyz >/dev/null 2>&1 || exit 1
    for m in $MEMBER_NAMES; do
      p=$(env_prefix "$m"); kind=${p}_KIND
      if [ "${!kind}" = kubernetes ]; then
        kc=${p}_KUBECONFIG; kubectl --kubeconfig="${!kc}" get --raw=/readyz >/dev/null 2>&1 || exit 1
      fi
    done
    if [ -n "${SLURMRESTD_URL:-}" ]; then
      curl -sf -m 5 -H "X-SLURM-USER-NAME: $SLURM_USER_NAME" -H "X-SLURM-USER-TOKEN: $SLURM_USER_TOKEN" \
        "$SLURMRESTD_URL/slurm/$SLURM_API_VERSION/ping" >/dev/null || exit 1
    fi
    if [ -n "${PROMETHEUS_URL:-}" ]; then curl -sf -m 5 "$PROMETHEUS_URL/-/ready" >/dev/null || exit 1; fi
    for m in ${JOBKINDS_MEMBERS:-}; do
      b=$(jk_member_base "$m")
      for o in 2 12 22; do curl -sf -m 5 "http://127.0.0.1:$(( b + o ))/readyz" >/dev/null || exit 1; done
    done
  )
}
if [ -e "$RUN" ]; then
  if healthy; then
    if [ "$(cat "$RUN/options" 2>/dev/null)" = "$OPTIONS" ]; then
      echo "test bed already up and healthy ($OPTIONS); source $RUN/env"
      exit 0
    fi
    echo "test bed is up with other options ($(cat "$RUN/options" 2>/dev/null)); restarting with $OPTIONS"
  else
    echo "test bed is half up or stale; tearing it down first"
  fi
  "$TB/down.sh"
fi

# ---------------------------------------------------------------- build + packages
prepare

# ---------------------------------------------------------------- start phase
T0=$(now_ms)
el() { fmt_ms $(( $(now_ms) - T0 )); }
log() { printf '[%6ss] %s\n' "$(el)" "$*"; }

mkdir -p "$RUN" "$PIDS" "$LOGS" "$RUN/pki" "$RUN/k8s"
echo "$OPTIONS" > "$RUN/options"

fail() { # component logfile message
  echo "up.sh: FAILED: $1: $3" >&2
  if [ -n "$2" ] && [ -e "$2" ]; then
    echo "---- last lines of $2" >&2; tail -n 25 "$2" >&2; echo "----" >&2
  fi
  echo "up.sh: the test bed is half up; run $TB/down.sh (up.sh also cleans up on its next run)" >&2
  exit 1
}

# wait_for COMPONENT TIMEOUT_S LOGFILE PIDFILE|- CMD...: poll CMD every 0.2 s.
wait_for() {
  local comp=$1 t=$2 logf=$3 pidf=$4 end
  shift 4
  end=$(( $(date +%s) + t ))
  until "$@" >/dev/null 2>&1; do
    if [ "$pidf" != - ] && ! pidfile_pid "$pidf" >/dev/null; then
      fail "$comp" "$logf" "process exited"
    fi
    [ "$(date +%s)" -ge "$end" ] && fail "$comp" "$logf" "not ready after ${t}s (waiting for: $*)"
    sleep 0.2
  done
}

# start NAME LOGFILE CMD...: run CMD detached (setsid) with its pid in $PIDS/NAME.pid.
start() {
  local name=$1 logf=$2
  shift 2
  setsid "$@" </dev/null >"$logf" 2>&1 &
  echo $! > "$PIDS/$name.pid"
}

# ---- ports must be free (a clear error instead of a component dying later)
want_ports=("etcd:$ETCD_PORT" "hub-apiserver:$HUB_PORT" "hub-controller-manager:$KCM_PORT_BASE")
for i in $(seq 1 "$MEMBERS"); do
  want_ports+=("member$i-apiserver:$(( MEMBER_PORT_BASE + i - 1 ))" "member$i-controller-manager:$(( KCM_PORT_BASE + i ))"
    "member$i-scheduler:$(( SCHED_PORT_BASE + i ))" "member$i-kwok:$(( KWOK_PORT_BASE + i ))")
done
if [ "$WITH_SLURM" = 1 ]; then
  want_ports+=("slurmctld:$SLURMCTLD_PORT" "slurmrestd:$SLURMRESTD_PORT")
  for i in $(seq 1 "$SLURM_NODES"); do want_ports+=("slurmd-node$i:$(( SLURMD_PORT_BASE + i - 1 ))"); done
fi
[ "$WITH_PROM" = 1 ] && want_ports+=("prometheus:$PROMETHEUS_PORT")
busy=()
for wp in "${want_ports[@]}"; do
  (exec 3<>"/dev/tcp/127.0.0.1/${wp#*:}") 2>/dev/null && busy+=("$wp")
done
if [ ${#busy[@]} -gt 0 ]; then
  rm -rf "$RUN"
  echo "up.sh: FAILED: ports already in use on 127.0.0.1: ${busy[*]} (set TESTBED_*_PORT, see README.md)" >&2
  exit 1
fi

# ---- PKI: one CA; a serving certificate for 127.0.0.1; client certificates.
PKI=$RUN/pki
gen_key() { openssl ecparam -name prime256v1 -genkey -noout -out "$1" 2>/dev/null; chmod 600 "$1"; }
gen_cert() { # name subject extensions
  gen_key "$PKI/$1.key"
  openssl req -new -key "$PKI/$1.key" -subj "$2" 2>/dev/null |
    openssl x509 -req -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -set_serial "0x$(openssl rand -hex 12)" \
      -days 3650 -extfile <(printf '%s\n' "$3") -out "$PKI/$1.crt" 2>/dev/null
}
gen_key "$PKI/ca.key"
openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=computenet-testbed-ca" -days 3650 \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
  -out "$PKI/ca.crt" 2>/dev/null
CLIENT_EXT=$'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth'
gen_cert apiserver "/CN=kube-apiserver" $'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc'
gen_cert admin "/O=system:masters/CN=computenet-testbed-admin" "$CLIENT_EXT"
gen_cert controller-manager "/CN=system:kube-controller-manager" "$CLIENT_EXT"
gen_cert scheduler "/CN=system:kube-scheduler" "$CLIENT_EXT"
# front proxy (aggregation layer / request-header authentication of delegating components)
gen_key "$PKI/front-proxy-ca.key"
openssl req -x509 -new -key "$PKI/front-proxy-ca.key" -subj "/CN=computenet-testbed-front-proxy-ca" -days 3650 \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
  -out "$PKI/front-proxy-ca.crt" 2>/dev/null
gen_key "$PKI/front-proxy-client.key"
openssl req -new -key "$PKI/front-proxy-client.key" -subj "/CN=front-proxy-client" 2>/dev/null |
  openssl x509 -req -CA "$PKI/front-proxy-ca.crt" -CAkey "$PKI/front-proxy-ca.key" -set_serial "0x$(openssl rand -hex 12)" \
    -days 3650 -extfile <(printf '%s\n' "$CLIENT_EXT") -out "$PKI/front-proxy-client.crt" 2>/dev/null
gen_key "$PKI/sa.key"
openssl ec -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
log "certificates created"

b64() { base64 -w0 < "$1"; }
kubeconfig() { # file cluster-name server cert-name
  cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $2
  cluster:
    server: $3
    certificate-authority-data: $(b64 "$PKI/ca.crt")
contexts:
- name: $2
  context:
    cluster: $2
    user: $4
current-context: $2
users:
- name: $4
  user:
    client-certificate-data: $(b64 "$PKI/$4.crt")
    client-key-data: $(b64 "$PKI/$4.key")
EOF
  chmod 600 "$1"
}

# ---- members
NAMES=() PORTS=()
for i in $(seq 1 "$MEMBERS"); do NAMES+=("$(member_name "$i")"); PORTS+=($(( MEMBER_PORT_BASE + i - 1 ))); done

# ---- Prometheus (no dependencies)
if [ "$WITH_PROM" = 1 ]; then
  mkdir -p "$RUN/prometheus/data"
  [ -e "$RUN/prometheus/targets.json" ] || echo '[]' > "$RUN/prometheus/targets.json"
  cat > "$RUN/prometheus/prometheus.yml" <<EOF
global:
  scrape_interval: 5s
  evaluation_interval: 5s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ['127.0.0.1:$PROMETHEUS_PORT']
  - job_name: etcd
    static_configs:
      - targets: ['127.0.0.1:$ETCD_PORT']
  # Tests register their own exporters here: write a file_sd list such as
  # [{"targets": ["127.0.0.1:9100"], "labels": {"job": "my-exporter"}}]; re-read every 5 s.
  - job_name: testbed
    file_sd_configs:
      - files: ['$RUN/prometheus/targets.json']
        refresh_interval: 5s
EOF
  start prometheus "$LOGS/prometheus.log" /usr/bin/prometheus \
    --config.file="$RUN/prometheus/prometheus.yml" --storage.tsdb.path="$RUN/prometheus/data" \
    --storage.tsdb.retention.time=1d --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" --web.enable-lifecycle
fi

# ---- Slurm: munge -> slurmctld -> slurmd x N -> token -> slurmrestd, in a background job.
SLURM_USER=${TESTBED_SLURM_USER:-nobody}
SLURM_TENANT_USERS="cn-tenant-a cn-tenant-b"
slurm_up() {
  set -euo pipefail
  local S=$RUN/slurm i n half
  mkdir -p "$S"/{ctld,munge,fakegpu,jobs,d} "$LOGS/slurm"
  chmod 1777 "$S/jobs"
  # Two tenants' Unix users (slurmctld resolves them), each with its own job directory
  # closed to the other (tests/e2e/tenancy/slurm.sh).
  for u in $SLURM_TENANT_USERS; do
    id "$u" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$u"
    install -d -o "$u" -g "$(id -gn "$u")" -m 0700 "$S/jobs/$u"
  done
  for i in 0 1 2 3 4 5 6 7; do mknod "$S/fakegpu/nvidia$i" c 1 3; done
  dd if=/dev/urandom of="$S/jwt_hs256.key" bs=32 count=1 status=none; chmod 600 "$S/jwt_hs256.key"
  half=$(( (SLURM_NODES + 1) / 2 ))
  {
    cat <<EOF
# Generated by up.sh: single-host test cluster (Slurm 22.05), all state under $S.
ClusterName=computenet
# bind slurmctld/slurmd to the configured addresses (127.0.0.1), not to all interfaces
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$SLURMCTLD_PORT
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$S/munge/munge.socket.2
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$S/jwt_hs256.key
StateSaveLocation=$S/ctld
SlurmdSpoolDir=$S/d/%n
SlurmctldPidFile=$PIDS/slurmctld.pid
SlurmdPidFile=$PIDS/slurmd@%n.pid
SlurmctldLogFile=$LOGS/slurm/slurmctld.log
SlurmdLogFile=$LOGS/slurm/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
GresTypes=gpu
ReturnToService=2
SlurmdParameters=config_overrides
SchedulerParameters=batch_sched_delay=0,sched_interval=2
MinJobAge=300
KillWait=5
InactiveLimit=0
SlurmdTimeout=60
EOF
    for i in $(seq 1 "$SLURM_NODES"); do
      if [ "$i" -le "$half" ]; then t=a100; else t=h800; fi
      echo "NodeName=node$i NodeHostname=localhost NodeAddr=127.0.0.1 Port=$(( SLURMD_PORT_BASE + i - 1 )) CPUs=32 RealMemory=128000 Gres=gpu:$t:8 Feature=$t State=UNKNOWN"
    done
    echo "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
  } > "$S/slurm.conf"
  {
    echo "AutoDetect=off"
    for i in $(seq 1 "$SLURM_NODES"); do
      if [ "$i" -le "$half" ]; then t=a100; else t=h800; fi
      echo "NodeName=node$i Name=gpu Type=$t File=$S/fakegpu/nvidia[0-7]"
    done
  } > "$S/gres.conf"
  export SLURM_CONF=$S/slurm.conf

  dd if=/dev/urandom of="$S/munge/munge.key" bs=1024 count=1 status=none
  # munged runs as user munge: its key, socket, pid, seed and log files live in $S/munge
  chown -R munge:munge "$S/munge"; chmod 755 "$S/munge"; chmod 600 "$S/munge/munge.key"
  ln -sf "$S/munge/munged.log" "$LOGS/slurm/munged.log"
  runuser -u munge -- /usr/sbin/munged --key-file="$S/munge/munge.key" --socket="$S/munge/munge.socket.2" \
    --pid-file="$S/munge/munged.pid" --log-file="$S/munge/munged.log" --seed-file="$S/munge/munged.seed" \
    </dev/null >"$LOGS/slurm/munged.out" 2>&1 || fail munged "$LOGS/slurm/munged.out" "munged did not start"
  wait_for munged 10 "$LOGS/slurm/munged.log" - test -s "$S/munge/munged.pid"
  cp "$S/munge/munged.pid" "$PIDS/munged.pid"
  wait_for munged 10 "$LOGS/slurm/munged.log" "$PIDS/munged.pid" test -S "$S/munge/munge.socket.2"
  log "munged up"

  /usr/sbin/slurmctld -i </dev/null >"$LOGS/slurm/slurmctld.out" 2>&1 || fail slurmctld "$LOGS/slurm/slurmctld.log" "slurmctld did not start"
  wait_for slurmctld 30 "$LOGS/slurm/slurmctld.log" - scontrol ping
  log "slurmctld up"
  for i in $(seq 1 "$SLURM_NODES"); do
    /usr/sbin/slurmd -N "node$i" </dev/null >"$LOGS/slurm/slurmd-node$i.out" 2>&1 || fail "slurmd node$i" "$LOGS/slurm/slurmd-node$i.log" "slurmd did not start"
  done
  wait_for "slurmd (nodes idle)" 60 "$LOGS/slurm/slurmctld.log" - \
    bash -c "[ \$(sinfo -h -N -t idle -o %N | sort -u | wc -l) -eq $SLURM_NODES ]"
  log "slurmd x$SLURM_NODES idle"

  scontrol token username="$SLURM_USER" lifespan=$(( 365 * 86400 )) | sed 's/^SLURM_JWT=//' > "$S/token"
  [ -s "$S/token" ] || fail "slurm token" "$LOGS/slurm/slurmctld.log" "scontrol token failed"
  SLURM_JWT=daemon setsid /usr/sbin/slurmrestd -a rest_auth/jwt -s openapi/v0.0.38 -u nobody -v \
    "127.0.0.1:$SLURMRESTD_PORT" </dev/null >"$LOGS/slurm/slurmrestd.log" 2>&1 &
  echo $! > "$PIDS/slurmrestd.pid"
  wait_for slurmrestd 20 "$LOGS/slurm/slurmrestd.log" "$PIDS/slurmrestd.pid" \
    curl -sf -H "X-SLURM-USER-NAME: $SLURM_USER" -H "X-SLURM-USER-TOKEN: $(cat "$S/token")" \
    "http://127.0.0.1:$SLURMRESTD_PORT/slurm/v0.0.38/ping"
  log "slurmrestd up"
}
if [ "$WITH_SLURM" = 1 ]; then
  slurm_up &
  SLURM_JOB=$!
fi

# ---- etcd
start etcd "$LOGS/etcd.log" "$BIN/etcd" --name=computenet-testbed --data-dir="$RUN/etcd" \
  --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls=http://127.0.0.1:0 --initial-advertise-peer-urls=http://127.0.0.1:0 \
  --initial-cluster=computenet-testbed=http://127.0.0.1:0 \
  --unsafe-no-fsync --log-level=warn --quota-backend-bytes=$(( 4 * 1024 * 1024 * 1024 ))
wait_for etcd 30 "$LOGS/etcd.log" "$PIDS/etcd.pid" curl -sf "http://127.0.0.1:$ETCD_PORT/health"
log "etcd up"

# ---- apiservers (hub + members) in parallel
start_apiserver() { # name port
  local d=$RUN/k8s/$1
  mkdir -p "$d"
  start "kube-apiserver@$1" "$LOGS/kube-apiserver-$1.log" "$BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" --etcd-prefix="/computenet-testbed/$1" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$2" \
    --cert-dir="$d/certs" --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" --authorization-mode=Node,RBAC \
    --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --service-account-issuer="https://127.0.0.1:$2" --service-account-key-file="$PKI/sa.pub" \
    --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 --allow-privileged=true \
    --disable-admission-plugins=ServiceAccount --profiling=false --event-ttl=1h \
    --endpoint-reconciler-type=none
  kubeconfig "$RUN/kubeconfig-$1" "$1" "https://127.0.0.1:$2" admin
}
start_apiserver hub "$HUB_PORT"
for i in "${!NAMES[@]}"; do start_apiserver "${NAMES[$i]}" "${PORTS[$i]}"; done
log "apiservers started (hub ${NAMES[*]})"

# ---- KWOK stages: KWOK's node and pod stages + the test bed's completion stages
STAGES=$RUN/k8s/kwok-stages.yaml
{
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-delete.yaml; do
    cat "$KWOK_MOD/kustomize/stage/$f"; echo "---"
  done
  cat "$TB/kwok-stages.yaml"
} > "$STAGES"

# ---- node manifests (one multi-document YAML per member, created in one kubectl call)
node_yaml() { # name product zone gpus cpu memory
  cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: $1
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/arch: amd64
    kubernetes.io/os: linux
    kubernetes.io/hostname: $1
    node-role.kubernetes.io/worker: ""
    topology.kubernetes.io/region: testbed
    topology.kubernetes.io/zone: $3
EOF
  if [ "$4" -gt 0 ]; then
    cat <<EOF
    nvidia.com/gpu.present: "true"
    nvidia.com/gpu.product: $2
    nvidia.com/gpu.count: "$4"
EOF
  fi
  if [ "$TAINT" = 1 ]; then
    cat <<EOF
spec:
  taints:
  - key: kwok.x-k8s.io/node
    value: fake
    effect: NoSchedule
EOF
  fi
  local res="    cpu: \"$5\"
    memory: $6
    pods: \"110\""
  [ "$4" -gt 0 ] && res="$res
    nvidia.com/gpu: \"$4\""
  cat <<EOF
status:
  capacity:
$res
  allocatable:
$res
EOF
}
gen_nodes() { # member-index -> manifest on stdout
  local i=$1 n half k zone
  if [ "$(member_profile "$i")" = ai ]; then
    n=$GPU_NODES; half=$(( (n + 1) / 2 ))
    for k in $(seq 1 "$n"); do
      if [ $(( k % 2 )) -eq 1 ]; then zone="zone-a"; else zone="zone-b"; fi
      if [ "$k" -le "$half" ]; then
        node_yaml "$(printf 'gpu-a100-%03d' "$k")" A100-80G "$zone" 8 64 512Gi
      else
        node_yaml "$(printf 'gpu-h800-%03d' "$k")" H800 "$zone" 8 64 512Gi
      fi
    done
  else
    for k in $(seq 1 "$CPU_NODES"); do
      if [ $(( k % 2 )) -eq 1 ]; then zone="zone-a"; else zone="zone-b"; fi
      node_yaml "$(printf 'cpu-%03d' "$k")" - "$zone" 0 32 128Gi
    done
  fi
}
for i in "${!NAMES[@]}"; do gen_nodes $(( i + 1 )) > "$RUN/k8s/${NAMES[$i]}/nodes.yaml"; done
# create_nodes MEMBER: kubectl create in up to 4 parallel chunks (hundreds of nodes in seconds)
create_nodes() {
  local m=$1 d=$RUN/k8s/$1 n chunk f pids=() rc=0 p
  n=$(grep -c '^kind: Node' "$d/nodes.yaml")
  chunk=$(( (n + 3) / 4 )); [ "$chunk" -lt 25 ] && chunk=25
  awk -v c="$chunk" -v d="$d" '/^---$/ { k++ } { print > (d "/nodes-part" int((k - 1) / c) ".yaml") }' "$d/nodes.yaml"
  for f in "$d"/nodes-part*.yaml; do
    kubectl --kubeconfig="$RUN/kubeconfig-$m" create --validate=false -f "$f" >"$f.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  cat "$d"/nodes-part*.yaml.log > "$LOGS/nodes-$m.log"
  return $rc
}
NODE_JOBS=()

# ---- wait for apiservers, then start controllers, schedulers and KWOK per member
readyz() { curl -sf -m 3 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "https://127.0.0.1:$1/readyz"; }
wait_for "kube-apiserver hub" 90 "$LOGS/kube-apiserver-hub.log" "$PIDS/kube-apiserver@hub.pid" readyz "$HUB_PORT"
log "hub apiserver ready"

start_kcm() { # name apiserver-port healthz-port [controllers]
  local d=$RUN/k8s/$1
  kubeconfig "$d/controller-manager.kubeconfig" "$1" "https://127.0.0.1:$2" controller-manager
  start "kube-controller-manager@$1" "$LOGS/kube-controller-manager-$1.log" "$BIN/kube-controller-manager" \
    --kubeconfig="$d/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$d/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$d/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$3" --cert-dir="$d/certs-kcm" --leader-elect=false \
    --use-service-account-credentials=true --service-account-private-key-file="$PKI/sa.key" \
    --root-ca-file="$PKI/ca.crt" --kube-api-qps=200 --kube-api-burst=400 \
    --controllers="${4:-*}" --node-monitor-grace-period=150s --profiling=false
}
start_kcm hub "$HUB_PORT" "$KCM_PORT_BASE" \
  "garbage-collector-controller,namespace-controller,serviceaccount-controller,serviceaccount-token-controller,root-ca-certificate-publisher-controller,clusterrole-aggregation-controller"

for i in "${!NAMES[@]}"; do
  m=${NAMES[$i]} port=${PORTS[$i]} k=$(( i + 1 ))
  wait_for "kube-apiserver $m" 90 "$LOGS/kube-apiserver-$m.log" "$PIDS/kube-apiserver@$m.pid" readyz "$port"
  d=$RUN/k8s/$m
  start_kcm "$m" "$port" $(( KCM_PORT_BASE + k ))
  kubeconfig "$d/scheduler.kubeconfig" "$m" "https://127.0.0.1:$port" scheduler
  cat > "$d/scheduler.yaml" <<EOF
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: $d/scheduler.kubeconfig
  qps: 200
  burst: 400
leaderElection:
  leaderElect: false
EOF
  start "kube-scheduler@$m" "$LOGS/kube-scheduler-$m.log" "$BIN/kube-scheduler" --config="$d/scheduler.yaml" \
    --bind-address=127.0.0.1 --secure-port=$(( SCHED_PORT_BASE + k )) --cert-dir="$d/certs-scheduler" \
    --authentication-kubeconfig="$d/scheduler.kubeconfig" --authorization-kubeconfig="$d/scheduler.kubeconfig"
  start "kwok@$m" "$LOGS/kwok-$m.log" "$BIN/kwok" --kubeconfig="$RUN/kubeconfig-$m" \
    --config="$STAGES" --manage-all-nodes=true --cidr=10.64.0.0/12 --node-ip=10.63.0.1 \
    --node-lease-duration-seconds=180 \
    --server-address="127.0.0.1:$(( KWOK_PORT_BASE + k ))"
  create_nodes "$m" &
  NODE_JOBS+=($!)
  log "$m apiserver ready; controllers and KWOK started, creating $(grep -c '^kind: Node' "$d/nodes.yaml") nodes"
done

# ---- hub content: namespace + member kubeconfig secrets (labelled for computenet: the
# service reads only Secrets in its namespace that carry computenet.io/credentials=true)
{
  cat <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: computenet-system
EOF
  for i in "${!NAMES[@]}"; do
    cat <<EOF
---
apiVersion: v1
kind: Secret
metadata:
  name: ${NAMES[$i]}-kubeconfig
  namespace: computenet-system
  labels:
    computenet.io/testbed-member: ${NAMES[$i]}
    computenet.io/credentials: "true"
type: Opaque
data:
  kubeconfig: $(b64 "$RUN/kubeconfig-${NAMES[$i]}")
EOF
  done
} > "$RUN/k8s/hub-objects.yaml"
kubectl --kubeconfig="$RUN/kubeconfig-hub" create --validate=false -f "$RUN/k8s/hub-objects.yaml" >"$LOGS/hub-objects.log" 2>&1 ||
  fail "hub objects" "$LOGS/hub-objects.log" "kubectl create failed"
log "hub: namespace computenet-system and ${#NAMES[@]} member kubeconfig secrets"

# ---- job-kind controllers on the AI members (in the background: they need only the member
# apiservers, not the nodes); their CRDs in the hub too, where nothing runs them.
JK_MEMBERS=()
if [ "$WITH_JOBKINDS" = 1 ]; then
  for m in "${NAMES[@]}"; do [ "${m%%-*}" = ai ] && JK_MEMBERS+=("$m"); done
  (
    rc=0
    jk_install_crds "$RUN/kubeconfig-hub" &
    hub_crds=$!
    if [ ${#JK_MEMBERS[@]} -gt 0 ]; then JOBKINDS_BIN=$JOBKINDS_BIN "$TB/jobkinds/start.sh" "${JK_MEMBERS[@]}" || rc=1; fi
    wait "$hub_crds" || rc=1
    exit $rc
  ) >"$LOGS/jobkinds-start.log" 2>&1 &
  JK_JOB=$!
fi

# ---- health of controllers, schedulers and KWOK; nodes Ready
healthz() { curl -skf -m 3 "https://127.0.0.1:$1/healthz"; }
wait_for "kube-controller-manager hub" 60 "$LOGS/kube-controller-manager-hub.log" \
  "$PIDS/kube-controller-manager@hub.pid" healthz "$KCM_PORT_BASE"
for i in "${!NAMES[@]}"; do
  m=${NAMES[$i]} k=$(( i + 1 ))
  wait_for "kube-controller-manager $m" 60 "$LOGS/kube-controller-manager-$m.log" \
    "$PIDS/kube-controller-manager@$m.pid" healthz $(( KCM_PORT_BASE + k ))
  wait_for "kube-scheduler $m" 60 "$LOGS/kube-scheduler-$m.log" "$PIDS/kube-scheduler@$m.pid" \
    healthz $(( SCHED_PORT_BASE + k ))
  wait_for "kwok $m" 60 "$LOGS/kwok-$m.log" "$PIDS/kwok@$m.pid" \
    curl -sf -m 3 "http://127.0.0.1:$(( KWOK_PORT_BASE + k ))/healthz"
done
nodes_ready() { # kubeconfig expected
  [ "$(kubectl --kubeconfig="$1" get nodes --no-headers 2>/dev/null | awk '$2 == "Ready"' | wc -l)" -eq "$2" ]
}
for i in "${!NAMES[@]}"; do
  m=${NAMES[$i]}
  wait "${NODE_JOBS[$i]}" || fail "nodes $m" "$LOGS/nodes-$m.log" "kubectl create nodes failed"
  want=$(grep -c '^kind: Node' "$RUN/k8s/$m/nodes.yaml")
  wait_for "KWOK nodes Ready in $m" 120 "$LOGS/kwok-$m.log" "$PIDS/kwok@$m.pid" nodes_ready "$RUN/kubeconfig-$m" "$want"
  log "$m: $want nodes Ready"
done

# ---- Slurm secrets in the hub
if [ "$WITH_SLURM" = 1 ]; then
  wait "$SLURM_JOB" || fail slurm "" "Slurm start failed (see messages above)"
  cat > "$RUN/k8s/hub-slurm.yaml" <<EOF
apiVersion: v1
kind: Secret
metadata:
  name: slurm-token
  namespace: computenet-system
  labels:
    computenet.io/testbed-member: slurm
    computenet.io/credentials: "true"
type: Opaque
data:
  token: $(tr -d '\n' < "$RUN/slurm/token" | base64 -w0)
  user: $(printf '%s' "$SLURM_USER" | base64 -w0)
---
apiVersion: v1
kind: Secret
metadata:
  name: slurm-jwt-key
  namespace: computenet-system
  labels:
    computenet.io/testbed-member: slurm
    computenet.io/credentials: "true"
type: Opaque
data:
  jwt_hs256.key: $(b64 "$RUN/slurm/jwt_hs256.key")
EOF
  kubectl --kubeconfig="$RUN/kubeconfig-hub" create --validate=false -f "$RUN/k8s/hub-slurm.yaml" >>"$LOGS/hub-objects.log" 2>&1 ||
    fail "hub objects" "$LOGS/hub-objects.log" "kubectl create slurm secrets failed"
  log "hub: slurm-token and slurm-jwt-key secrets"
fi

if [ "$WITH_JOBKINDS" = 1 ]; then
  wait "$JK_JOB" || fail jobkinds "$LOGS/jobkinds-start.log" "job-kind controllers did not start"
  log "job-kind controllers ready on ${JK_MEMBERS[*]}; CRDs in the hub"
fi

if [ "$WITH_PROM" = 1 ]; then
  wait_for prometheus 60 "$LOGS/prometheus.log" "$PIDS/prometheus.pid" curl -sf "http://127.0.0.1:$PROMETHEUS_PORT/-/ready"
  log "prometheus ready"
fi

# ---- env file
{
  echo "# Generated by up.sh ($OPTIONS)"
  echo "export TESTBED_RUN_DIR=$RUN"
  echo "export TESTBED_BIN=$BIN"
  echo "export ETCD_URL=http://127.0.0.1:$ETCD_PORT"
  echo "export HUB_KUBECONFIG=$RUN/kubeconfig-hub"
  echo "export HUB_URL=https://127.0.0.1:$HUB_PORT"
  names="${NAMES[*]}"
  [ "$WITH_SLURM" = 1 ] && names="${names:+$names }slurm"
  echo "export MEMBER_NAMES=\"$names\""
  for i in "${!NAMES[@]}"; do
    m=${NAMES[$i]} p=$(env_prefix "${NAMES[$i]}")
    echo "export ${p}_KIND=kubernetes"
    echo "export ${p}_PROFILE=$(member_profile $(( i + 1 )))"
    echo "export ${p}_URL=https://127.0.0.1:${PORTS[$i]}"
    echo "export ${p}_KUBECONFIG=$RUN/kubeconfig-$m"
  done
  if [ "$WITH_SLURM" = 1 ]; then
    echo "export SLURM_KIND=slurm"
    echo "export SLURM_URL=http://127.0.0.1:$SLURMRESTD_PORT"
    echo "export SLURMRESTD_URL=http://127.0.0.1:$SLURMRESTD_PORT"
    echo "export SLURM_API_VERSION=v0.0.38"
    echo "export SLURM_USER_NAME=$SLURM_USER"
    echo "export SLURM_USER_TOKEN=$(tr -d '\n' < "$RUN/slurm/token")"
    echo "export SLURM_JWT_KEY_FILE=$RUN/slurm/jwt_hs256.key"
    echo "export SLURM_CONF=$SLURM_CONF_FILE"
    echo "export SLURM_JOB_DIR=$RUN/slurm/jobs"
    echo "export SLURM_TENANT_USERS=\"$SLURM_TENANT_USERS\""
  fi
  if [ "$WITH_PROM" = 1 ]; then
    echo "export PROMETHEUS_URL=http://127.0.0.1:$PROMETHEUS_PORT"
    echo "export PROMETHEUS_TARGETS_FILE=$RUN/prometheus/targets.json"
  fi
  if [ "$WITH_JOBKINDS" = 1 ]; then
    echo "export JOBKINDS=1"
    echo "export JOBKINDS_MEMBERS=\"${JK_MEMBERS[*]}\""
    echo "export JOBKINDS_BIN=$JOBKINDS_BIN"
    echo "export JOBSET_VERSION=$JOBSET_VERSION"
    echo "export TRAINER_VERSION=$TRAINER_VERSION"
    echo "export TRAINING_OPERATOR_VERSION=$TRAINING_OPERATOR_VERSION"
    for m in "${JK_MEMBERS[@]}"; do
      echo "export $(env_prefix "$m")_JOBKINDS_PORT_BASE=$(jk_member_base "$m")"
    done
  fi
} > "$RUN/env.tmp"
mv "$RUN/env.tmp" "$RUN/env"

echo "ready in $(el) s (start phase; build/install checks took $(fmt_ms $PREP_MS) s, total $(fmt_ms $(( $(now_ms) - T_ALL ))) s)"
echo "source $RUN/env"
