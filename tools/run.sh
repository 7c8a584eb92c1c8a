#!/usr/bin/env bash
# The main job: build, show the adapter, check every kernel on it against the CPU reference,
# then tokenize images and decode them back (original | reconstruction PNGs in out/, PSNR
# printed, codes in out/codes.npy).
#
#   tools/run.sh                        # sample images, the bundled small test checkpoint
#   tools/run.sh WEIGHTS IMAGE_OR_DIR... # your checkpoint (.pth or .safetensors) and images
#
# The bundled checkpoint (kernels-tests/data/alt/model.pth) has random weights: it shows the
# whole pipeline running, not a good reconstruction. Released UniTok weights give real ones.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/setup.sh
cargo build --release --locked
./target/release/unitok info
./target/release/unitok selfcheck
weights="${1:-kernels-tests/data/alt/model.pth}"
shift || true
if [ "$#" -eq 0 ]; then set -- kernels-tests/data/alt/images; fi
mkdir -p out
./target/release/unitok encode -w "$weights" "$@" -o out/codes.npy
./target/release/unitok reconstruct -w "$weights" "$@" -o out/reconstructions
echo "codes: out/codes.npy; pictures: out/reconstructions/"
