#!/usr/bin/env bash
# The main job: build, show the adapter, and check every kernel on it against the CPU
# reference. Extra arguments are passed to `unitok selfcheck`.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/setup.sh
cargo build --release --locked
./target/release/unitok info
./target/release/unitok selfcheck "$@"
