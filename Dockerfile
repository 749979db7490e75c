# syntax=docker/dockerfile:1
#
# Signet operator image.
#
#   docker build -t <your-registry>/signet:$(git describe --tags --always) .
#
# Two stages: a builder with the pinned Rust toolchain (the `rust-version` in
# Cargo.toml) doing a locked release build, and a distroless runtime (glibc,
# CA certificates, no shell) running as the `nonroot` user, UID 65532.
# The cargo command is the Makefile's `release` recipe, which `make test`
# builds and runs; tests/dockerfile.rs keeps the two identical.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target folder between builds; the
# binary is copied out because the target folder is not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release --bin signet \
    && install -D -m 0755 target/release/signet /out/signet \
    && /out/signet --version

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="signet" \
      org.opencontainers.image.description="Kubernetes-native private CA whose keys never leave AWS KMS" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/signet /signet
# distroless `nonroot`: UID/GID 65532. The chart's securityContext matches.
USER 65532:65532
# 8080: /metrics /healthz /readyz; 8081: /crl/<name>.crl /ca/<name>.crt (PKI)
EXPOSE 8080 8081
ENTRYPOINT ["/signet"]
CMD ["run"]
