#!/usr/bin/env bash
# make demo: Signet's main job end to end on this machine.
#
#   hack/demo.sh        build, start a local control plane + local-kms, run the
#                       operator, apply examples/, verify, revoke, show the CRL
#                       and the audit trail
#   hack/demo.sh down   stop the operator and the control plane
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
STATE="${SIGNET_DEMO_DIR:-$HOME/.cache/signet/demo}"
export SIGNET_TESTENV_RUN="$STATE/testenv"
NS=signet-system
PORT="${SIGNET_DEMO_PORT:-18080}"
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

mkdir -p "$STATE"
say "Building the test environment binaries (first run: several minutes)"
BIN="$(hack/testenv.sh setup)/bin"
export PATH="$BIN:$PATH"

say "Building signet"
cargo build --quiet --locked --bin signet --bin signet-testenv -p signet -p signet-testenv
TARGET="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys;print(json.load(sys.stdin)["target_directory"])')"
SIGNET="$TARGET/debug/signet"

say "Starting kube-apiserver + etcd + local-kms on loopback"
stop_operator
hack/testenv.sh down >/dev/null 2>&1 || true
# shellcheck disable=SC1090
source <(hack/testenv.sh up)
kubectl get --raw=/readyz >/dev/null || die "API server not ready"
echo "KUBECONFIG=$KUBECONFIG  KMS=$SIGNET_KMS_ENDPOINT"

say "Running the operator (namespace $NS, database $STATE/signet.db, http 127.0.0.1:$PORT)"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
rm -f "$STATE/signet.db" "$STATE/signet.db-wal" "$STATE/signet.db-shm"
SIGNET_NAMESPACE="$NS" SIGNET_DB="$STATE/signet.db" SIGNET_HTTP_ADDR="127.0.0.1:$PORT" \
  SIGNET_LOG_FORMAT=text "$SIGNET" run >"$STATE/operator.log" 2>&1 &
echo $! >"$STATE/operator.pid"
for _ in $(seq 1 60); do
  curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
  kill -0 "$(cat "$STATE/operator.pid")" 2>/dev/null || die "the operator exited"
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null || die "the operator is not ready"

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
openssl x509 -in "$STATE/web.crt" -noout -subject -ext subjectAltName -enddate
openssl verify -CAfile "$STATE/root.crt" -untrusted "$STATE/web.crt" -purpose sslserver "$STATE/web.crt"

say "Revoking the mTLS client certificate (signet revoke demo/client --reason keyCompromise)"
SERIAL="$(kubectl get certificates.signet.dev -n demo client -o jsonpath='{.status.serialNumber}')"
SIGNET_ACTOR="${USER:-$(id -un)}" "$SIGNET" revoke demo/client --reason keyCompromise

say "The CRL now lists serial $SERIAL"
for _ in $(seq 1 40); do
  curl -fsS "http://127.0.0.1:$PORT/crl/example-issuing.crl" -o "$STATE/issuing.crl" 2>/dev/null || true
  [[ -s "$STATE/issuing.crl" ]] && openssl crl -inform DER -in "$STATE/issuing.crl" -noout -text | grep -qi "$SERIAL" && break
  sleep 0.5
done
# Header, extensions and the revoked entries (the signature is left out).
openssl crl -inform DER -in "$STATE/issuing.crl" -noout -text | sed '/^    Signature Algorithm/,$d' 
openssl crl -inform DER -in "$STATE/issuing.crl" -noout -text | grep -qi "$SERIAL" || die "serial $SERIAL is not in the CRL"
kubectl get crls.signet.dev

say "The last audit rows (signet audit --db $STATE/signet.db)"
"$SIGNET" audit --db "$STATE/signet.db" | tail -n 12
"$SIGNET" audit verify --db "$STATE/signet.db"

trap - ERR
printf '\n\033[32mDemo complete.\033[0m Everything is still running:\n'
echo "  export KUBECONFIG=$KUBECONFIG"
echo "  kubectl get certificates.signet.dev -A;  curl http://127.0.0.1:$PORT/metrics"
echo "Tear it down with: make demo-down"
