#!/usr/bin/env bash
# Turns a trained classifier run into a shipped model folder:
#
#   tools/train/make-classifier.sh RUN_DIR MODEL_DIR [DATA_DIR]
#
# RUN_DIR is a `latte_train.train_classifier` output (model.safetensors,
# result.json, train_log.json, and the console log RUN_DIR.log beside it);
# DATA_DIR (default tools/train/data-spam) holds test/<label>/* files.
# Writes MODEL_DIR/NAME.safetensors, NAME-{f32,q8_0,q4_0}.gguf, and
# eval/NAME-{f32,q8_0,q4_0}.json: `latte eval-classifier` on the test files
# (the runtime's accuracy and confusion matrix, to set beside the PyTorch
# ones in result.json).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
run=$(cd "$1" && pwd)
mkdir -p "$2"
out=$(cd "$2" && pwd)
data=${3:-$here/data-spam}
name=$(basename "$out")
latte=$root/target/release/latte
(cd "$root" && cargo build --release --locked -p latte-cli)
cp "$run/model.safetensors" "$out/$name.safetensors"
cp "$run/result.json" "$out/result.json"
cp "$run/train_log.json" "$out/train_log.json"
[ -f "$run.log" ] && cp "$run.log" "$out/train_console.log"
mkdir -p "$out/eval"
for t in f32 q8_0 q4_0; do
  "$latte" convert "$out/$name.safetensors" -o "$out/$name-$t.gguf" --dtype "$t" --name "$name"
  "$latte" eval-classifier -m "$out/$name-$t.gguf" --data "$data/test" --json > "$out/eval/$name-$t.json"
  echo "$t: $(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print('accuracy', round(r['accuracy'], 4), 'confusion', r['confusion'], 'seconds', round(r['seconds'], 1))" "$out/eval/$name-$t.json")"
done
