# Signet — every command the README mentions is a target here.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

# Build outputs are cached under $HOME, keyed by the lockfile, so a clean
# clone (CI) reuses a previous build of the same dependency set.
LOCK_HASH := $(shell sha256sum Cargo.lock 2>/dev/null | cut -c1-12)
export CARGO_TARGET_DIR ?= $(HOME)/.cache/signet/target-$(LOCK_HASH)
CACHE := $(HOME)/.cache/signet
export CARGO_TERM_COLOR ?= never
# Tests run two at a time on a 2-core machine; integration tests share one
# control plane per test binary.
TEST_THREADS ?= 2

.PHONY: all build release image testenv test seed-target test-rust lint fmt clippy crds readme demo demo-down leak-check version-check help fuzz fuzz-ci bench

help:
	@echo "make demo     run Signet end to end on this machine"
	@echo "make demo IN_CLUSTER=1   the same, with the chart's pod on a local node (root)"
	@echo "make test     set up the test environment and run the whole suite"
	@echo "make testenv  build etcd, kube-apiserver, kubectl, local-kms, helm, zlint, pkilint,"
	@echo "              kubelet, kube-scheduler, kube-controller-manager; install containerd + runc"
	@echo "make image    build the operator's OCI image archive without a container engine"
	@echo "make bench    issuance and CRL benchmarks against the real API server (BENCHMARKS.md)"
	@echo "make crds     regenerate crds/ and the chart's crds/ from the Rust types"
	@echo "make readme   regenerate the README's CRD reference from the Rust types"

# A new lockfile starts from a copy of the newest earlier build (cargo keeps
# what still fits and rebuilds the rest); only the two newest are kept. On a
# cold machine there is none and the build starts empty.
seed-target:
	@if [ ! -d "$(CARGO_TARGET_DIR)" ]; then \
	  prev="$$(ls -dt $(CACHE)/target-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f] 2>/dev/null | head -1 || true)"; \
	  if [ -n "$$prev" ]; then echo "build cache: starting $(CARGO_TARGET_DIR) from $$prev"; cp -a "$$prev" "$(CARGO_TARGET_DIR)"; fi; \
	  ls -dt $(CACHE)/target-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f] 2>/dev/null | tail -n +3 | xargs -r rm -rf || true; \
	fi

build: seed-target
	cargo build --locked --bins

# The same release build the Dockerfile performs (see Dockerfile).
release: seed-target
	cargo build --locked --release --bin signet

# The operator's OCI image as an archive for `ctr images import`, without a
# container engine or registry (hack/image.sh; the test node runs it). The
# Dockerfile describes the same image for docker/buildah users.
image: release
	hack/image.sh signet --binary "$(CARGO_TARGET_DIR)/release/signet"

testenv:
	@hack/testenv.sh setup >/dev/null

fmt:
	cargo fmt --all -- --check

clippy:
	cargo clippy --locked --workspace --all-targets -- -D warnings

lint: fmt clippy

# A fresh clone keeps the cached build of unchanged sources
# (hack/mtimes.py gives unchanged files the mtimes cargo last saw).
# The whole suite, built once: `cargo clippy --release` (check mode) and one
# `cargo test --release` build that also produces the release binary the
# Dockerfile ships, so the tests run against exactly that binary. Then the
# tests against the real control plane and local-kms, a check that no test
# process leaked, a bounded fuzz run of the OCSP request parser (fuzz-ci),
# and `signet --version` of the release binary.
test: testenv fmt seed-target
	@python3 hack/mtimes.py restore "$(CARGO_TARGET_DIR)"
	cargo clippy --locked --release --workspace --all-targets -- -D warnings
	@state="$$(mktemp -d -t signet-test.XXXXXX)"; \
	export SIGNET_TEST_STATE="$$state"; \
	export SIGNET_TESTENV_BIN="$$(hack/testenv.sh dir)/bin"; \
	cargo test --locked --release --workspace --no-run; \
	python3 hack/mtimes.py save "$(CARGO_TARGET_DIR)"; \
	rc=0; cargo test --locked --release --workspace --no-fail-fast -- --test-threads=$(TEST_THREADS) || rc=$$?; \
	hack/leak-check.sh || rc=1; \
	$(MAKE) --no-print-directory fuzz-ci || rc=1; \
	rm -rf "$$state"; exit $$rc
	@v="$$("$(CARGO_TARGET_DIR)/release/signet" --version)"; echo "release binary: $$v"; \
	case "$$v" in "signet "*) ;; *) echo "unexpected --version output: $$v" >&2; exit 1;; esac

version-check: release
	@v="$$("$(CARGO_TARGET_DIR)/release/signet" --version)"; echo "release binary: $$v"; \
	case "$$v" in "signet "*) ;; *) echo "unexpected --version output: $$v" >&2; exit 1;; esac

# Fuzzes the OCSP request parser (hack/fuzz, its own workspace) with
# cargo-fuzz on the nightly toolchain for FUZZ_SECONDS, starting from the
# committed openssl-made seeds (hack/fuzz/make-corpus.sh). The build is
# cached under $HOME, keyed by the fuzz lockfile. New inputs go to a
# scratch corpus; a crashing input is saved under hack/fuzz/artifacts/ and
# fails the target.
CARGO_FUZZ_VERSION := 0.13.2
FUZZ_LOCK_HASH := $(shell sha256sum hack/fuzz/Cargo.lock 2>/dev/null | cut -c1-12)
FUZZ_TARGET_DIR ?= $(HOME)/.cache/signet/fuzz-$(FUZZ_LOCK_HASH)
FUZZ_SECONDS ?= 60
FUZZ := cargo +nightly fuzz
FUZZ_ARGS := --fuzz-dir hack/fuzz --target-dir "$(FUZZ_TARGET_DIR)"

fuzz:
	@rustup which cargo --toolchain nightly >/dev/null 2>&1 || \
	  { echo "make fuzz needs a nightly Rust toolchain (cargo +nightly)" >&2; exit 1; }
	@[[ "$$(cargo fuzz --version 2>/dev/null)" == "cargo-fuzz $(CARGO_FUZZ_VERSION)" ]] || \
	  env -u CARGO_TARGET_DIR cargo install cargo-fuzz --locked --version $(CARGO_FUZZ_VERSION)
	cargo +nightly fetch --locked --quiet --manifest-path hack/fuzz/Cargo.toml
	$(FUZZ) build $(FUZZ_ARGS) parse_request
	@scratch="$$(mktemp -d -t signet-fuzz.XXXXXX)"; rc=0; \
	$(FUZZ) run $(FUZZ_ARGS) parse_request "$$scratch" hack/fuzz/corpus/parse_request -- \
	  -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -timeout=10 -print_final_stats=1 || rc=$$?; \
	rm -rf "$$scratch"; exit $$rc

# The same fuzz target, as `make test` runs it: built on the stable
# toolchain with libFuzzer's coverage instrumentation (no AddressSanitizer,
# which needs nightly; the parser is safe Rust, so what it would add is
# little) plus debug assertions and overflow checks, without installing
# cargo-fuzz. FUZZ_CI_SECONDS of fuzzing from the committed seeds; any
# crash, panic or timeout fails the suite and leaves the input in
# hack/fuzz/artifacts/.
FUZZ_CI_SECONDS ?= 30
FUZZ_CI_TARGET_DIR ?= $(HOME)/.cache/signet/fuzz-ci-$(FUZZ_LOCK_HASH)
FUZZ_CI_RUSTFLAGS := -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks

# With an explicit --target, RUSTFLAGS reach only the fuzz target's code,
# not build scripts and proc macros (as cargo-fuzz does it).
HOST_TRIPLE := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')

fuzz-ci:
	env -u CARGO_TARGET_DIR RUSTFLAGS="$(FUZZ_CI_RUSTFLAGS)" cargo build --locked --release --quiet \
	  --manifest-path hack/fuzz/Cargo.toml --target-dir "$(FUZZ_CI_TARGET_DIR)" \
	  --target $(HOST_TRIPLE) --bin parse_request
	@mkdir -p hack/fuzz/artifacts; scratch="$$(mktemp -d -t signet-fuzz.XXXXXX)"; rc=0; \
	mkdir "$$scratch/corpus"; \
	"$(FUZZ_CI_TARGET_DIR)/$(HOST_TRIPLE)/release/parse_request" "$$scratch/corpus" hack/fuzz/corpus/parse_request \
	  -max_total_time=$(FUZZ_CI_SECONDS) -max_len=8192 -timeout=10 -print_final_stats=1 \
	  -artifact_prefix=hack/fuzz/artifacts/ > "$$scratch/log" 2>&1 || rc=$$?; \
	if [ "$$rc" -ne 0 ]; then tail -40 "$$scratch/log" >&2; \
	  echo "fuzz-ci: the OCSP request parser failed (exit $$rc); the input is in hack/fuzz/artifacts/" >&2; \
	else grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss)' "$$scratch/log" || true; fi; \
	rm -rf "$$scratch"; exit $$rc

# Issuance (backlog and live) and CRL benchmarks: the controllers in the
# bench process against the test environment's kube-apiserver and
# local-kms. One JSON line per scenario; BENCHMARKS.md has the figures.
BENCH_COUNT ?= 1000
BENCH_RATE ?= 50
BENCH_IDLE ?= 60
bench: testenv seed-target
	cargo build --locked --release -p signet-cluster-bench
	@export SIGNET_TESTENV_BIN="$$(hack/testenv.sh dir)/bin"; \
	state="$$(mktemp -d -t signet-bench.XXXXXX)"; export SIGNET_TEST_STATE="$$state"; \
	b="$(CARGO_TARGET_DIR)/release/signet-cluster-bench"; rc=0; \
	"$$b" issue --count $(BENCH_COUNT) --mode backlog --idle $(BENCH_IDLE) || rc=$$?; \
	"$$b" issue --count $(BENCH_COUNT) --mode live --rate $(BENCH_RATE) --idle 0 || rc=$$?; \
	"$$b" crl --entries 100000 || rc=$$?; \
	"$$b" ocsp --serials 1000 --clients 8 --seconds 10 || rc=$$?; \
	rm -rf "$$state"; exit $$rc

crds:
	cargo run --release --quiet --bin signet -- crds --split crds --with-policies
	cargo run --release --quiet --bin signet -- crds --split charts/signet/crds

readme:
	hack/update-readme.sh

# IN_CLUSTER=1: the operator runs as a pod from the image built here,
# installed with the chart onto the test environment's node (needs root).
IN_CLUSTER ?= 0
demo: testenv
	IN_CLUSTER=$(IN_CLUSTER) hack/demo.sh

demo-down:
	hack/demo.sh down
