#!/usr/bin/env bash
# Runs the latte-kernels tests for aarch64 Linux under qemu user mode, on a
# core without the dot-product extension (Cortex-A53: NEON path) and one with
# it (Cortex-A76: NEON + sdot path), then builds the crate for a Cortex-M4F
# without std (scalar path). Installs what it needs first (idempotent):
# the Rust targets, qemu-user-static and the aarch64 GNU linker (apt).
#
#     crates/latte-kernels/cross-test.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

step() { printf '\n== %s\n' "$*"; }

step "setup: Rust targets, qemu-user-static, aarch64 linker"
rustup target add aarch64-unknown-linux-gnu thumbv7em-none-eabihf >/dev/null
if ! command -v qemu-aarch64-static >/dev/null || ! command -v aarch64-linux-gnu-gcc >/dev/null \
  || [ ! -d /usr/aarch64-linux-gnu/lib ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y \
    qemu-user-static gcc-aarch64-linux-gnu libc6-dev-arm64-cross
fi

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -L /usr/aarch64-linux-gnu"

# LATTE_EXPECT_DOTPROD: 0 = the CPU must lack the dot-product extension,
# 1 = it must have it (the NEON path is always required on aarch64).
step "aarch64, QEMU_CPU=cortex-a53 (NEON, no dotprod)"
QEMU_CPU=cortex-a53 LATTE_EXPECT_DOTPROD=0 \
  cargo test --locked -p latte-kernels --features std --target aarch64-unknown-linux-gnu

step "aarch64, QEMU_CPU=cortex-a76 (NEON + dotprod)"
QEMU_CPU=cortex-a76 LATTE_EXPECT_DOTPROD=1 \
  cargo test --locked -p latte-kernels --features std --target aarch64-unknown-linux-gnu

step "aarch64 instruction counts run (tools/insn-count.sh, one small product per path)"
tools/insn-count.sh cortex-a53 neon q8_0 8 256
tools/insn-count.sh cortex-a76 neon-dotprod q4_0 8 256

step "thumbv8m.main-none-eabihf with Helium but no MVE floating point (+mve): the Helium kernels' Rust float part builds"
rustup target add thumbv8m.main-none-eabihf >/dev/null
RUSTFLAGS="-C target-feature=+mve,+dsp" cargo build --locked -p latte-kernels \
  --target thumbv8m.main-none-eabihf --target-dir target/thumbv8m-mve-int

step "thumbv7em-none-eabihf, no std (scalar kernels)"
cargo build --locked -p latte-kernels --target thumbv7em-none-eabihf

step "thumbv7em-none-eabihf, no std: the kernel test suite (feature suite) builds without alloc"
cargo build --locked -p latte-kernels --features suite --target thumbv7em-none-eabihf

step "cross tests passed"
