#!/usr/bin/env bash
# Trains latte-small (byte-level, 13.2M parameters) in one call on a GPU machine
# and leaves what the repository needs in $OUT (at most 8 files of 16 MiB):
# the checkpoint split into shards, the training log, the golden outputs of the
# reference recurrence and the console log.
#
# Prepare the corpus first (it is not committed): from tools/train,
#   python3 -m latte_train.data --out data
# then, from the repository root, through the device tool:
#   run(command="tools/train/device/latte-small.sh", carry=["tools/train/data"], timeout_s=590)
# and on this machine:
#   tools/train/device/finish-latte-small.sh <files_at>
#
# The recipe is the default model's (latte-micro-decay): no positions, the decay
# gate, the broad corpus. RECIPE overrides it (for example "--pos vapor").
#
# The same call trains the default micro model longer than a CPU can (its card's
# targets want more than 100 CPU minutes): NAME=latte-micro-decay
# SIZE="--d-model 128 --layers 6 --heads 4 --latents 64" BATCH="--seq 256 --batch 64";
# then tools/train/make-model.sh on the joined checkpoint. Latte-Macchiato from
# scratch likewise: NAME=latte-macchiato-micro, the same SIZE and BATCH, and
# RECIPE="--pos none --gate decay --window 128 --combine sum" (on a CPU it learns
# faster than Latte at equal steps: tools/train/results/macchiato/README.md).
#
# Knobs for a dry run on a CPU (all optional): NAME (default latte-small), MINUTES (training budget, default 7),
# SIZE (model flags), BATCH (batch flags), DEVICE_ARGS (extra trainer flags),
# OUT (default ./out), RUN_DIR (the trainer's folder), DATA_DIR (default data).
set -euo pipefail
cd "$(dirname "$0")/.."                     # tools/train
OUT=${OUT:-$PWD/out}
MINUTES=${MINUTES:-7}
SIZE=${SIZE:---d-model 384 --layers 8 --heads 6 --latents 192}
BATCH=${BATCH:---seq 512 --batch 64}
DEVICE_ARGS=${DEVICE_ARGS:---amp bf16}
RECIPE=${RECIPE:---pos none --gate decay}
NAME=${NAME:-latte-small}
RUN=${RUN_DIR:-/tmp/$NAME-run}
DATA=${DATA_DIR:-data}

for f in train.txt val.txt manifest.json; do
  if [ ! -f "$DATA/$f" ]; then
    echo "error: $DATA/$f is missing: run 'python3 -m latte_train.data --out data' in tools/train and carry tools/train/data" >&2
    exit 2
  fi
done
mkdir -p "$OUT" "$RUN"
log="$OUT/console.log"
{
  date -u +"start %Y-%m-%dT%H:%M:%SZ"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
  echo "corpus manifest:"; cat "$DATA/manifest.json"
  # shellcheck disable=SC2086
  python3 -m latte_train.train --data "$DATA" --out "$RUN" --name "$NAME" $SIZE $BATCH \
    --minutes "$MINUTES" --steps 1000000 --lr 2e-3 --warmup 200 --eval-every 500 \
    --eval-windows 512 --patience 4 $RECIPE $DEVICE_ARGS
  python3 -m latte_train.golden "$RUN/model.safetensors" -o "$OUT/golden.json"
  python3 -m latte_train.shards split "$RUN/model.safetensors" --max-mib 15 -o "$OUT"
  cp "$RUN/train_log.json" "$OUT/"
  date -u +"end %Y-%m-%dT%H:%M:%SZ"
} 2>&1 | tee "$log"
