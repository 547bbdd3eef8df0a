#!/usr/bin/env bash
# Times r2unet and the PyTorch reference side by side on this machine:
# same model, batch, patch size and thread count, alternating runs, and
# prints the median step times and the ratio PyTorch / r2unet (> 1: we are
# faster) as a Markdown table. Absolute times on a shared machine are noise;
# ratios of runs interleaved in one session are not.
#
#   scripts/bench-vs-pytorch.sh                 # retina R2U-Net, batch 32, 48x48, 2 threads
#   ROUNDS=5 MODELS="unet r2unet" scripts/bench-vs-pytorch.sh
#   ISA=avx2 THREADS=1 scripts/bench-vs-pytorch.sh   # as on an AVX2-only CPU, one thread
#   PRECISION=bf16 scripts/bench-vs-pytorch.sh  # r2unet's bf16 against PyTorch's f32
#   PRECISION=bf16 TORCH_PRECISION=bf16 scripts/bench-vs-pytorch.sh  # ... against PyTorch's own bf16
#
# TORCH_PRECISION=bf16 times PyTorch through scripts/torch_bench_bf16.py
# (the same model from the reference): training under torch.autocast
# (bf16 convolutions, f32 weights and Adam), inference with the model and
# input cast to bf16 in channels-last layout (its fastest inference here).
#
# ISA caps both sides' instruction set: avx2 (R2UNET_ISA=avx2 and oneDNN's
# ONEDNN_MAX_CPU_ISA=AVX2) or portable (r2unet's plain loops; PyTorch at
# SSE4.1, x86-64's oldest oneDNN level). Unset: each uses what the CPU has.
#
# Needs the reference's venv (see ../shared/reference/README.md):
#   python3 -m venv /tmp/torchref && /tmp/torchref/bin/pip install torch==2.9.0 safetensors numpy
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${TORCH_PY:-/tmp/torchref/bin/python}
REF=${REF:-../shared/reference/r2unet_torch.py}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
BATCH=${BATCH:-32}
SIZE=${SIZE:-48}
STEPS=${STEPS:-5}
MODELS=${MODELS:-r2unet}
MODES=${MODES:-"train infer"}
BIN=${BIN:-target/release/r2unet}
ISA=${ISA:-}
PRECISION=${PRECISION:-f32}
TORCH_PRECISION=${TORCH_PRECISION:-f32}

case $ISA in
  "") ;;
  avx2) export R2UNET_ISA=avx2 ONEDNN_MAX_CPU_ISA=AVX2 ;;
  portable) export R2UNET_ISA=portable ONEDNN_MAX_CPU_ISA=SSE41 ;;
  *) echo "ISA=$ISA: expected avx2 or portable" >&2; exit 1 ;;
esac

[ -x "$PY" ] || { echo "no PyTorch at $PY (set TORCH_PY)" >&2; exit 1; }
[ -f "$REF" ] || { echo "no reference script at $REF (set REF)" >&2; exit 1; }
if [ -z "${NO_BUILD:-}" ]; then cargo build --release -q -p r2unet-cli; fi

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { python3 -c "import json,sys; print(json.loads(sys.stdin.read())['$1'])"; }

echo "| model | mode | r2unet median ms | PyTorch median ms | ratio PyTorch/r2unet | r2unet GFLOP/s |"
echo "|---|---|---|---|---|---|"
for model in $MODELS; do
  per_step=""
  case $model in runet|r2unet) per_step="--per-step-bn" ;; esac
  for mode in $MODES; do
    ours=(); theirs=(); gflops=()
    for _ in $(seq "$ROUNDS"); do
      o=$("$BIN" bench --model "$model" --mode "$mode" --batch "$BATCH" --size "$SIZE" \
          --steps "$STEPS" --threads "$THREADS" --precision "$PRECISION" --json)
      case $TORCH_PRECISION in
        f32) t=$("$PY" "$REF" bench --model "$model" --mode "$mode" --batch "$BATCH" --size "$SIZE" \
               --steps "$STEPS" --threads "$THREADS" $per_step) ;;
        bf16) how=autocast; [ "$mode" = infer ] && how=cast
              t=$("$PY" scripts/torch_bench_bf16.py --ref "$REF" --how "$how" --model "$model" \
                  --mode "$mode" --batch "$BATCH" --size "$SIZE" --steps "$STEPS" \
                  --threads "$THREADS" $per_step) ;;
        *) echo "TORCH_PRECISION=$TORCH_PRECISION: expected f32 or bf16" >&2; exit 1 ;;
      esac
      ours+=("$(echo "$o" | field median_ms)")
      gflops+=("$(echo "$o" | field gflop_per_s)")
      theirs+=("$(echo "$t" | field median_ms)")
    done
    a=$(printf '%s\n' "${ours[@]}" | median)
    b=$(printf '%s\n' "${theirs[@]}" | median)
    g=$(printf '%s\n' "${gflops[@]}" | median)
    ratio=$(python3 -c "print(f'{$b / $a:.2f}')")
    echo "| $model | $mode | $a | $b | $ratio | $g |"
  done
done
echo
echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernels ${ISA:-as the CPU allows}, r2unet in $PRECISION (PyTorch $TORCH_PRECISION), $THREADS threads, batch $BATCH, ${SIZE}x${SIZE}, median of $ROUNDS alternating rounds of $STEPS timed steps each; $(date -u +%F)"
