#!/usr/bin/env bash
# Builds the C example against the static library with -Wall -Werror and
# AddressSanitizer + UndefinedBehaviorSanitizer, runs it, and checks that it
# prints exactly what `latte run` prints for the same model, prompt and seed.
# Also checks that the header the example includes is the committed one.
#
#   crates/latte-ffi/examples/c/check.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../../../.." && pwd)
cd "$root"
cargo build --release --locked -p latte-ffi -p latte-cli
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cc -std=c99 -Wall -Wextra -Werror -g -fsanitize=address,undefined -fno-omit-frame-pointer \
  -DLATTE_STD -I crates/latte-ffi/include crates/latte-ffi/examples/c/generate.c \
  target/release/liblatte_ffi.a -lpthread -ldl -lm -o "$out/generate"
model=models/latte-micro-decay/latte-micro-decay-q8_0.gguf
prompt="It was a dark and stormy night"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1
"$out/generate" "$model" "$prompt" 100 7 > "$out/c.txt"
target/release/latte run -m "$model" -p "$prompt" -n 100 --seed 7 > "$out/rust.txt" 2>/dev/null
if ! cmp -s "$out/c.txt" "$out/rust.txt"; then
  echo "the C example's text differs from latte run's:" >&2
  cmp "$out/c.txt" "$out/rust.txt" >&2 || true
  exit 1
fi
# Greedy (temperature 0) too.
"$out/generate" "$model" "$prompt" 64 0 0 0 1 > "$out/c0.txt"
target/release/latte run -m "$model" -p "$prompt" -n 64 --temp 0 > "$out/rust0.txt" 2>/dev/null
cmp -s "$out/c0.txt" "$out/rust0.txt" || { echo "greedy text differs" >&2; exit 1; }
# A Macchiato model with q8 rings (set through the C API before the session).
mac=models/latte-macchiato-micro/latte-macchiato-micro-q8_0.gguf
"$out/generate" "$mac" "$prompt" 64 0 0 0 1 q8 > "$out/cq8.txt"
target/release/latte run -m "$mac" -p "$prompt" -n 64 --temp 0 --ring q8 > "$out/rustq8.txt" 2>/dev/null
cmp -s "$out/cq8.txt" "$out/rustq8.txt" || { echo "greedy text with q8 rings differs" >&2; exit 1; }
# Hostile input: a file that is not a model is an error message, exit 1.
head -c 1000 "$model" > "$out/cut.gguf"
if "$out/generate" "$out/cut.gguf" "$prompt" 10 1 2> "$out/err.txt"; then
  echo "a truncated model was accepted" >&2; exit 1
fi
grep -q "error: load the model" "$out/err.txt"
echo "C example: same text as latte run (sampled and greedy; Macchiato with q8 rings), ASan/UBSan clean; a cut model is refused: $(cat "$out/err.txt")"
