#!/bin/sh
# Regenerates tests/fixtures/cert-manager-crds.yaml: cert-manager's own
# CertificateRequest CRD, copied verbatim from deploy/crds/ of the Go module
# github.com/cert-manager/cert-manager at the pinned version (plain YAML
# there, no Helm templating). The tests install it into the test API server.
set -eu
VERSION="${CERT_MANAGER_VERSION:-v1.21.2}"
cd "$(dirname "$0")/.."
dir=$(cd /tmp && go mod download -json "github.com/cert-manager/cert-manager@$VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
src="$dir/deploy/crds/cert-manager.io_certificaterequests.yaml"
out=tests/fixtures/cert-manager-crds.yaml
{
    echo "# cert-manager $VERSION: deploy/crds/cert-manager.io_certificaterequests.yaml of the"
    echo "# Go module github.com/cert-manager/cert-manager@$VERSION, copied verbatim by"
    echo "# hack/cert-manager-crds.sh (do not edit; rerun it to change the version)."
    cat "$src"
} >"$out"
echo "wrote $out (cert-manager $VERSION)"
