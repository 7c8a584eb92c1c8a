#!/usr/bin/env bash
# The full test suite: every kernel against its CPU reference, the executor, naga validation
# of every shader, and the model parity tests, on the default adapter (lavapipe on CPU-only
# machines). Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/setup.sh
cargo build --release --locked
./target/release/unitok info
cargo test --release --locked "$@"
