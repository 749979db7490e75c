#!/usr/bin/env bash
# Signet test environment.
#
#   hack/testenv.sh setup   build etcd, kube-apiserver, kubectl, local-kms, helm,
#                           zlint, and for the test node kubelet, kube-scheduler,
#                           kube-controller-manager and pause, from hack/testenv/go.mod
#                           and a pkilint venv into a cache folder keyed by go.sum;
#                           install containerd + runc from Debian when missing (the
#                           node's runtime); print the folder
#   hack/testenv.sh dir     print the folder (without building)
#   hack/testenv.sh up      start a long-lived control plane + local-kms for humans
#                           (--node: with a node, as root; see tests/harness/src/node.rs)
#   hack/testenv.sh down    stop it
#   hack/testenv.sh status  show whether it runs
#
# The folder is ${SIGNET_TESTENV_DIR:-$HOME/.cache/signet/testenv}/<hash>.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MOD="$ROOT/hack/testenv"
KUBE_VERSION="v1.37.2"
PKILINT_VERSION="0.13.3"

hash_inputs() {
  cat "$MOD/go.sum" "$MOD/go.mod" "$MOD"/cmd/*/main.go | sha256sum | cut -c1-16
  # pkilint version is part of the key too
}

cache_dir() {
  local base="${SIGNET_TESTENV_DIR:-$HOME/.cache/signet/testenv}"
  local h
  h="$( (hash_inputs; echo "$PKILINT_VERSION") | sha256sum | cut -c1-16)"
  echo "$base/$h"
}

log() { echo "testenv: $*" >&2; }

build_go() {
  local dir="$1" bin="$1/bin"
  mkdir -p "$bin"
  local want=(etcd kube-apiserver kubectl local-kms helm zlint
    kube-controller-manager kube-scheduler kubelet pause) missing=()
  for b in "${want[@]}"; do [[ -x "$bin/$b" ]] || missing+=("$b"); done
  if [[ ${#missing[@]} -eq 0 ]]; then log "Go binaries already built"; return; fi
  command -v go >/dev/null || { log "go is not installed; install Go >= 1.26"; exit 1; }
  log "building ${missing[*]} (first run takes several minutes)"
  local minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
  local kv="-X k8s.io/component-base/version.gitVersion=$KUBE_VERSION"
  kv+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  kv+=" -X k8s.io/component-base/version.gitTreeState=clean"
  kv+=" -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION"
  kv+=" -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  local -A pkg=(
    [etcd]=./cmd/etcd
    [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
    [kubectl]=k8s.io/kubernetes/cmd/kubectl
    [local-kms]=./cmd/local-kms
    [helm]=helm.sh/helm/v3/cmd/helm
    [zlint]=github.com/zmap/zlint/v3/cmd/zlint
    [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
    [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
    [kubelet]=k8s.io/kubernetes/cmd/kubelet
    [pause]=./cmd/pause
  )
  local tmp="$dir/bin.tmp" pkgs=()
  rm -rf "$tmp"; mkdir -p "$tmp"
  for b in "${missing[@]}"; do pkgs+=("${pkg[$b]}"); done
  # One `go build` for all of them: the packages they share compile once and
  # the compiler keeps both cores busy across binaries.
  log "  go build ${missing[*]}"
  (cd "$MOD" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $kv" -o "$tmp/" "${pkgs[@]}")
  for b in "${missing[@]}"; do mv "$tmp/$b" "$bin/$b"; done
  rmdir "$tmp"
}

build_py() {
  local dir="$1" venv="$1/venv"
  if [[ -x "$venv/bin/lint_pkix_cert" ]]; then log "pkilint venv already present"; return; fi
  command -v python3 >/dev/null || { log "python3 is not installed"; exit 1; }
  log "creating pkilint $PKILINT_VERSION venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "pkilint==$PKILINT_VERSION"
  for b in lint_pkix_cert lint_crl lint_ocsp_response; do
    ln -sf "$venv/bin/$b" "$dir/bin/$b"
  done
}

# containerd and runc come from Debian. Only the node tests need them, so a
# machine that cannot install them still gets the rest of the environment,
# with one line saying what to run.
install_node_packages() {
  local missing=()
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  [[ ${#missing[@]} -eq 0 ]] && return
  if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null; then
    log "error: ${missing[*]} missing and not installable here (the node tests need them): run \`sudo apt-get install -y containerd runc\`"
    return
  fi
  log "installing ${missing[*]} (apt-get install -y containerd runc)"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq containerd runc; } >"$1/apt.log" 2>&1; then
    log "error: installing containerd runc failed (see $1/apt.log): run \`apt-get update && apt-get install -y containerd runc\`"
  fi
}

cmd_setup() {
  local dir; dir="$(cache_dir)"
  mkdir -p "$dir/bin"
  build_go "$dir"
  build_py "$dir"
  install_node_packages "$dir"
  command -v openssl >/dev/null || log "warning: openssl not found on PATH (apt-get install openssl)"
  echo "$dir"
}

run_dir() { echo "${SIGNET_TESTENV_RUN:-$HOME/.cache/signet/run}"; }

# True when the pid in $1 is still our signet-testenv (pids are reused).
running() {
  [[ -f "$1" ]] || return 1
  local pid; pid="$(cat "$1")"
  kill -0 "$pid" 2>/dev/null && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q signet-testenv
}

cmd_up() {
  local node=()
  case "${1:-}" in
    --node) node=(--node) ;;
    "") ;;
    *) echo "usage: $0 up [--node]" >&2; exit 2 ;;
  esac
  local dir; dir="$(cmd_setup)"
  local run; run="$(run_dir)"
  if running "$run/pid"; then
    log "already running (pid $(cat "$run/pid"))"; cat "$run/env"; return
  fi
  rm -rf "$run"; mkdir -p "$run"
  (cd "$ROOT" && cargo build --quiet -p signet-testenv --bin signet-testenv)
  local exe; exe="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys;print(json.load(sys.stdin)["target_directory"])')/debug/signet-testenv"
  SIGNET_TESTENV_BIN="$dir/bin" setsid "$exe" serve --state "$run" "${node[@]}" >"$run/testenv.log" 2>&1 < /dev/null &
  echo $! >"$run/pid"
  local limit=120
  [[ ${#node[@]} -gt 0 ]] && limit=300
  for _ in $(seq 1 "$limit"); do
    [[ -f "$run/env" ]] && { cat "$run/env"; return; }
    kill -0 "$(cat "$run/pid")" 2>/dev/null || { log "control plane exited:"; tail -30 "$run/testenv.log" >&2; exit 1; }
    sleep 1
  done
  log "control plane not ready after $limit s:"; tail -30 "$run/testenv.log" >&2; exit 1
}

cmd_down() {
  local run; run="$(run_dir)"
  if running "$run/pid"; then
    kill -TERM "$(cat "$run/pid")"
    for _ in $(seq 1 30); do kill -0 "$(cat "$run/pid")" 2>/dev/null || break; sleep 0.5; done
    log "stopped"
  else
    log "not running"
  fi
  rm -f "$run/pid" "$run/env"
}

cmd_status() {
  local run; run="$(run_dir)"
  if running "$run/pid"; then
    log "running (pid $(cat "$run/pid"))"; cat "$run/env"
  else
    log "not running"; return 1
  fi
}

case "${1:-setup}" in
  setup) cmd_setup ;;
  dir) cache_dir ;;
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 {setup|dir|up [--node]|down|status}" >&2; exit 2 ;;
esac
