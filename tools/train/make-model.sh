#!/usr/bin/env bash
# Turns a training run into the files of a model folder under models/ and
# measures it the way users meet it: every test text scored as one continuous
# stream (and restarted every 256 bytes, for comparison), by position range.
#
#   tools/train/make-model.sh RUN_DIR MODEL_DIR
#
# RUN_DIR holds model.safetensors, train_log.json and console.log (what
# `python3 -m latte_train.train --out RUN_DIR` wrote); MODEL_DIR is created, e.g.
# models/latte-micro-decay. Writes there NAME.safetensors, golden.json (the
# float64 reference recurrence), NAME-{f32,f16,q8_0,q4_0}.gguf, the training log
# and, under eval/, the measurements: one JSON per file and text, the position
# curves as CSV and SVG, bzip2 -9 and xz -9e on the same texts, and summary.txt.
#
# Optional: LATTE_BIN (a built latte; default: build target/release/latte),
# DATA_DIR (default tools/train/data), TEXTS (default "test test-modern"),
# THREADS (default 2), COMPARE (other GGUF files scored the same way, continuous
# and restarted every 256 bytes, for the card's comparison).
set -euo pipefail
if [ $# -ne 2 ] || [ ! -f "$1/model.safetensors" ]; then
  echo "usage: $0 RUN_DIR MODEL_DIR   (RUN_DIR: a trainer output folder with model.safetensors)" >&2
  exit 2
fi
run=$(cd "$1" && pwd)
cd "$(dirname "$0")/../.."                     # repository root
dst=$2
name=$(basename "$dst")
data=${DATA_DIR:-tools/train/data}
texts=${TEXTS:-test test-modern}
threads=${THREADS:-2}
for t in $texts; do
  [ -f "$data/$t.txt" ] || { echo "error: $data/$t.txt is missing: run 'python3 -m latte_train.data --out data' in tools/train" >&2; exit 2; }
done
mkdir -p "$dst/eval"
dst=$(cd "$dst" && pwd)
data=$(cd "$data" && pwd)
if [ -n "${LATTE_BIN:-}" ]; then
  latte=$(cd "$(dirname "$LATTE_BIN")" && pwd)/$(basename "$LATTE_BIN")
else
  cargo build --release --locked -p latte-cli
  latte=$PWD/target/release/latte
fi

cp "$run/model.safetensors" "$dst/$name.safetensors"
cp "$run/train_log.json" "$dst/"
[ -f "$run/console.log" ] && cp "$run/console.log" "$dst/train_console.log"
echo "== golden outputs (float64 reference recurrence)"
(cd tools/train && python3 -m latte_train.golden "$dst/$name.safetensors" -o "$dst/golden.json")
for t in f32 f16 q8_0 q4_0; do
  $latte convert "$dst/$name.safetensors" -o "$dst/$name-$t.gguf" --dtype "$t"
done
echo "== the f32 conversion against the golden outputs"
(cd tools/train && python3 -m latte_train.check_logits "$latte" "$dst/$name-f32.gguf" "$dst/golden.json" --tol 1e-4)

ev=$dst/eval
summary=$ev/summary.txt
: > "$summary"
for t in $texts; do
  text=$data/$t.txt
  bytes=$(stat -c %s "$text")
  echo "== $t.txt ($bytes bytes)" | tee -a "$summary"
  $latte perplexity -m "$dst/$name-f32.gguf" -f "$text" -t "$threads" --buckets \
    --csv "$ev/$t-f32-continuous.csv" --svg "$ev/$t-f32-continuous.svg" --json > "$ev/$t-f32-continuous.json"
  $latte perplexity -m "$dst/$name-f32.gguf" -f "$text" -t "$threads" --ctx 256 --buckets \
    --json > "$ev/$t-f32-ctx256.json"
  for q in f16 q8_0 q4_0; do
    $latte perplexity -m "$dst/$name-$q.gguf" -f "$text" -t "$threads" --buckets \
      --reference "$dst/$name-f32.gguf" --json > "$ev/$t-$q-continuous.json"
  done
  bz=$(bzip2 -9 -c "$text" | wc -c)
  xzs=$(xz -9e -c "$text" | wc -c)
  python3 - "$ev" "$t" "$bytes" "$bz" "$xzs" >> "$summary" <<'EOF'
import json, sys
ev, t, n, bz, xz = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
def load(run):
    return json.load(open(f"{ev}/{t}-{run}.json"))
f32 = load("f32-continuous")
print(f"  bzip2 -9: {8 * bz / n:.3f} bits/byte   xz -9e: {8 * xz / n:.3f} bits/byte")
for run in ("f32-continuous", "f32-ctx256", "f16-continuous", "q8_0-continuous", "q4_0-continuous"):
    r = load(run)
    extra = ""
    if r.get("kl_mean") is not None:
        rel = 100.0 * (r["bits_per_byte"] / f32["bits_per_byte"] - 1.0)
        extra = (f"   vs f32 {rel:+.2f} %, KL {r['kl_mean']:.4f} nats/byte, "
                 f"same top byte {100 * r['same_top_rate']:.2f} %")
    print(f"  {run:16s} {r['bits_per_byte']:.4f} bits/byte{extra}")
    print("      " + "  ".join(f"{b['range']}: {b['bits_per_byte']:.3f}"
                              for b in r.get("buckets", []) if b["bits_per_byte"] is not None))
EOF
  for other in ${COMPARE:-}; do
    o=$(basename "$other" .gguf)
    for mode in continuous ctx256; do
      flag=(); [ $mode = ctx256 ] && flag=(--ctx 256)
      $latte perplexity -m "$other" -f "$text" -t "$threads" "${flag[@]}" --buckets --json > "$ev/$t-$o-$mode.json"
      python3 - "$ev/$t-$o-$mode.json" "$o $mode" >> "$summary" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
rows = "  ".join(f"{b['range']}: {b['bits_per_byte']:.3f}" for b in r["buckets"] if b["bits_per_byte"] is not None)
print(f"  {sys.argv[2]:32s} {r['bits_per_byte']:.4f} bits/byte   {rows}")
PY
    done
  done
done
cat "$summary"
echo "== sha256"
(cd "$dst" && sha256sum "$name.safetensors" ./*.gguf golden.json)
