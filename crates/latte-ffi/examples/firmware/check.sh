#!/usr/bin/env bash
# Builds the C firmware (Debian's gcc-arm-none-eabi) against the no_std
# static library and the default model in flash, runs it on QEMU's
# mps2-an386 (Cortex-M4F) and checks its two lines against the boards'
# expected output for that model (the PyTorch reference's greedy text and
# `latte run`'s sampled text).
#
#   crates/latte-ffi/examples/firmware/check.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../.." && pwd)
cd "$root"
model=models/latte-micro-decay/latte-micro-decay-q8_0.gguf
expected=boards/expected/latte-micro-decay-q8_0.txt
need=()
command -v arm-none-eabi-gcc >/dev/null || need+=(gcc-arm-none-eabi)
command -v qemu-system-arm >/dev/null || need+=(qemu-system-arm)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "${need[@]}"
fi
rustup target add thumbv7em-none-eabihf >/dev/null
cargo build --locked --release -p latte-ffi --no-default-features --target thumbv7em-none-eabihf
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
[ -n "${KEEP:-}" ] && trap - EXIT && echo "keeping $out"
cflags=(-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -O2 -Wall -Wextra -Werror
        -ffreestanding -ffunction-sections -fdata-sections)
arm-none-eabi-gcc "${cflags[@]}" -I crates/latte-ffi/include -c "$here/main.c" -o "$out/main.o"
arm-none-eabi-gcc "${cflags[@]}" -c "$here/startup.c" -o "$out/startup.o"
arm-none-eabi-gcc "${cflags[@]}" -DMODEL_PATH="\"$root/$model\"" -c "$here/model.S" -o "$out/model.o"
arm-none-eabi-gcc "${cflags[@]}" -nostdlib -nostartfiles -T "$here/link.ld" -Wl,--gc-sections -Wl,--no-warn-execstack \
  "$out/main.o" "$out/startup.o" "$out/model.o" \
  target/thumbv7em-none-eabihf/release/liblatte_ffi.a -lgcc -o "$out/firmware.elf"
arm-none-eabi-size "$out/firmware.elf"
timeout 900 qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic -monitor none \
  -semihosting-config enable=on,target=native -kernel "$out/firmware.elf" | tee "$out/log.txt"
grep -E '^(greedy|sampled): ' "$out/log.txt" > "$out/got.txt" || true
if ! diff -u "$expected" "$out/got.txt"; then
  echo "the C firmware's output differs from $expected" >&2
  exit 1
fi
echo "C firmware: output matches $expected"
