#!/usr/bin/env bash
# Turns what tools/train/device/latte-small.sh left in its $OUT folder into the
# files of models/latte-small: joins the checkpoint's shards, converts it to
# Q8_0 and Q4_0 GGUF, copies the golden outputs and the training log, and
# measures bits per byte on the held-out test text (with the f32 conversion as
# the reference) for the model card.
#
#   tools/train/device/finish-latte-small.sh DIR [MODEL_DIR]
#
# DIR is the folder with the shards, golden.json, train_log.json and console.log;
# MODEL_DIR defaults to models/latte-small. The f32 checkpoint and GGUF stay in
# tools/train/runs/latte-small (not committed: 53 MB each). Optional:
# LATTE_BIN (a built latte; default: build target/release/latte), TEST_TEXT
# (default tools/train/data/test.txt), RUNS_DIR (default tools/train/runs/latte-small).
set -euo pipefail
if [ $# -lt 1 ] || [ ! -d "$1" ]; then
  echo "usage: $0 DIR [MODEL_DIR]   (DIR: the output folder of tools/train/device/latte-small.sh)" >&2
  exit 2
fi
src=$(cd "$1" && pwd)
cd "$(dirname "$0")/../../.."                # repository root
dst=${2:-models/latte-small}
runs=${RUNS_DIR:-tools/train/runs/latte-small}
test_text=${TEST_TEXT:-tools/train/data/test.txt}
name=$(basename "$dst")
for f in golden.json train_log.json console.log; do
  [ -f "$src/$f" ] || { echo "error: $src/$f is missing; did the training call finish?" >&2; exit 2; }
done
shopt -s nullglob
shards=("$src"/model-*-of-*.safetensors)
[ ${#shards[@]} -gt 0 ] || { echo "error: no model-*-of-*.safetensors shards in $src" >&2; exit 2; }
[ -f "$test_text" ] || { echo "error: $test_text is missing: run 'python3 -m latte_train.data --out data' in tools/train" >&2; exit 2; }
test_text=$(cd "$(dirname "$test_text")" && pwd)/$(basename "$test_text")

mkdir -p "$dst" "$runs"
dst=$(cd "$dst" && pwd)
runs=$(cd "$runs" && pwd)
(cd tools/train && python3 -m latte_train.shards join "${shards[@]}" -o "$runs/model.safetensors")
cp "$src/golden.json" "$src/train_log.json" "$dst/"
cp "$src/console.log" "$runs/console.log"

if [ -n "${LATTE_BIN:-}" ]; then
  latte=$(cd "$(dirname "$LATTE_BIN")" && pwd)/$(basename "$LATTE_BIN")
else
  cargo build --release --locked -p latte-cli
  latte=$PWD/target/release/latte
fi
$latte convert "$runs/model.safetensors" -o "$runs/$name-f32.gguf" --dtype f32
echo "== the f32 conversion against the golden outputs (float64 reference recurrence)"
(cd tools/train && python3 -m latte_train.check_logits "$latte" "$runs/$name-f32.gguf" \
  "$dst/golden.json" --tol 1e-4)
for t in q8_0 q4_0; do
  $latte convert "$runs/model.safetensors" -o "$dst/$name-$t.gguf" --dtype "$t"
done
ctx=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["config"]["max_seq_len"])' "$dst/train_log.json")

echo
echo "== $name: test bits per byte, windows of $ctx bytes"
$latte perplexity -m "$runs/$name-f32.gguf" -f "$test_text" --ctx "$ctx" --json | tee "$runs/ppl-f32.json"
for t in q8_0 q4_0; do
  $latte perplexity -m "$dst/$name-$t.gguf" -f "$test_text" --ctx "$ctx" \
    --reference "$runs/$name-f32.gguf" --json | tee "$runs/ppl-$t.json"
done
echo
echo "== sha256"
sha256sum "$runs/model.safetensors" "$runs/$name-f32.gguf" "$dst"/*.gguf "$dst/golden.json"
ls -l "$dst"
