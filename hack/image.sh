#!/usr/bin/env bash
# Builds Signet's OCI images without a container engine or a registry.
#
#   hack/image.sh signet [--binary FILE] [--tag TAG] [--out FILE]
#       The operator image: the release binary at /signet in a root filesystem
#       of the same class as distroless `cc` (Debian's libc6, libgcc-s1 and
#       ca-certificates, a `nonroot` user and group 65532), running as
#       65532:65532 with entrypoint ["/signet"] and cmd ["run"]. Without
#       --binary it runs the Makefile's `release` command first. Writes an
#       OCI image archive (default: a cache folder) and prints the archive
#       path and the image reference (localhost/signet:TAG; TAG defaults to
#       dev-<first 12 hex digits of the layer digest>).
#   hack/image.sh pause --binary FILE [--tag TAG] [--out FILE]
#       The test node's sandbox image: the static binary built from
#       hack/testenv/cmd/pause at /pause (localhost/pause:TAG, default 3.10).
#   hack/image.sh config
#       Prints what the operator image declares (binary path and runtime
#       config) as JSON; tests/dockerfile.rs compares it with the Dockerfile.
#   hack/image.sh import FILE --address SOCKET
#       `ctr -n k8s.io images import` of an archive into a containerd.
#
# The Dockerfile stays the user-facing build; this script exists because the
# test node has neither a container engine nor a registry. The layer is one
# uncompressed, reproducible tar (sorted names, mtime 0, numeric owners).
# Packages are fetched with `apt-get download` into
# ${SIGNET_IMAGE_CACHE:-$HOME/.cache/signet/image}/debs.
set -euo pipefail
umask 022

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${SIGNET_IMAGE_CACHE:-$HOME/.cache/signet/image}"
# Debian packages of the runtime root filesystem (distroless cc's class).
PACKAGES=(libc6 libgcc-s1 ca-certificates)
NONROOT=65532

log() { echo "image: $*" >&2; }
die() { echo "image: $*" >&2; exit 1; }

case "$(uname -m)" in
  x86_64) ARCH=amd64 TRIPLET=x86_64-linux-gnu LOADER=ld-linux-x86-64.so.2 ;;
  aarch64) ARCH=arm64 TRIPLET=aarch64-linux-gnu LOADER=ld-linux-aarch64.so.1 ;;
  *) die "unsupported machine $(uname -m)" ;;
esac

# The operator image's runtime config. Keep it in step with the Dockerfile's
# runtime stage (tests/dockerfile.rs checks it).
signet_config() {
  cat <<'JSON'
{"User":"65532:65532","ExposedPorts":{"8080/tcp":{},"8081/tcp":{}},"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],"Entrypoint":["/signet"],"Cmd":["run"],"WorkingDir":"/","Labels":{"org.opencontainers.image.title":"signet","org.opencontainers.image.description":"Kubernetes-native private CA whose keys never leave AWS KMS","org.opencontainers.image.licenses":"Apache-2.0"}}
JSON
}
SIGNET_BINARY_PATH=/signet

pause_config() {
  echo '{"User":"65535:65535","Entrypoint":["/pause"],"WorkingDir":"/"}'
}

# Scratch space of this run (root filesystem, layout), removed on exit.
WORK="$(mktemp -d "${TMPDIR:-/tmp}/signet-image.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }

# Fetches the .deb files of PACKAGES (the apt candidate versions) into the
# cache; prints their paths.
fetch_debs() {
  local dir="$CACHE/debs" p v f missing=()
  mkdir -p "$dir"
  command -v apt-get >/dev/null || die "apt-get not found: the image is assembled from Debian packages"
  for p in "${PACKAGES[@]}"; do
    v="$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')"
    [[ -n "$v" && "$v" != "(none)" ]] || die "no candidate version of $p: run \`apt-get update\`"
    # .deb file names escape ':' (epochs) as %3a.
    f="$(compgen -G "$dir/${p}_${v/:/%3a}_*.deb" | head -1 || true)"
    [[ -n "$f" ]] || missing+=("$p=$v")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    log "downloading ${missing[*]}"
    (cd "$dir" && apt-get download -qq "${missing[@]}") >"$WORK/apt.log" 2>&1 || {
      cat "$WORK/apt.log" >&2
      die "apt-get download ${missing[*]} failed: run \`apt-get update\`"
    }
  fi
  for p in "${PACKAGES[@]}"; do
    v="$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')"
    compgen -G "$dir/${p}_${v/:/%3a}_*.deb" | head -1
  done
}

# Writes an OCI image layout for one layer (the tree in $1) with runtime
# config $2, named $3:$4, as an archive at $5. The owner of every entry is
# 0:0 except the paths in $6 (space-separated, relative), owned by 65532.
write_image() {
  local tree="$1" config="$2" name="$3" tag="$4" out="$5" nonroot_paths="$6"
  local work="$WORK/image"
  mkdir -p "$work"
  local layer="$work/layer.tar" excludes=() p
  for p in $nonroot_paths; do excludes+=("--exclude=./$p"); done
  tar --create --file="$layer" --sort=name --mtime=@0 --format=gnu \
    --owner=0 --group=0 --numeric-owner "${excludes[@]}" -C "$tree" .
  for p in $nonroot_paths; do
    tar --append --file="$layer" --mtime=@0 --format=gnu --no-recursion \
      --owner="$NONROOT" --group="$NONROOT" --numeric-owner -C "$tree" "./$p"
  done
  local layer_digest; layer_digest="$(sha "$layer")"
  [[ -n "$tag" ]] || tag="dev-${layer_digest:0:12}"
  mkdir -p "$work/oci/blobs/sha256"
  mv "$layer" "$work/oci/blobs/sha256/$layer_digest"
  local cfg="$work/config.json"
  printf '{"created":"1970-01-01T00:00:00Z","architecture":"%s","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"hack/image.sh"}]}' \
    "$ARCH" "$config" "$layer_digest" >"$cfg"
  local cfg_digest; cfg_digest="$(sha "$cfg")"
  local manifest="$work/manifest.json"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$cfg_digest" "$(size "$cfg")" "$layer_digest" "$(size "$work/oci/blobs/sha256/$layer_digest")" >"$manifest"
  local manifest_digest; manifest_digest="$(sha "$manifest")"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"%s","os":"linux"},"annotations":{"io.containerd.image.name":"%s:%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest_digest" "$(size "$manifest")" "$ARCH" "$name" "$tag" "$tag" >"$work/oci/index.json"
  mv "$cfg" "$work/oci/blobs/sha256/$cfg_digest"
  mv "$manifest" "$work/oci/blobs/sha256/$manifest_digest"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$work/oci/oci-layout"
  mkdir -p "$(dirname "$out")"
  tar --create --file="$out.tmp" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    -C "$work/oci" oci-layout index.json blobs
  mv "$out.tmp" "$out"
  echo "$out"
  echo "$name:$tag"
}

# Fails unless every shared library of the binary $2 resolves inside the
# root filesystem $1, then runs `$2 --version` with the image's loader.
check_libraries() {
  local tree="$1" exe="$2" libpath="$1/lib/$TRIPLET:$1/usr/lib/$TRIPLET"
  local loader="$tree/lib/$TRIPLET/$LOADER" list bad
  [[ -x "$loader" ]] || die "the root filesystem has no $LOADER (libc6 not unpacked?)"
  list="$("$loader" --library-path "$libpath" --list "$exe" 2>&1)" ||
    die "the image's loader cannot load $exe: $list"
  bad="$(grep '=>' <<<"$list" | grep -v "=> $tree/" || true)"
  [[ -z "$bad" ]] || die "shared libraries of the binary that the image lacks (add their Debian packages to PACKAGES): $(echo "$bad" | awk '{print $1}' | tr '\n' ' ')"
  "$loader" --library-path "$libpath" "$exe" --version >/dev/null ||
    die "$exe --version fails with the image's libraries"
}

cmd_signet() {
  local binary="" tag="" out=""
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --binary) binary="$2"; shift 2 ;;
      --tag) tag="$2"; shift 2 ;;
      --out) out="$2"; shift 2 ;;
      *) die "unknown argument $1" ;;
    esac
  done
  if [[ -z "$binary" ]]; then
    # The Makefile's `release` recipe, with its CARGO_TARGET_DIR convention.
    local target="${CARGO_TARGET_DIR:-$HOME/.cache/signet/target-$(sha256sum "$ROOT/Cargo.lock" | cut -c1-12)}"
    log "cargo build --locked --release --bin signet"
    (cd "$ROOT" && CARGO_TARGET_DIR="$target" cargo build --locked --release --bin signet)
    binary="$target/release/signet"
  fi
  [[ -x "$binary" ]] || die "$binary is not an executable"
  [[ -n "$out" ]] || out="$CACHE/signet-image.tar"
  local tree="$WORK/rootfs" debs deb
  mkdir -p "$tree"
  debs="$(fetch_debs)"
  for deb in $debs; do
    dpkg-deb --extract "$deb" "$tree" || die "dpkg-deb --extract $deb failed"
  done
  # What distroless leaves out of these packages: docs, the CA maintainer
  # scripts; the CA bundle is what update-ca-certificates would generate.
  rm -rf "$tree/usr/share/doc" "$tree/usr/share/lintian" "$tree/usr/share/man" \
    "$tree/usr/sbin" "$tree/etc/ca-certificates" "$tree/etc/ca-certificates.conf"
  mkdir -p "$tree/etc/ssl/certs"
  find "$tree/usr/share/ca-certificates" -name '*.crt' -print0 | sort -z |
    xargs -0 cat >"$tree/etc/ssl/certs/ca-certificates.crt"
  [[ -s "$tree/etc/ssl/certs/ca-certificates.crt" ]] || die "ca-certificates shipped no certificates"
  rm -rf "$tree/usr/share/ca-certificates"
  cat >"$tree/etc/passwd" <<EOF
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:$NONROOT:$NONROOT:nonroot:/home/nonroot:/sbin/nologin
EOF
  cat >"$tree/etc/group" <<EOF
root:x:0:
nobody:x:65534:
nonroot:x:$NONROOT:
EOF
  echo "hosts: files dns" >"$tree/etc/nsswitch.conf"
  mkdir -p "$tree/tmp" "$tree/root" "$tree/home/nonroot"
  chmod 1777 "$tree/tmp"
  chmod 0700 "$tree/root" "$tree/home/nonroot"
  install -m 0755 "$binary" "$tree$SIGNET_BINARY_PATH"
  check_libraries "$tree" "$tree$SIGNET_BINARY_PATH"
  write_image "$tree" "$(signet_config)" localhost/signet "$tag" "$out" "home/nonroot"
}

cmd_pause() {
  local binary="" tag="3.10" out=""
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --binary) binary="$2"; shift 2 ;;
      --tag) tag="$2"; shift 2 ;;
      --out) out="$2"; shift 2 ;;
      *) die "unknown argument $1" ;;
    esac
  done
  [[ -x "$binary" ]] || die "--binary must name the pause binary (hack/testenv.sh setup builds it)"
  [[ -n "$out" ]] || out="$CACHE/pause-image.tar"
  local tree="$WORK/rootfs"
  mkdir -p "$tree"
  install -m 0755 "$binary" "$tree/pause"
  write_image "$tree" "$(pause_config)" localhost/pause "$tag" "$out" ""
}

cmd_import() {
  local file="${1:?usage: hack/image.sh import FILE --address SOCKET}" address=""
  shift
  [[ "${1:-}" == "--address" ]] && address="${2:?}"
  [[ -n "$address" ]] || die "usage: hack/image.sh import FILE --address SOCKET"
  command -v ctr >/dev/null || die "ctr not found: run \`make testenv\` (apt-get install -y containerd runc)"
  ctr --address "$address" --namespace k8s.io images import "$file" >&2
}

case "${1:-}" in
  signet) shift; cmd_signet "$@" ;;
  pause) shift; cmd_pause "$@" ;;
  config) printf '{"binary":"%s","config":%s}\n' "$SIGNET_BINARY_PATH" "$(signet_config)" ;;
  import) shift; cmd_import "$@" ;;
  *) echo "usage: $0 {signet|pause|config|import} ..." >&2; exit 2 ;;
esac
