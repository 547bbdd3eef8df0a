#!/usr/bin/env bash
# Shared vs per-step batch norm in R2U-Net's recurrent layers, on DRIVE, with
# everything else equal (seed, patches, schedule, budget): trains both, then
# evaluates each run's best checkpoint (chosen by validation AUC) on the test
# images. Usage: scripts/compare-bn.sh [DRIVE_DIR] [OUT_DIR] [extra train flags]
set -euo pipefail
data=${1:-../shared/data/DRIVE}
out=${2:-runs/compare-bn}
shift 2 || true
cargo build --release -p r2unet-cli
bin=target/release/r2unet
for bn in per-step shared; do
    "$bin" train --dataset drive --data "$data" --bn "$bn" --epochs 10 --patches-per-image 300 \
        --out "$out/$bn" "$@"
    "$bin" eval --run "$out/$bn" --dataset drive --data "$data" --split test --out "$out/$bn"
done
