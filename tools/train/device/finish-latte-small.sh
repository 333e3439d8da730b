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
# tools/train/runs/latte-small (not committed: 53 MB each).
set -euo pipefail
if [ $# -lt 1 ] || [ ! -d "$1" ]; then
  echo "usage: $0 DIR [MODEL_DIR]   (DIR: the output folder of tools/train/device/latte-small.sh)" >&2
  exit 2
fi
src=$(cd "$1" && pwd)
cd "$(dirname "$0")/../../.."                # repository root
dst=${2:-models/latte-small}
runs=tools/train/runs/latte-small
name=$(basename "$dst")
for f in golden.json train_log.json console.log; do
  [ -f "$src/$f" ] || { echo "error: $src/$f is missing; did the training call finish?" >&2; exit 2; }
done
shopt -s nullglob
shards=("$src"/model-*-of-*.safetensors)
[ ${#shards[@]} -gt 0 ] || { echo "error: no model-*-of-*.safetensors shards in $src" >&2; exit 2; }
[ -f tools/train/data/test.txt ] || { echo "error: tools/train/data/test.txt is missing: run 'python3 -m latte_train.data --out data' in tools/train" >&2; exit 2; }

mkdir -p "$dst" "$runs"
(cd tools/train && python3 -m latte_train.shards join "${shards[@]}" -o "../../$runs/model.safetensors")
cp "$src/golden.json" "$src/train_log.json" "$dst/"
cp "$src/console.log" "$runs/console.log"

cargo build --release --locked -p latte-cli
latte=target/release/latte
$latte convert "$runs/model.safetensors" -o "$runs/$name-f32.gguf" --dtype f32
for t in q8_0 q4_0; do
  $latte convert "$runs/model.safetensors" -o "$dst/$name-$t.gguf" --dtype "$t"
done
ctx=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["config"]["max_seq_len"])' "$dst/train_log.json")

echo
echo "== $name: test bits per byte, windows of $ctx bytes"
$latte perplexity -m "$runs/$name-f32.gguf" -f tools/train/data/test.txt --ctx "$ctx" --json | tee "$runs/ppl-f32.json"
for t in q8_0 q4_0; do
  $latte perplexity -m "$dst/$name-$t.gguf" -f tools/train/data/test.txt --ctx "$ctx" \
    --reference "$runs/$name-f32.gguf" --json | tee "$runs/ppl-$t.json"
done
echo
echo "== sha256"
sha256sum "$runs/model.safetensors" "$runs/$name-f32.gguf" "$dst"/*.gguf "$dst/golden.json"
ls -l "$dst"
