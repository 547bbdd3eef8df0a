#!/usr/bin/env bash
# The GPU check, for an NVIDIA (or any Vulkan) machine, in about 5 minutes:
# builds with the vulkan feature, runs the PyTorch parity tests on the GPU,
# benches a training and an inference step against the CPU, and trains on
# DRIVE for a fixed patch budget; prints one JSON object per step.
#
#   scripts/gpu-check.sh                     # DRIVE from ../shared/data/DRIVE
#   DRIVE=/path/to/DRIVE PATCHES=2000 scripts/gpu-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
FEATURE=${FEATURE:-vulkan}
DEVICE=${DEVICE:-vulkan}
DRIVE=${DRIVE:-../shared/data/DRIVE}
PATCHES=${PATCHES:-2000}   # per image: 40,000 training patches in all
BATCH=${BATCH:-256}
BIN=target/release/r2unet
t0=$(date +%s)

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | \
  python3 -c "import sys,json; print(json.dumps({'step':'gpu','nvidia_smi':sys.stdin.read().strip()}))" || true

cargo build --release -q -p r2unet-cli --features "$FEATURE"
echo "{\"step\":\"build\",\"seconds\":$(( $(date +%s) - t0 ))}"

if R2UNET_TEST_DEVICE=$DEVICE cargo test --release -q -p r2unet --features "$FEATURE" --test all parity >/tmp/gpu-parity.log 2>&1; then
  parity=pass; else parity=fail; fi
echo "{\"step\":\"parity\",\"device\":\"$DEVICE\",\"result\":\"$parity\",\"log\":\"/tmp/gpu-parity.log\"}"

for mode in train infer; do
  for dev in "$DEVICE" cpu; do
    b=$BATCH; [ "$dev" = cpu ] && b=32
    "$BIN" bench --mode "$mode" --batch "$b" --steps 10 --device "$dev" --json
  done
done

if [ -d "$DRIVE" ]; then
  out=$(mktemp -d)/run
  start=$(date +%s)
  "$BIN" train --dataset drive --data "$DRIVE" --device "$DEVICE" --epochs 1 \
    --patches-per-image "$PATCHES" --batch-size "$BATCH" --out "$out" >/tmp/gpu-train.log 2>&1
  secs=$(( $(date +%s) - start ))
  "$BIN" eval --run "$out" --dataset drive --data "$DRIVE" --device "$DEVICE" --tune-on none \
    --bootstrap 0 --json > /tmp/gpu-eval.json
  python3 - "$out" "$secs" <<'PY'
import json, sys
run, secs = sys.argv[1], int(sys.argv[2])
state = json.load(open(f"{run}/state.json"))
ev = json.load(open("/tmp/gpu-eval.json"))["fixed"]["pooled"]
rec = state["history"][-1]
print(json.dumps({"step": "train-drive", "seconds": secs, "patches_per_s": rec["patches_per_s"],
                  "val_auc": rec["val_auc"], "test_auc": ev["auc"], "test_f1": ev["f1"]}))
PY
else
  echo "{\"step\":\"train-drive\",\"skipped\":\"no DRIVE at $DRIVE\"}"
fi
echo "{\"step\":\"total\",\"seconds\":$(( $(date +%s) - t0 ))}"
