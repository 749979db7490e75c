#!/usr/bin/env bash
# Regenerates the seed corpus of the parse_request fuzz target from
# `openssl ocsp -reqout`: DER requests (SHA-1 and SHA-256 CertIDs, with and
# without nonce, several serials, a signed request) and the same requests
# as RFC 5019 GET paths (plain and percent-encoded base64).
set -euo pipefail
cd "$(dirname "$0")"
out=corpus/parse_request
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$work/ca.key" -out "$work/ca.pem" -subj "/CN=Fuzz Seed CA" -days 1 2>/dev/null

req() { # name, openssl ocsp arguments...
  local name=$1; shift
  openssl ocsp -issuer "$work/ca.pem" "$@" -reqout "$out/$name.der" >/dev/null
}
mkdir -p "$out"
rm -f "$out"/*
req sha1-no-nonce -serial 0x01 -no_nonce
req sha1-nonce -serial 0x7f3a9c
req sha256-nonce -sha256 -serial 0x00c0ffee0123456789abcdef01234567
req three-serials -serial 0x01 -serial 0x8000 -serial 0x1234567890 -no_nonce
req signed -serial 0x42 -signer "$work/ca.pem" -signkey "$work/ca.key"

for f in "$out"/sha1-no-nonce.der "$out"/sha256-nonce.der; do
  b64="$(base64 -w0 "$f")"
  printf '%s' "$b64" >"${f%.der}.get"
  printf '%s' "$b64" | sed -e 's/+/%2B/g' -e 's#/#%2F#g' -e 's/=/%3D/g' >"${f%.der}.get-encoded"
done
ls -l "$out"
