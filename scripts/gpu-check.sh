#!/usr/bin/env bash
# The GPU check, for an NVIDIA (or any Vulkan) machine, in about 5 minutes:
# builds with the wgpu feature, replays the PyTorch parity fixtures on the GPU
# (`r2unet parity`), benches training and inference steps on the GPU and the
# CPU, and trains on DRIVE for a fixed patch budget; prints JSON per step.
#
#   scripts/gpu-check.sh                     # DRIVE from ../shared/data/DRIVE
#   DRIVE=/path/to/DRIVE PATCHES=2000 scripts/gpu-check.sh
#
# On a machine without Rust (a rented GPU box), build here and carry the
# program: `cargo build --release -p r2unet-cli --features wgpu`, then
#   BIN=path/to/r2unet scripts/gpu-check.sh
# (run from the repository root: the parity fixtures are read from
# crates/r2unet/tests/fixtures/parity). SKIP_PARITY=1 and SKIP_TRAIN=1 leave
# out the parity replay and the DRIVE run; BENCH_DEVICES=wgpu benches the GPU
# alone. FEATURE=vulkan DEVICE=vulkan takes cubecl's SPIR-V path instead,
# which failed on an H100 where the default WGSL path (wgpu) works
# (BENCHMARKS.md, GPU). BATCHES lists the GPU batch sizes benched (default
# "32 256 1024"; 1,024 patches failed in training there, cubecl's "Cube
# count too big": convolutions on Burn's operations are now split into calls
# of at most 524,280 output pixels, which removed that failure on Mesa's
# software Vulkan, not yet measured on an H100). The same check runs on Mesa's
# software Vulkan driver (lavapipe) for a dry run on any machine:
#   VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json BATCHES=32 BATCH=16 PATCHES=20 \
#     BIN=target/release/r2unet scripts/gpu-check.sh
# Every GPU command runs under `timeout`: when cubecl's device thread panics
# the caller waits forever.
set -euo pipefail
cd "$(dirname "$0")/.."
FEATURE=${FEATURE:-wgpu}
DEVICE=${DEVICE:-wgpu}
DRIVE=${DRIVE:-../shared/data/DRIVE}
PATCHES=${PATCHES:-2000}   # per image: 36,000 training patches in all
BATCH=${BATCH:-256}        # the DRIVE run's batch
BATCHES=${BATCHES:-32 256 1024}
BIN=${BIN:-}
t0=$(date +%s)

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | \
  python3 -c "import sys,json; print(json.dumps({'step':'gpu','nvidia_smi':sys.stdin.read().strip()}))" || true

# Diagnostics for the Vulkan failure seen on an H100 (BENCHMARKS.md, GPU): the
# memory types the driver offers (cubecl's SPIR-V path allocates uniforms with
# raw vkAllocateMemory on the first DEVICE_LOCAL type, with device addresses),
# and kernel messages. Skipped where the tools are missing.
if command -v vulkaninfo >/dev/null; then
  timeout 20 vulkaninfo 2>/dev/null | sed -n '/VkPhysicalDeviceMemoryProperties/,/^VkPhysicalDeviceFeatures/p' \
    | grep -E 'memoryHeaps|memoryTypes|size|propertyFlags|heapIndex|MEMORY_' | head -60 >/tmp/gpu-memory-types.txt || true
  python3 -c "import json; print(json.dumps({'step':'vulkan-memory-types','lines':open('/tmp/gpu-memory-types.txt').read().splitlines()}))" || true
fi

if [ -z "$BIN" ]; then
  cargo build --release -q -p r2unet-cli --features "$FEATURE"
  BIN=target/release/r2unet
  echo "{\"step\":\"build\",\"seconds\":$(( $(date +%s) - t0 ))}"
fi

if [ -n "${SKIP_PARITY:-}" ]; then
  parity=skipped
elif timeout 300 "$BIN" parity --device "$DEVICE" --json >/tmp/gpu-parity.jsonl 2>&1; then
  parity=pass
else
  parity=fail
fi
worst=null; [ "$parity" = skipped ] || worst=$(python3 -c "
import json
rows = [json.loads(l) for l in open('/tmp/gpu-parity.jsonl') if l.startswith('{')]
print(max((max(r['eval_logits'], r['train_logits'], r['loss'], r['after_step']) for r in rows), default='null'))
" 2>/dev/null || echo null)
echo "{\"step\":\"parity\",\"device\":\"$DEVICE\",\"result\":\"$parity\",\"max_diff\":$worst,\"log\":\"/tmp/gpu-parity.jsonl\"}"

# Training and inference steps at the paper's batch (32) and GPU-sized ones,
# then one 576x576 image (a DRIVE image, padded); the CPU for comparison.
for dev in ${BENCH_DEVICES:-$DEVICE cpu}; do
  for mode in train infer; do
    for b in $BATCHES; do
      [ "$dev" = cpu ] && [ "$b" != 32 ] && continue
      timeout 120 "$BIN" bench --mode "$mode" --batch "$b" --steps 10 --device "$dev" --json || true
    done
  done
  timeout 120 "$BIN" bench --mode infer --batch 1 --size 576 --steps 5 --device "$dev" --json || true
done

if [ -n "${SKIP_TRAIN:-}" ]; then
  echo "{\"step\":\"train-drive\",\"skipped\":\"SKIP_TRAIN\"}"
elif [ -d "$DRIVE" ]; then
  out=$(mktemp -d)/run
  start=$(date +%s)
  timeout -s INT -k 20 600 "$BIN" train --dataset drive --data "$DRIVE" --device "$DEVICE" --epochs 1 \
    --patches-per-image "$PATCHES" --batch-size "$BATCH" --out "$out" >/tmp/gpu-train.log 2>&1
  secs=$(( $(date +%s) - start ))
  timeout 300 "$BIN" eval --run "$out" --dataset drive --data "$DRIVE" --device "$DEVICE" --tune-on none \
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
