#!/usr/bin/env bash
# Instructions one quantized matrix-vector product executes on AArch64, per
# 32-value block: the `insn_count` example of latte-kernels, built for
# aarch64 Linux, run under qemu-user one instruction per translation block
# with an execution trace, counting the instructions between its two marker
# calls. Instructions, not cycles: qemu models no timing, and no ARM machine
# is reachable from here. On an in-order core (Cortex-A53) they are the
# better part of the cost.
#
#     tools/insn-count.sh CPU PATH FMT ROWS COLS
#     tools/insn-count.sh cortex-a76 neon-dotprod q8_0 384 1536
set -euo pipefail
if [ $# -ne 5 ]; then
  echo "usage: $0 QEMU_CPU KERNEL_PATH q8_0|q4_0 ROWS COLS" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
cpu=$1 path=$2 fmt=$3 rows=$4 cols=$5
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
cargo build --release --locked -q -p latte-kernels --features std --example insn_count \
  --target aarch64-unknown-linux-gnu
bin=target/aarch64-unknown-linux-gnu/release/examples/insn_count
marker=$(aarch64-linux-gnu-nm "$bin" | awk '$3 == "latte_insn_marker" { print $1 }')
[ -n "$marker" ] || { echo "error: no latte_insn_marker symbol in $bin" >&2; exit 1; }
trace=$(mktemp)
trap 'rm -f "$trace"' EXIT
QEMU_CPU=$cpu qemu-aarch64-static -L /usr/aarch64-linux-gnu -singlestep -d exec,nochain \
  -D "$trace" "$bin" "$path" "$fmt" "$rows" "$cols" >/dev/null
# PIE: qemu-user loads the executable at 0x5500000000.
entry=$(printf '%016x' $((0x5500000000 + 0x$marker)))
awk -v entry="/$entry/" -v blocks=$((rows * cols / 32)) '
  index($0, entry) { hits++; next }
  hits == 1 && /^Trace/ { n++ }
  END {
    if (hits < 2) { print "error: the marker ran " hits + 0 " times" > "/dev/stderr"; exit 1 }
    printf "%d instructions, %.2f per block\n", n, n / blocks
  }' "$trace"
