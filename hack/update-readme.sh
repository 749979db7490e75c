#!/usr/bin/env bash
# Regenerates the CRD reference section of README.md from the Rust types.
set -euo pipefail
cd "$(dirname "$0")/.."
ref="$(mktemp)"
cargo run --release --quiet --bin signet -- crds --reference > "$ref"
python3 - "$ref" <<'PY'
import sys
ref = open(sys.argv[1]).read()
text = open("README.md").read()
start, end = "<!-- crd-reference:start -->\n", "<!-- crd-reference:end -->"
a = text.index(start) + len(start)
b = text.index(end)
open("README.md", "w").write(text[:a] + ref + text[b:])
PY
rm -f "$ref"
