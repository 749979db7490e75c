#!/usr/bin/env bash
# make demo: Signet's main job end to end on this machine.
#
#   hack/demo.sh        build, start a local control plane + local-kms, run the
#                       operator as a local process, apply examples/, verify,
#                       revoke, show the CRL and the audit trail
#   IN_CLUSTER=1 hack/demo.sh
#                       the same, with the operator installed by the Helm chart
#                       from the image built here (hack/image.sh), running as a
#                       pod on the test environment's node (kubelet + containerd;
#                       needs root)
#   hack/demo.sh down   stop the operator and the control plane
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
STATE="${SIGNET_DEMO_DIR:-$HOME/.cache/signet/demo}"
export SIGNET_TESTENV_RUN="$STATE/testenv"
NS=signet-system
IN_CLUSTER="${IN_CLUSTER:-0}"
step=0

say() { step=$((step + 1)); printf '\n\033[1m[%d] %s\033[0m\n' "$step" "$*"; }
die() { printf '\n\033[31mdemo failed: %s\033[0m\n' "$*" >&2
        [[ -f "$STATE/operator.log" ]] && { echo "--- last operator log lines ---" >&2; tail -n 20 "$STATE/operator.log" >&2; }
        echo "tear down with: make demo-down" >&2; exit 1; }
trap 'die "command failed at line $LINENO"' ERR

# Stops the demo operator, if the recorded pid is still it (pids are reused).
stop_operator() {
  local f="$STATE/operator.pid" pid
  [[ -f "$f" ]] || return 0
  pid="$(cat "$f")"
  if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "signet run"; then
    kill "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

down() {
  stop_operator
  hack/testenv.sh down || true
  echo "demo stopped; state kept in $STATE (delete it to start fresh)"
}

if [[ "${1:-}" == "down" ]]; then down; exit 0; fi

# A port nobody listens on, so what answers there is the operator started here.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# Admin listener (/readyz, /metrics) and public PKI listener (/crl, /ca).
PORT="${SIGNET_DEMO_PORT:-$(free_port)}"
PKI_PORT="${SIGNET_DEMO_PKI_PORT:-$(free_port)}"
for p in "$PORT" "$PKI_PORT"; do
  if curl -s -o /dev/null "http://127.0.0.1:$p/"; then
    die "port $p already answers HTTP; unset SIGNET_DEMO_PORT/SIGNET_DEMO_PKI_PORT or pick free ports"
  fi
done
[[ "$PORT" != "$PKI_PORT" ]] || die "SIGNET_DEMO_PORT and SIGNET_DEMO_PKI_PORT must differ"
# Issued certificates point their CRL distribution point and AIA URLs here.
BASE_URL="http://127.0.0.1:$PKI_PORT"

# Waits until the operator answers /readyz on $PORT; $1 is a command that
# fails once the operator has exited.
wait_ready() {
  for _ in $(seq 1 60); do
    curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && return 0
    "$1" || die "the operator exited"
    sleep 1
  done
  die "the operator is not ready on port $PORT after 60 s"
}

start_control_plane() {
  say "Starting kube-apiserver + etcd + local-kms on loopback${1:+, with a node (kubelet, containerd)}"
  stop_operator
  hack/testenv.sh down >/dev/null 2>&1 || true
  # shellcheck disable=SC1090
  source <(hack/testenv.sh up "$@")
  kubectl get --raw=/readyz >/dev/null || die "API server not ready"
  echo "KUBECONFIG=$KUBECONFIG  KMS=$SIGNET_KMS_ENDPOINT"
  kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
}

local_alive() { kill -0 "$(cat "$STATE/operator.pid")" 2>/dev/null; }

# The operator as a local process with this user's kubeconfig.
run_local() {
  say "Building signet"
  cargo build --quiet --locked --bin signet --bin signet-testenv -p signet -p signet-testenv
  SIGNET="$TARGET/debug/signet"
  start_control_plane
  say "Running the operator (namespace $NS, database $STATE/signet.db, admin 127.0.0.1:$PORT, PKI $BASE_URL)"
  DB="$STATE/signet.db"
  rm -f "$DB" "$DB-wal" "$DB-shm"
  SIGNET_NAMESPACE="$NS" SIGNET_DB="$DB" SIGNET_HTTP_ADDR="127.0.0.1:$PORT" \
    SIGNET_PKI_ADDR="127.0.0.1:$PKI_PORT" SIGNET_PUBLIC_BASE_URL="$BASE_URL" \
    SIGNET_LOG_FORMAT=text "$SIGNET" run >"$STATE/operator.log" 2>&1 &
  echo $! >"$STATE/operator.pid"
  wait_ready local_alive
  local_alive || die "the operator exited after port $PORT answered (another process there?)"
}

pod_alive() {
  ! kubectl -n "$NS" get pods -l app.kubernetes.io/instance=signet \
      -o jsonpath='{.items[*].status.containerStatuses[*].state.waiting.reason}' 2>/dev/null |
    grep -q CrashLoopBackOff
}

# A local PersistentVolume for the chart's claim, in $STATE/volume.
demo_volume() {
  local vol="$STATE/volume"
  kubectl delete pv signet-demo-data --ignore-not-found >/dev/null
  rm -rf "$vol"; mkdir -p "$vol"
  python3 - "$NS" "$vol" >"$STATE/pv.json" <<'PY'
import json, sys
ns, path = sys.argv[1:]
print(json.dumps({
    "apiVersion": "v1", "kind": "PersistentVolume",
    "metadata": {"name": "signet-demo-data"},
    "spec": {
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
        "claimRef": {"namespace": ns, "name": "signet-data"},
        "local": {"path": path},
        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "Exists"}]}]}},
    },
}))
PY
  kubectl apply -f "$STATE/pv.json" >/dev/null
  echo "$vol"
}

# Helm values for the test node: the image built here, host networking on
# loopback (the node has no pod network), local-kms, the API server's
# loopback address (the `kubernetes` Service has no proxy behind it here).
demo_values() {
  local api
  api="$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
  python3 - "$1" "$PORT" "${api##*:}" "$PKI_PORT" "$BASE_URL" >"$STATE/values.json" <<'PY'
import json, os, sys
ref, port, api_port, pki_port, base_url = sys.argv[1:]
repo, tag = ref.rsplit(":", 1)
env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": api_port,
       "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
       "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"]}
print(json.dumps({
    "image": {"repository": repo, "tag": tag, "pullPolicy": "Never"},
    "hostNetwork": True, "httpBindAddress": "127.0.0.1", "httpPort": int(port),
    "pki": {"port": int(pki_port), "publicBaseURL": base_url},
    "kms": {"region": os.environ["AWS_REGION"], "endpoint": os.environ["SIGNET_KMS_ENDPOINT"]},
    "persistence": {"storageClass": "-"},
    "admissionPolicy": {"enabled": False},
    "logFormat": "text",
    "extraEnv": [{"name": k, "value": v} for k, v in env.items()],
}))
PY
}

# The operator as users run it: the chart, the image built here, a pod on the
# test environment's node.
run_in_cluster() {
  [[ "$(id -u)" == 0 ]] || die "IN_CLUSTER=1 needs root (kubelet and containerd run here as root)"
  say "Building the release binary and the operator image (hack/image.sh)"
  cargo build --quiet --locked --release --bin signet
  cargo build --quiet --locked --bin signet-testenv -p signet-testenv
  SIGNET="$TARGET/release/signet"
  local out archive ref vol
  out="$(hack/image.sh signet --binary "$SIGNET" --out "$STATE/signet-image.tar")"
  archive="$(sed -n 1p <<<"$out")"; ref="$(sed -n 2p <<<"$out")"
  echo "image $ref"
  start_control_plane --node
  hack/image.sh import "$archive" --address "$CONTAINERD_ADDRESS"

  say "helm install signet charts/signet (namespace $NS; the pod serves admin on 127.0.0.1:$PORT, PKI on $BASE_URL)"
  vol="$(demo_volume)"
  demo_values "$ref"
  helm upgrade --install signet charts/signet -n "$NS" -f "$STATE/values.json"
  if ! kubectl -n "$NS" rollout status deployment/signet --timeout=180s; then
    kubectl -n "$NS" get pods -o wide >&2 || true
    kubectl -n "$NS" logs deployment/signet --tail=20 >&2 || true
    kubectl -n "$NS" get events --sort-by=.lastTimestamp >&2 || true
    die "the Deployment did not become Available"
  fi
  wait_ready pod_alive
  kubectl -n "$NS" get deployment,pods,pvc
  DB="$vol/signet.db"
}

mkdir -p "$STATE"
say "Building the test environment binaries (first run: several minutes)"
BIN="$(hack/testenv.sh setup)/bin"
export PATH="$BIN:$PATH"
TARGET="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys;print(json.load(sys.stdin)["target_directory"])')"
if [[ "$IN_CLUSTER" == 1 ]]; then run_in_cluster; else run_local; fi

say "kubectl apply -f examples/"
kubectl apply -f examples/

say "Waiting for every object to be Ready"
kubectl wait --for=condition=Ready --timeout=90s certificateauthorities.signet.dev --all
kubectl wait --for=condition=Ready --timeout=90s -n demo certificates.signet.dev --all
kubectl wait --for=condition=Ready --timeout=90s crls.signet.dev --all
kubectl get certificateauthorities.signet.dev,crls.signet.dev
kubectl get certificates.signet.dev -n demo

say "The CA chain (keys live in local-kms; only public keys leave it)"
kubectl get certificateauthorities.signet.dev example-issuing -o jsonpath='{.status.chain}' > "$STATE/chain.pem"
openssl crl2pkcs7 -nocrl -certfile "$STATE/chain.pem" | openssl pkcs7 -print_certs -noout
kubectl get certificateauthorities.signet.dev -o custom-columns='CA:.metadata.name,KMS KEY:.status.kmsKeyArn'

say "The server Secret, verified with openssl"
kubectl get secret -n demo web-tls -o jsonpath='{.data.tls\.crt}' | base64 -d > "$STATE/web.crt"
kubectl get secret -n demo web-tls -o jsonpath='{.data.ca\.crt}' | base64 -d > "$STATE/root.crt"
openssl x509 -in "$STATE/web.crt" -noout -subject -ext subjectAltName,crlDistributionPoints,authorityInfoAccess -enddate
openssl verify -CAfile "$STATE/root.crt" -untrusted "$STATE/web.crt" -purpose sslserver "$STATE/web.crt"

say "Revoking the mTLS client certificate (signet revoke demo/client --reason keyCompromise)"
SERIAL="$(kubectl get certificates.signet.dev -n demo client -o jsonpath='{.status.serialNumber}')"
SIGNET_ACTOR="${USER:-$(id -un)}" "$SIGNET" revoke demo/client --reason keyCompromise

say "The CRL now lists serial $SERIAL"
for _ in $(seq 1 40); do
  curl -fsS "$BASE_URL/crl/example-issuing.crl" -o "$STATE/issuing.crl" 2>/dev/null || true
  [[ -s "$STATE/issuing.crl" ]] && openssl crl -inform DER -in "$STATE/issuing.crl" -noout -text | grep -qi "$SERIAL" && break
  sleep 0.5
done
# Header, extensions and the revoked entries (the signature is left out).
openssl crl -inform DER -in "$STATE/issuing.crl" -noout -text | sed '/^    Signature Algorithm/,$d' 
openssl crl -inform DER -in "$STATE/issuing.crl" -noout -text | grep -qi "$SERIAL" || die "serial $SERIAL is not in the CRL"
kubectl get crls.signet.dev

say "The last audit rows (signet audit, on a consistent copy of $DB)"
rm -f "$STATE/audit-copy.db"
sqlite3 "$DB" ".backup '$STATE/audit-copy.db'"
"$SIGNET" audit --db "$STATE/audit-copy.db" | tail -n 12
"$SIGNET" audit verify --db "$STATE/audit-copy.db"

trap - ERR
printf '\n\033[32mDemo complete.\033[0m Everything is still running:\n'
echo "  export KUBECONFIG=$KUBECONFIG"
echo "  kubectl get certificates.signet.dev -A;  curl http://127.0.0.1:$PORT/metrics"
echo "Tear it down with: make demo-down"
