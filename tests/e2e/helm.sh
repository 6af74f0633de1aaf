#!/usr/bin/env bash
# The deployment artefacts on a real kube-apiserver (the test bed's hub): the Helm chart
# lints and renders, its values schema refuses bad values, the rendered objects pass a
# server-side dry run (and the "restricted" Pod Security Standard), the RBAC is least
# privilege (checked statically, then with `kubectl auth can-i` against a throwaway copy
# really applied) and enough (`computenet serve` runs as that ServiceAccount with the
# Deployment's flags, when the hub is idle), deploy/manifests/ is what the chart renders,
# the examples in deploy/examples/ are valid objects, and the Grafana dashboard only uses
# metrics that `computenet serve` exports. Needs the test bed up; builds helm on first
# use. COMPUTENET_BIN: the computenet binary (default target/debug/computenet).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=tests/e2e/lib.sh
. "$here/lib.sh"
# shellcheck disable=SC1091
. "$root/tests/testbed/run/env"
export KUBECONFIG=$HUB_KUBECONFIG

chart=$root/charts/computenet
NS=e2e-helm                 # throwaway namespace for the dry runs and the RBAC copy
RBAC_RELEASE=e2e-helm-rbac  # release name of the RBAC copy (its cluster-scoped names)
tmp=$(mktemp -d)
created_ns=()
SERVE_PID=
cleanup() {
  [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null
  kubectl delete memberclusters.computenet.io e2e-helm-ai --ignore-not-found --wait=false >/dev/null 2>&1
  kubectl delete clusterrolebinding,clusterrole -l "app.kubernetes.io/instance=$RBAC_RELEASE" --ignore-not-found >/dev/null 2>&1
  for ns in "$NS" "${created_ns[@]}"; do kubectl delete namespace "$ns" --ignore-not-found --wait=false >/dev/null 2>&1; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# A python3 with PyYAML (the pyenv one or Debian's python3-yaml).
PY=
for p in python3 /usr/bin/python3; do
  if "$p" -c 'import yaml' >/dev/null 2>&1; then PY=$p; break; fi
done
[ -n "$PY" ] || { echo "helm.sh: needs python3 with PyYAML (Debian: python3-yaml)" >&2; exit 1; }

# --- helm itself
if HELM=$("$root/tests/testbed/build-helm.sh" 2>"$tmp/build.log") && [ -x "$HELM" ]; then
  ok "helm is built ($("$HELM" version --short))"
else
  not_ok "helm is built"; sed 's/^/    /' "$tmp/build.log" | tail -20
  summary; exit 1
fi
export HELM_BIN=$HELM
# Keep helm's own state out of the user's home.
export HELM_CACHE_HOME=$tmp/helm/cache HELM_CONFIG_HOME=$tmp/helm/config HELM_DATA_HOME=$tmp/helm/data

render() { "$HELM" template "$@" "$chart"; }
check "helm lint --strict" "$HELM" lint --strict "$chart"
check "helm lint --strict with the ServiceMonitor" "$HELM" lint --strict "$chart" --set serviceMonitor.enabled=true

# --- rendering
rendered() { # NAME OUT HELM_ARGS...: helm template into OUT
  local name=$1 out=$2; shift 2
  if render computenet "$@" > "$out" 2>"$tmp/render.err"; then ok "$name"; else not_ok "$name"; sed 's/^/    /' "$tmp/render.err"; fi
}
rendered "renders with the default values" "$tmp/default.yaml" --namespace computenet-system
rendered "renders with serviceMonitor.enabled" "$tmp/sm.yaml" --namespace computenet-system --set serviceMonitor.enabled=true
rendered "renders with webhook.enabled=false" "$tmp/nohook.yaml" --namespace computenet-system --set webhook.enabled=false

# py FILE... <<'EOF' script EOF: runs a python check on YAML files; `docs` holds every
# object of them (None documents dropped), `fail(msg)` records a failure.
py() {
  "$PY" - "$@" 3<&0 <<'EOF'
import sys, yaml, json
docs = []
for f in sys.argv[1:]:
    with open(f) as fh:
        docs += [d for d in yaml.safe_load_all(fh) if d]
errors = []
def fail(msg):
    if msg not in errors: errors.append(msg)
def kinds(k): return [d for d in docs if d.get("kind") == k]
def one(k, name=None):
    found = [d for d in kinds(k) if name is None or d["metadata"]["name"] == name]
    if len(found) != 1: fail(f"expected one {k} {name or ''}, found {len(found)}"); return {}
    return found[0]
exec(open("/dev/fd/3").read())
for e in errors: print(e)
sys.exit(1 if errors else 0)
EOF
}

check "the default render has the expected objects (and no ServiceMonitor)" py "$tmp/default.yaml" <<'EOF'
have = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
want = sorted([("ServiceAccount", "computenet"), ("ClusterRole", "computenet"), ("ClusterRoleBinding", "computenet"),
               ("ClusterRole", "computenet-dashboard-viewer"),
               ("Role", "computenet-secrets"), ("RoleBinding", "computenet-secrets"),
               ("Role", "computenet-leader-election"), ("RoleBinding", "computenet-leader-election"),
               ("Role", "computenet-profiles"), ("RoleBinding", "computenet-profiles"),
               ("Role", "computenet-admission-key"), ("RoleBinding", "computenet-admission-key"),
               ("ClusterRole", "computenet-edit"), ("ClusterRole", "computenet-view"),
               ("ClusterRole", "computenet-usage-reader"),
               ("Service", "computenet"), ("Deployment", "computenet"), ("PodDisruptionBudget", "computenet"),
               ("MutatingWebhookConfiguration", "computenet")])
if have != want: fail(f"objects: {have}")
for d in docs:
    if d["kind"] not in ("ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration") and d["metadata"].get("namespace") != "computenet-system":
        fail(f'{d["kind"]}/{d["metadata"]["name"]} is not in the release namespace')
EOF

check "the ServiceMonitor renders only when enabled, scraping the Service's http port" py "$tmp/sm.yaml" <<'EOF'
sm = one("ServiceMonitor")
svc = one("Service")
if sm.get("apiVersion") != "monitoring.coreos.com/v1": fail(f'apiVersion {sm.get("apiVersion")}')
sel = sm["spec"]["selector"]["matchLabels"]
if any(svc["metadata"]["labels"].get(k) != v for k, v in sel.items()): fail(f"selector {sel} does not match the Service")
ep = sm["spec"]["endpoints"][0]
if ep.get("port") != "http" or ep.get("path") != "/metrics": fail(f"endpoint {ep}")
if "http" not in [p["name"] for p in svc["spec"]["ports"]]: fail("the Service has no http port")
if sm["spec"]["namespaceSelector"]["matchNames"] != ["computenet-system"]: fail("namespaceSelector")
EOF

check "webhook.enabled=false: no MutatingWebhookConfiguration, no webhook flags, port or rules" py "$tmp/nohook.yaml" <<'EOF'
if any(d["kind"] == "MutatingWebhookConfiguration" for d in docs): fail("a MutatingWebhookConfiguration")
c = one("Deployment")["spec"]["template"]["spec"]["containers"][0]
if any(a.startswith("--webhook") for a in c["args"]): fail(f'args {c["args"]}')
if [p["name"] for p in c["ports"]] != ["http"]: fail(f'ports {c["ports"]}')
for d in docs:
    for r in d.get("rules", []) if d["kind"] in ("ClusterRole", "Role") else []:
        if "mutatingwebhookconfigurations" in r.get("resources", []) or "computenet-webhook-cert" in r.get("resourceNames", []):
            fail(f"webhook grant left: {r}")
EOF

check "Deployment: replicas, args, POD_NAME, probes, security context, image" py "$tmp/default.yaml" <<'EOF'
dep = one("Deployment")
spec = dep["spec"]; pod = spec["template"]["spec"]; c = pod["containers"][0]
if spec["replicas"] != 2: fail(f'replicas {spec["replicas"]}')
if c["image"] != "ghcr.io/computenet/computenet:0.1.0": fail(f'image {c["image"]}')
args = c["args"]
for a in ["serve", "--listen=0.0.0.0:8080", "--web-auth=kubernetes", "--lease-namespace=computenet-system", "--lease-name=computenet-scheduler"]:
    if a not in args: fail(f"missing arg {a}: {args}")
if "--no-leader-election" in args: fail("leader election is off by default")
if "--metrics-job-labels" in args: fail("job names in /metrics are off by default")
env = {e["name"]: e for e in c["env"]}
if env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "metadata.name": fail("POD_NAME")
if [(p["name"], p["containerPort"]) for p in c["ports"]] != [("http", 8080), ("webhook", 9443)]: fail(f'ports {c["ports"]}')
for a in ["--webhook-listen=0.0.0.0:9443", "--webhook-hosts=computenet.computenet-system.svc", "--webhook-configuration=computenet"]:
    if a not in args: fail(f"missing webhook arg {a}: {args}")
hook = one("MutatingWebhookConfiguration")["webhooks"]
if [h["name"] for h in hook] != ["hold.computenet.io", "finalize.computenet.io"]: fail(f"webhooks {hook}")
f = hook[1]
if f["failurePolicy"] != "Ignore" or "objectSelector" in f: fail(f"finalize webhook {f}")
if f["rules"] != [{"apiGroups": ["computenet.io"], "apiVersions": ["*"], "resources": ["trainingjobs"], "operations": ["CREATE"], "scope": "Namespaced"}]: fail(f'finalize rules {f["rules"]}')
if f["clientConfig"] != hook[0]["clientConfig"]: fail(f'finalize clientConfig {f["clientConfig"]}')
w = hook[0]
if w["clientConfig"]["service"] != {"name": "computenet", "namespace": "computenet-system", "path": "/mutate", "port": 443}: fail(f'clientConfig {w["clientConfig"]}')
if "caBundle" in w["clientConfig"]: fail("the caBundle is the service's to write")
if w["objectSelector"] != {"matchExpressions": [{"key": "computenet.io/queue-name", "operator": "Exists"}]}: fail(f'objectSelector {w["objectSelector"]}')
if sorted(r["resources"][0] for r in w["rules"]) != ["jobsets", "pytorchjobs", "trainjobs"]: fail(f'rules {w["rules"]}')
if any(sorted(r["operations"]) != ["CREATE", "UPDATE"] for r in w["rules"]): fail(f'operations {w["rules"]}')
svc = one("Service")
if ("webhook", 443, "webhook") not in [(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]]: fail(f'Service ports {svc["spec"]["ports"]}')
if c["livenessProbe"]["httpGet"] != {"path": "/healthz", "port": "http"}: fail("liveness probe")
if c["readinessProbe"]["httpGet"] != {"path": "/readyz", "port": "http"}: fail("readiness probe")
sc = c["securityContext"]; psc = pod["securityContext"]
if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")): fail("runAsNonRoot")
if sc.get("readOnlyRootFilesystem") is not True: fail("readOnlyRootFilesystem")
if sc.get("allowPrivilegeEscalation") is not False: fail("allowPrivilegeEscalation")
if sc.get("capabilities", {}).get("drop") != ["ALL"]: fail("capabilities drop ALL")
if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault": fail("seccompProfile")
for k in ("requests", "limits"):
    if not c.get("resources", {}).get(k): fail(f"resources.{k}")
if pod["serviceAccountName"] != "computenet": fail("serviceAccountName")
EOF

render computenet --namespace computenet-system --set leaderElection.enabled=false --set replicaCount=1 > "$tmp/nole.yaml" 2>&1
# --lease-namespace stays: its UID is the default hub id.
check "leaderElection.enabled=false: --no-leader-election, no lease name or duration and no Lease Role" py "$tmp/nole.yaml" <<'EOF'
args = one("Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
if "--no-leader-election" not in args or any(a.startswith(("--lease-name=", "--lease-duration-s=")) for a in args): fail(f"args {args}")
if [d for d in kinds("Role") if "leader" in d["metadata"]["name"]]: fail("a Lease Role is rendered")
EOF

# The flags the chart passes exist in the binary it runs (the one tests/run.sh builds).
BIN=${COMPUTENET_BIN:-$root/target/debug/computenet}
if [ -x "$BIN" ]; then
  # shellcheck disable=SC2016
  check "the Deployment's flags are flags of computenet serve" bash -c '
    help=$("$1" serve --help) || exit 1
    for f in $(cat "$2" "$3" | grep -oE -- "- --[a-z-]+" | sed "s/^- //" | sort -u); do
      printf "%s\n" "$help" | grep -qE -- "(^|[ ,])$f([ =]|\$)" || { echo "computenet serve has no $f"; bad=1; }
    done
    exit ${bad:-0}' _ "$BIN" "$tmp/default.yaml" "$tmp/nole.yaml"
else
  echo "skip - the Deployment's flags are flags of computenet serve (no binary at $BIN)"
fi

# --- values.schema.json
refused_values() { # NAME PATTERN HELM_ARGS...: helm template must fail with PATTERN
  local name=$1 pattern=$2 out; shift 2
  if out=$(render computenet "$@" 2>&1); then
    not_ok "$name (accepted)"
  elif printf '%s' "$out" | grep -qE "$pattern"; then
    ok "$name"
  else
    not_ok "$name (wrong message)"; printf '%s\n' "$out" | sed 's/^/    /' | tail -10
  fi
}
printf 'replicaCount: two\n' > "$tmp/bad-replicas.yaml"
refused_values "schema: replicaCount must be an integer" "replicaCount.*want integer" -f "$tmp/bad-replicas.yaml"
refused_values "schema: unknown top-level keys are refused" "additional properties 'replicas' not allowed" --set replicas=3
refused_values "schema: unknown nested keys are refused" "additional properties 'enable' not allowed" --set serviceMonitor.enable=true
refused_values "schema: service.port is a port number" "port.*maximum" --set service.port=70000
refused_values "schema: image.pullPolicy is an enum" "pullPolicy" --set image.pullPolicy=Sometimes
refused_values "schema: leaderElection.enabled is a boolean" "enabled.*want boolean" --set-string leaderElection.enabled=yes
check "schema: valid overrides are accepted" render computenet --set replicaCount=3 --set image.tag=0.2.0 \
  --set 'rbac.secretNames={ai-west-kubeconfig}' --set serviceMonitor.enabled=true

# --- RBAC, statically
check "RBAC: no wildcards, no cluster-admin, Secrets only through namespaced Roles" py "$tmp/default.yaml" "$tmp/sm.yaml" <<'EOF'
for d in kinds("ClusterRole") + kinds("Role"):
    for r in d.get("rules", []):
        for f in ("verbs", "resources", "apiGroups", "resourceNames", "nonResourceURLs"):
            if any("*" in x for x in r.get(f, [])): fail(f'{d["kind"]}/{d["metadata"]["name"]}: wildcard in {f}: {r}')
for d in kinds("ClusterRoleBinding") + kinds("RoleBinding"):
    if d["roleRef"]["name"] in ("cluster-admin", "admin", "edit"): fail(f'{d["metadata"]["name"]} binds {d["roleRef"]["name"]}')
    own = {x["metadata"]["name"] for x in kinds(d["roleRef"]["kind"])}
    if d["roleRef"]["name"] not in own: fail(f'{d["metadata"]["name"]} binds {d["roleRef"]["name"]}, not one of the chart\'s roles')
TENANT_ROLES = ("computenet-edit", "computenet-view")
for d in kinds("ClusterRole"):
    if d["metadata"]["name"] in TENANT_ROLES:
        # Tenants' roles: computenet.io objects only, never their status.
        for r in d["rules"]:
            if r.get("apiGroups") != ["computenet.io"] or any("/" in x for x in r.get("resources", [])):
                fail(f'{d["metadata"]["name"]} grants more than computenet.io objects: {r}')
            # Usage names every tenant's namespaces: only the usage reader role reads it.
            if "computeusages" in r.get("resources", []):
                fail(f'{d["metadata"]["name"]} lets tenants read the usage store: {r}')
        continue
    if d["metadata"]["name"] == "computenet-usage-reader":
        if any(set(r["verbs"]) - {"get", "list", "watch"} or r.get("apiGroups") != ["computenet.io"] for r in d["rules"]):
            fail(f"the usage reader does more than read computenet.io objects: {d['rules']}")
        continue
    for r in d["rules"]:
        if "secrets" in r.get("resources", []): fail(f"the ClusterRole grants secrets: {r}")
        if "" in r.get("apiGroups", []) and set(r.get("resources", [])) - {"namespaces", "events"}: fail(f"core resources: {r}")
        if "customresourcedefinitions" in r.get("resources", []) and sorted(r.get("resourceNames", [])) != \
           ["computecohorts.computenet.io", "computequeues.computenet.io", "computeusages.computenet.io", "memberclusters.computenet.io", "trainingjobs.computenet.io"]:
            fail(f"CRD access is not limited to computenet's own: {r}")
        # TrainingJobs may be created (those that queue a JobSet, TrainJob or PyTorchJob), not deleted or replaced.
        creates_jobs = r.get("resources") == ["trainingjobs"] and set(r["verbs"]) & {"delete", "deletecollection", "update", "escalate", "bind", "impersonate"} == set()
        # The usage store is the service's own record: written, compacted and deleted by it.
        usage_store = r.get("resources") == ["computeusages"] and set(r["verbs"]) <= {"get", "list", "watch", "create", "update", "delete"}
        if set(r["verbs"]) & {"delete", "deletecollection", "create", "update", "escalate", "bind", "impersonate"} and \
           not creates_jobs and not usage_store and not (set(r.get("resources", [])) <= {"events", "tokenreviews", "subjectaccessreviews"}):
            fail(f"the ClusterRole writes more than status, finalizer patches, events and reviews: {r}")
viewer = next(d for d in kinds("ClusterRole") if d["metadata"]["name"] == "computenet-dashboard-viewer")
if viewer["rules"] != [{"nonResourceURLs": ["/computenet/api/pool"], "verbs": ["get"]}]:
    fail(f'the dashboard ClusterRole grants more than get /computenet/api/pool: {viewer["rules"]}')
secret_rules = [(d, r) for d in kinds("Role") for r in d["rules"] if "secrets" in r.get("resources", [])]
if not secret_rules: fail("no Role grants reading Secrets")
for d, r in secret_rules:
    # The admission key Role may also create (its one Secret, made when absent).
    key_create = d["metadata"]["name"].endswith("-admission-key") and r["verbs"] == ["create"]
    if r["verbs"] != ["get"] and not key_create: fail(f"Secrets verbs {r['verbs']}")
    if d["metadata"]["namespace"] != "computenet-system": fail(f"Secrets Role in {d['metadata']['namespace']}")
EOF

# --- server-side dry runs on the hub
# A real, throwaway namespace that enforces the "restricted" Pod Security Standard: the
# dry run of the Deployment then fails (warnings are errors) if the pod would not pass it.
kubectl delete namespace "$NS" --ignore-not-found --wait=true --timeout=60s >/dev/null 2>&1
kubectl create namespace "$NS" >/dev/null && kubectl label namespace "$NS" pod-security.kubernetes.io/enforce=restricted >/dev/null
render computenet --namespace "$NS" --include-crds > "$tmp/ns.yaml"
check "the rendered chart (CRDs included) passes kubectl apply --dry-run=server" \
  kubectl apply --dry-run=server -f "$tmp/ns.yaml"
render computenet --namespace "$NS" > "$tmp/ns-nocrds.yaml"
check "the Deployment passes the restricted Pod Security Standard (no warnings)" \
  kubectl apply --dry-run=server --warnings-as-errors -f "$tmp/ns-nocrds.yaml"
check "helm install --dry-run=server against the hub (its kubeVersion constraint, server-side checks)" \
  "$HELM" install computenet "$chart" --namespace "$NS" --dry-run=server
# The ServiceMonitor's CRD belongs to the Prometheus Operator and is not on the hub. A
# stub CRD installed for the test would only check the stub's own schema, so the
# ServiceMonitor's shape is checked above and the rest of that render is dry-run here.
render computenet --namespace "$NS" --set serviceMonitor.enabled=true > "$tmp/ns-sm.yaml"
"$PY" -c 'import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] != "ServiceMonitor"]
yaml.safe_dump_all(docs, open(sys.argv[2], "w"))' "$tmp/ns-sm.yaml" "$tmp/ns-sm-rest.yaml"
check "the render with serviceMonitor.enabled passes the dry run (less the ServiceMonitor)" \
  kubectl apply --dry-run=server -f "$tmp/ns-sm-rest.yaml"
render computenet --namespace "$NS" \
  --set 'rbac.secretNames={ai-west-kubeconfig,hpc-north-slurm}' --set leaderElection.enabled=false --set replicaCount=1 > "$tmp/ns-opts.yaml"
check "a render with options (Secret names, no leader election) passes the dry run" \
  kubectl apply --dry-run=server -f "$tmp/ns-opts.yaml"

# --- deploy/: the plain manifests are the chart's default render, and apply
check "deploy/manifests/ is current (deploy/render.sh --check)" "$root/deploy/render.sh" --check
if ! kubectl get namespace computenet-system >/dev/null 2>&1; then
  kubectl create namespace computenet-system >/dev/null && created_ns+=(computenet-system)
fi
check "deploy/manifests/ passes kubectl apply --dry-run=server" kubectl apply --dry-run=server -f "$root/deploy/manifests/"
check "the chart's CRDs are the generated ones (deploy/crds/)" diff -r "$root/deploy/crds" "$chart/crds"

# --- deploy/examples/
check "CRDs apply" kubectl apply -f "$root/deploy/crds/"
check "CRDs established" kubectl wait --for=condition=Established crd/trainingjobs.computenet.io crd/memberclusters.computenet.io crd/computequeues.computenet.io crd/computeusages.computenet.io crd/computecohorts.computenet.io --timeout=30s
# The TrainingJob example lives in the tenant namespace of the example: create it for the
# dry run if the hub does not have it (and remove it afterwards).
if ! kubectl get namespace team-a >/dev/null 2>&1; then
  kubectl apply -f "$root/deploy/examples/tenant-namespace.yaml" >/dev/null && created_ns+=(team-a)
fi
for f in "$root"/deploy/examples/*.yaml; do
  check "example $(basename "$f") passes kubectl apply --dry-run=server" kubectl apply --dry-run=server -f "$f"
done
check "the examples cover a Kubernetes member, a Slurm member, a queue and a job" py "$root"/deploy/examples/*.yaml <<'EOF'
have = {(d["kind"], "slurm" if "slurm" in d.get("spec", {}) else "kubernetes" if "kubernetes" in d.get("spec", {}) else "") for d in docs}
for want in [("MemberCluster", "kubernetes"), ("MemberCluster", "slurm"), ("ComputeQueue", ""), ("TrainingJob", "")]:
    if want not in have: fail(f"no {want}")
EOF

# --- the Grafana dashboard
check "Grafana dashboard: parses, variables, panels, and only exported metrics" "$PY" - "$root/deploy/grafana/computenet-dashboard.json" <<'EOF'
import json, re, sys
d = json.load(open(sys.argv[1]))
exported = {
    "computenet_cluster_accelerators", "computenet_cluster_cpu_cores", "computenet_cluster_ready",
    "computenet_cluster_heartbeat_age_seconds", "computenet_cluster_pue", "computenet_cluster_power_watts",
    "computenet_cluster_gpu_utilization_ratio", "computenet_cluster_efficiency_tflops_per_watt",
    "computenet_queue_jobs", "computenet_queue_accelerators_used", "computenet_queue_accelerators_quota",
    "computenet_pending_job_position", "computenet_admissions_total", "computenet_preemptions_total",
    "computenet_dispatch_errors_total", "computenet_scheduling_cycle_duration_seconds",
    "computenet_usage_gpu_seconds_total", "computenet_usage_energy_kwh_total", "computenet_usage_cost_total",
    "computenet_usage_carbon_kg_total", "computenet_queue_share", "computenet_queue_past_share",
    "computenet_queue_budget_spent_ratio", "computenet_queue_budget_exhausted",
}
histograms = {"computenet_scheduling_cycle_duration_seconds"}
errors = []
variables = {v["name"]: v for v in d["templating"]["list"]}
if variables.get("datasource", {}).get("type") != "datasource" or variables["datasource"].get("query") != "prometheus":
    errors.append("no Prometheus datasource variable named datasource")
if variables.get("cluster", {}).get("type") != "query": errors.append("no cluster variable")
panels = [p for p in d["panels"] if p["type"] != "row"]
exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
exprs += [v["definition"] for v in variables.values() if v["type"] == "query"]
for p in panels:
    if p.get("datasource", {}).get("uid") != "${datasource}": errors.append(f'panel {p["title"]!r}: datasource is not ${{datasource}}')
    if not p.get("targets"): errors.append(f'panel {p["title"]!r}: no query')
    for t in p.get("targets", []):
        if t.get("datasource", {}).get("uid") != "${datasource}": errors.append(f'panel {p["title"]!r}: a target has another datasource')
used = set()
for e in exprs:
    for name in re.findall(r"\bcomputenet_[a-z0-9_]+", e):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if name in exported: used.add(name)
        elif base in histograms: used.add(base)
        else: errors.append(f"unknown metric {name} in {e}")
if exported - used: errors.append(f"metrics without a panel: {sorted(exported - used)}")
ids = [p["id"] for p in d["panels"]]
if len(ids) != len(set(ids)): errors.append("duplicate panel ids")
titles = " ".join(p["title"] for p in panels).lower()
for want in ["free", "allocated", "readiness", "heartbeat", "quota", "admissions", "preemptions", "dispatch errors", "cycle duration", "pue", "power", "utilisation", "tflops per watt", "gpu-hours", "energy", "cost", "budget", "share"]:
    if want not in titles: errors.append(f"no panel about {want}")
print("\n".join(errors) or f"{len(panels)} panels, {len(exprs)} queries, {len(used)} metrics")
sys.exit(1 if errors else 0)
EOF
if [ -n "${PROMETHEUS_URL:-}" ] && curl -fsS -o /dev/null "$PROMETHEUS_URL/-/ready" 2>/dev/null; then
  check "Grafana dashboard: every query parses in Prometheus" "$PY" - "$root/deploy/grafana/computenet-dashboard.json" "$PROMETHEUS_URL" <<'EOF'
import json, sys, urllib.error, urllib.parse, urllib.request
d = json.load(open(sys.argv[1]))
bad = []
for p in d["panels"]:
    for t in p.get("targets", []):
        q = t["expr"].replace("$cluster", ".*").replace("$queue", ".*").replace("$__rate_interval", "1m").replace("$__range", "1h")
        try:
            urllib.request.urlopen(sys.argv[2] + "/api/v1/query?" + urllib.parse.urlencode({"query": q}), timeout=10).read()
        except urllib.error.HTTPError as e:
            bad.append(f'{p["title"]}: {t["expr"]}: {e.read()[:200]!r}')
print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF
fi

# --- RBAC, really: apply only the RBAC objects of a throwaway release, then ask the
# apiserver what its ServiceAccount may do.
render "$RBAC_RELEASE" --namespace "$NS" --show-only templates/serviceaccount.yaml --show-only templates/rbac.yaml > "$tmp/rbac.yaml"
check "the RBAC objects of a throwaway release apply" kubectl apply -f "$tmp/rbac.yaml"
SA="system:serviceaccount:$NS:$RBAC_RELEASE-computenet"
can() { # can yes|no VERB RESOURCE [kubectl auth can-i flags...]
  local want=$1 got; shift
  got=$(kubectl auth can-i "$@" --as="$SA" 2>/dev/null)
  [ "$got" = "$want" ] || { echo "kubectl auth can-i $* as $SA: $got (want $want)"; return 1; }
}
check "SA can watch TrainingJobs in all namespaces" can yes watch trainingjobs.computenet.io --all-namespaces
check "SA can patch trainingjobs/status" can yes patch trainingjobs.computenet.io --subresource=status -n default
check "SA can patch TrainingJobs (finalizers)" can yes patch trainingjobs.computenet.io -n default
check "SA can patch memberclusters/status" can yes patch memberclusters.computenet.io --subresource=status
check "SA can list namespaces" can yes list namespaces
check "SA can create events (events.k8s.io and core)" bash -c "$(declare -f can); SA=$SA; can yes create events.events.k8s.io -n default && can yes create events -n default"
check "SA can get its CRDs" can yes get customresourcedefinitions.apiextensions.k8s.io/trainingjobs.computenet.io
check "SA can get Secrets in its namespace" can yes get secrets -n "$NS"
check "SA can create its admission key Secret and read it by name" bash -c "$(declare -f can); SA=$SA; can yes create secrets -n $NS && can yes get secrets/computenet-admission-key -n $NS"
check "SA can create and renew its Lease" bash -c "$(declare -f can); SA=$SA; can yes create leases.coordination.k8s.io -n $NS && can yes update leases.coordination.k8s.io/computenet-scheduler -n $NS"
check "SA cannot update another Lease" can no update leases.coordination.k8s.io/kube-controller-manager -n "$NS"
check "SA can read and watch its profiles ConfigMap" bash -c "$(declare -f can); SA=$SA; can yes get configmaps/computenet-profiles -n $NS && can yes watch configmaps/computenet-profiles -n $NS"
check "SA cannot read other ConfigMaps" bash -c "$(declare -f can); SA=$SA; can no get configmaps/kube-root-ca.crt -n $NS && can no list configmaps -n $NS"
check "SA cannot list Secrets, even in its namespace" can no list secrets -n "$NS"
check "SA cannot list Secrets cluster-wide" can no list secrets --all-namespaces
check "SA cannot get Secrets in another namespace" can no get secrets -n kube-system
check "SA cannot delete Secrets" can no delete secrets -n "$NS"
check "SA cannot delete TrainingJobs, and creates them only for queued job objects" bash -c "$(declare -f can); SA=$SA; can no delete trainingjobs.computenet.io -n default && can yes create trainingjobs.computenet.io -n default"
check "SA cannot change a job's spec with update" can no update trainingjobs.computenet.io -n default
check "SA cannot read other CRDs" can no get customresourcedefinitions.apiextensions.k8s.io/leases.example.io
check "SA can create TokenReviews and SubjectAccessReviews (--web-auth=kubernetes)" bash -c "$(declare -f can); SA=$SA; can yes create tokenreviews.authentication.k8s.io && can yes create subjectaccessreviews.authorization.k8s.io"
# The dashboard ClusterRole, bound to a made-up user (the binding carries the release's
# label, so the cleanup removes it).
kubectl create clusterrolebinding "$RBAC_RELEASE-dashboard-viewer" --clusterrole="$RBAC_RELEASE-computenet-dashboard-viewer" \
  --user=e2e-helm-viewer --dry-run=client -o yaml |
  kubectl label --local -f - "app.kubernetes.io/instance=$RBAC_RELEASE" -o yaml | kubectl apply -f - >/dev/null
check "the dashboard ClusterRole grants get on /computenet/api/pool, nothing else" bash -c "
  [ \"\$(kubectl auth can-i get /computenet/api/pool --as=e2e-helm-viewer)\" = yes ] &&
  [ \"\$(kubectl auth can-i get /computenet/api/pool --as=e2e-helm-nobody)\" = no ] &&
  [ \"\$(kubectl auth can-i list trainingjobs.computenet.io -A --as=e2e-helm-viewer)\" = no ]"
check "SA cannot create pods or anything cluster-wide" bash -c "$(declare -f can); SA=$SA; can no create pods -n $NS && can no '*' '*'"

# --- the real service under exactly that RBAC: `computenet serve` as the ServiceAccount
# (impersonated through the kubeconfig), with the Deployment's flags, must start, take the
# Lease, read a member's kubeconfig Secret, write the member's status, and answer the
# probes and /metrics, with no "forbidden" in its log. It schedules whatever is on the hub
# while it runs, and writes the status of every MemberCluster, so it waits (30 s at most)
# for a hub without TrainingJobs, other MemberClusters or a running scheduler, and is
# skipped otherwise (in CI the e2e tests run one after another: the hub is idle then).
stop_serve() { [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null; SERVE_PID=; }
cat > "$tmp/hub_in_use.py" <<'EOF'
# Prints what uses the hub (TrainingJobs, other MemberClusters, a live scheduler Lease).
import datetime, json, subprocess
def get(what):
    out = subprocess.run(["kubectl", "get", what, "-A", "-o", "json"], capture_output=True, text=True)
    return json.loads(out.stdout)["items"] if out.returncode == 0 else []
def name(o):
    m = o["metadata"]
    return m["namespace"] + "/" + m["name"] if m.get("namespace") else m["name"]
now = datetime.datetime.now(datetime.timezone.utc)
use = ["TrainingJob " + name(j) for j in get("trainingjobs.computenet.io")]
use += ["MemberCluster " + name(m) for m in get("memberclusters.computenet.io") if name(m) != "e2e-helm-ai"]
for lease in get("leases.coordination.k8s.io"):
    spec = lease.get("spec", {})
    if lease["metadata"]["name"] != "computenet-scheduler" or not spec.get("renewTime"):
        continue
    renewed = datetime.datetime.fromisoformat(spec["renewTime"].replace("Z", "+00:00"))
    if (now - renewed).total_seconds() < spec.get("leaseDurationSeconds", 15) + 5:
        use.append("scheduler " + name(lease))
print(", ".join(use[:4]) + (" ..." if len(use) > 4 else ""))
EOF
inuse=
if [ -x "$BIN" ]; then
  for _ in $(seq 30); do
    inuse=$("$PY" "$tmp/hub_in_use.py")
    [ -z "$inuse" ] && break
    sleep 1
  done
fi
if [ ! -x "$BIN" ]; then
  echo "skip - computenet serve under the chart's RBAC (no binary at $BIN)"
elif [ -n "$inuse" ]; then
  echo "skip - computenet serve under the chart's RBAC (the hub is in use: $inuse)"
else
  "$PY" - "$HUB_KUBECONFIG" "$tmp/sa.kubeconfig" "$SA" <<'EOF'
import sys, yaml
kc = yaml.safe_load(open(sys.argv[1]))
user = next(c["context"]["user"] for c in kc["contexts"] if c["name"] == kc["current-context"])
next(u for u in kc["users"] if u["name"] == user)["user"]["as"] = sys.argv[3]
yaml.safe_dump(kc, open(sys.argv[2], "w"))
EOF
  port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  kubectl create secret generic e2e-helm-member -n "$NS" --from-file=kubeconfig="$AI_1_KUBECONFIG" >/dev/null
  kubectl label secret e2e-helm-member -n "$NS" computenet.io/credentials=true >/dev/null
  kubectl apply -f - >/dev/null <<EOT
apiVersion: computenet.io/v1alpha1
kind: MemberCluster
metadata: {name: e2e-helm-ai}
spec:
  kind: AI
  site: west
  kubernetes: {kubeconfigSecretRef: {name: e2e-helm-member, namespace: $NS, key: kubeconfig}, namespace: e2e-helm-jobs}
EOT
  # The chart's arguments, with this test's listen address and the throwaway release's
  # namespace for the Lease, the profiles ConfigMap and the member credentials.
  mapfile -t args < <("$PY" - "$tmp/default.yaml" <<'EOF'
import sys, yaml
dep = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "Deployment")
for a in dep["spec"]["template"]["spec"]["containers"][0]["args"]:
    if not a.startswith(("--listen=", "--lease-namespace=", "--profiles-namespace=", "--credentials-namespace=",
                         "--webhook-listen=", "--webhook-configuration=")): print(a)
EOF
)
  hook_port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  kubectl delete secret computenet-webhook-cert -n "$NS" --ignore-not-found >/dev/null 2>&1
  # The webhook on a free port, its configuration the throwaway release's (not installed
  # here: the service says so and serves on).
  POD_NAME=e2e-helm-0 setsid "$BIN" "${args[@]}" --kubeconfig "$tmp/sa.kubeconfig" --listen "127.0.0.1:$port" \
    --webhook-listen "127.0.0.1:$hook_port" --webhook-configuration "$RBAC_RELEASE-computenet" \
    --lease-namespace "$NS" --profiles-namespace "$NS" --credentials-namespace "$NS" > "$tmp/serve.log" 2>&1 &
  SERVE_PID=$!
  url="http://127.0.0.1:$port"
  check "serve as the ServiceAccount: /healthz answers" wait_for 30 curl -fsS "$url/healthz"
  check "serve as the ServiceAccount: it takes the Lease" wait_for 30 bash -c \
    "[ \"\$(kubectl get lease computenet-scheduler -n $NS -o jsonpath='{.spec.holderIdentity}')\" = e2e-helm-0 ]"
  check "serve as the ServiceAccount: /readyz answers once leading" wait_for 30 curl -fsS "$url/readyz"
  check "serve as the ServiceAccount: the webhook answers over TLS with the certificate it made (Secret created)" bash -c "
    kubectl get secret computenet-webhook-cert -n $NS -o jsonpath='{.data.ca\\.crt}' | base64 -d > $tmp/hook-ca.crt &&
    curl -fsS --cacert $tmp/hook-ca.crt --resolve computenet.computenet-system.svc:$hook_port:127.0.0.1 \
      -H 'Content-Type: application/json' -d '{\"request\":{\"uid\":\"u\",\"operation\":\"CREATE\"}}' \
      https://computenet.computenet-system.svc:$hook_port/mutate | grep -q '\"allowed\":true'"
  check "serve as the ServiceAccount: reads the member Secret and writes the member's status" wait_for 60 bash -c \
    "[ \"\$(kubectl get mcl e2e-helm-ai -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}')\" = True ]"
  check "serve as the ServiceAccount: /metrics exports the member" wait_for 30 bash -c \
    "curl -fsS '$url/metrics' | grep -q 'computenet_cluster_ready{cluster=\"e2e-helm-ai\"'"
  # --web-auth=kubernetes under the chart's RBAC: the reviews it needs are allowed.
  kubectl create serviceaccount e2e-helm-viewer -n "$NS" >/dev/null
  kubectl create clusterrolebinding "$RBAC_RELEASE-dashboard-sa" --clusterrole="$RBAC_RELEASE-computenet-dashboard-viewer" \
    --serviceaccount="$NS:e2e-helm-viewer" --dry-run=client -o yaml |
    kubectl label --local -f - "app.kubernetes.io/instance=$RBAC_RELEASE" -o yaml | kubectl apply -f - >/dev/null
  viewer_token=$(kubectl create token e2e-helm-viewer -n "$NS" --duration=10m)
  check "serve as the ServiceAccount: /api/pool answers 401 without a token, 200 to a dashboard viewer's" bash -c "
    [ \"\$(curl -s -o /dev/null -w '%{http_code}' '$url/api/pool')\" = 401 ] &&
    [ \"\$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer $viewer_token' '$url/api/pool')\" = 200 ]"
  stop_serve
  check "serve as the ServiceAccount: nothing was forbidden" bash -c \
    "! grep -iE 'forbidden|\\b403\\b' '$tmp/serve.log' && grep -q 'caches ready' '$tmp/serve.log'"
  kubectl delete mcl e2e-helm-ai --ignore-not-found --wait=false >/dev/null 2>&1
fi

check "the throwaway RBAC objects are removed" bash -c "kubectl delete -f '$tmp/rbac.yaml' >/dev/null && ! kubectl get clusterrole '$RBAC_RELEASE-computenet' >/dev/null 2>&1"

summary
