#!/usr/bin/env bash
# Crash safety: starts a small synthetic training run, SIGKILLs it at a random
# moment (odd kills), or at the first temporary file seen after a random
# moment, i.e. inside a checkpoint write (even kills), then checks that the run folder holds a loadable
# checkpoint (`eval --checkpoint last`) and that `train --resume` completes.
# Repeats N times and prints a Markdown table.
#
#   scripts/kill-test.sh            # 20 kills
#   N=5 scripts/kill-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/r2unet}
N=${N:-20}
SEED=${SEED:-7}
if [ -z "${NO_BUILD:-}" ]; then cargo build --release -q -p r2unet-cli; fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run=$work/run
state_field() { python3 -c "import json,sys; s=json.load(open('$run/state.json')); print(s.get('$1'))"; }

RANDOM=$SEED
echo "| kill | after s | moment | state at kill (epoch/step, checkpoint) | temp files left | checkpoint loads | resume completes | epochs at the end |"
echo "|---|---|---|---|---|---|---|---|"
ok=0
for i in $(seq "$N"); do
  rm -rf "$run"
  "$BIN" train --dataset synthetic --synthetic-images 4 --epochs 3 --patches-per-image 24 \
    --batch-size 8 --checkpoint-minutes 0.001 --seed 3 --out "$run" >/dev/null 2>&1 &
  pid=$!
  delay=$(python3 -c "print(f'{0.5 + 5.5 * $RANDOM / 32767:.2f}')")
  sleep "$delay"
  when=anytime
  if [ $((i % 2)) -eq 0 ]; then
    # Wait for a write in progress (its temporary file), then kill at once.
    while kill -0 "$pid" 2>/dev/null && ! compgen -G "$run/*.tmp" >/dev/null; do sleep 0.002; done
    when="in a write"
  fi
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  tmp=$(find "$run" -name '*.tmp' 2>/dev/null | wc -l)
  if [ -f "$run/state.json" ]; then
    at="$(state_field epoch)/$(state_field step_in_epoch), $(state_field checkpoint)"
    if "$BIN" eval --run "$run" --checkpoint last --dataset synthetic --bootstrap 0 \
         --tune-on none --json >/dev/null 2>"$work/eval.log"; then loads=yes; else loads="NO: $(tail -1 "$work/eval.log")"; fi
  else
    at="none yet"; loads="n/a"
  fi
  if [ -f "$run/config.json" ] && "$BIN" train --resume "$run" >/dev/null 2>"$work/resume.log"; then
    resumed=yes; final=$(state_field epoch)
  else
    resumed="NO: $(tail -1 "$work/resume.log" 2>/dev/null)"; final="-"
  fi
  if [ "$resumed" = yes ] && { [ "$loads" = yes ] || [ "$loads" = n/a ]; }; then ok=$((ok + 1)); fi
  echo "| $i | $delay | $when | $at | $tmp | $loads | $resumed | $final |"
done
echo
echo "$ok of $N kills left a run that loads (or had not checkpointed yet) and resumed to the end; seed $SEED, $(date -u +%F)"
[ "$ok" -eq "$N" ]
