#!/usr/bin/env bash
# Regenerates drivers/tests/fixtures/format-v1/ from the commit that last wrote format version 1
# with the heartbeat flag (7f400ca, the parent of 1d04913 "registry v2: the heartbeat's stored
# form"). It builds that commit in a scratch worktree with its own target directory (nothing of
# this checkout is touched but the fixture directory), appends generator.rs to its
# drivers/src/kv.rs, compiles the key-value layout with the `testing` feature alone (a scratch
# edit of the cfg lines: no etcd client needed), and runs the generator.
#
# Usage: scripts/format-v1-fixture/generate.sh [SCRATCH_DIR]   (default /tmp/format-v1-scratch)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
scratch="${1:-/tmp/format-v1-scratch}"
old=7f400ca
out="$repo/drivers/tests/fixtures/format-v1/store"
if [ ! -d "$scratch" ]; then
  git -C "$repo" worktree add --detach "$scratch" "$old"
fi
cd "$scratch"
git checkout --quiet -- drivers/src
# lib.rs: compile `kv` with `testing`; keys.rs, kv.rs, codec.rs: what they compile for etcd,
# compile for `testing` (their etcd parts are key names and the shared layout, no etcd client).
sed -i 's/any(feature = "etcd", feature = "fdb")/any(feature = "etcd", feature = "fdb", feature = "testing")/' drivers/src/lib.rs
sed -i 's/feature = "etcd"/feature = "testing"/g' drivers/src/keys.rs drivers/src/kv.rs drivers/src/codec.rs
cat "$here/generator.rs" >> drivers/src/kv.rs
rm -rf "$out"
mkdir -p "$out"
FIXTURE_DIR="$out" CARGO_TARGET_DIR="$scratch/target" \
  cargo test -p membership --features testing --lib format_v1_fixture -- --nocapture
echo "written: $out"
