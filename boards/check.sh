#!/usr/bin/env bash
# Builds and runs every board this machine can, as CI does:
#
# * QEMU boards (mps2-an386, mps2-an500, mps3-an547): the firmware generates
#   text from the model in flash; its `greedy:` and `sampled:` lines must equal
#   the board's expected.txt (the greedy line is the PyTorch reference's
#   continuation from models/latte-micro/golden.json; the sampled line is what
#   `latte run` prints on a host). Then the on-device kernel tests, and the
#   flash and RAM budget (budget.py, with the measured stack).
# * Real boards (nucleo-h743zi, nrf52840-dk, pico2-rp2350): build, and the
#   flash and RAM budget with the reserved stack.
# * sbc-aarch64 under qemu-user, on a Cortex-A53 (NEON) and a Cortex-A76
#   (NEON + sdot): same expected output.
#
# Installs what it needs first (idempotent): Rust targets, qemu-system-arm,
# qemu-user-static, the aarch64 linker, defmt-print.
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n== %s\n' "$*"; }

step "setup: Rust targets, QEMU, aarch64 linker, defmt-print"
rustup target add thumbv7em-none-eabihf thumbv8m.main-none-eabihf aarch64-unknown-linux-gnu >/dev/null
need=()
command -v qemu-system-arm >/dev/null || need+=(qemu-system-arm)
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
[ -d /usr/aarch64-linux-gnu/lib ] || need+=(libc6-dev-arm64-cross)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "${need[@]}"
fi
command -v defmt-print >/dev/null || cargo install defmt-print --locked --version 1.2.0

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

compare() { # board log
  grep -E '^(greedy|sampled): ' "$2" > "$logs/$1.got" || true
  if ! diff -u "$1/expected.txt" "$logs/$1.got"; then
    echo "$1: the output differs from $1/expected.txt (full log above)" >&2
    exit 1
  fi
  echo "$1: output matches expected.txt"
}

for b in mps2-an386 mps2-an500 mps3-an547; do
  step "$b under QEMU"
  case $b in mps3-*) t=thumbv8m.main-none-eabihf ;; *) t=thumbv7em-none-eabihf ;; esac
  (cd "$b" && cargo run --release --locked) 2>&1 | tee "$logs/$b.log"
  compare "$b" "$logs/$b.log"
  (cd "$b" && cargo run --release --locked --bin kernel-tests)
  python3 budget.py "$b" "target/$t/release/$b" "$logs/$b.log"
done

for b in nucleo-h743zi nrf52840-dk pico2-rp2350; do
  step "$b: build (real board, flashed with probe-rs)"
  case $b in pico2-*) t=thumbv8m.main-none-eabihf ;; *) t=thumbv7em-none-eabihf ;; esac
  (cd "$b" && cargo build --release --locked)
  python3 budget.py "$b" "target/$t/release/$b"
done

for cpu in cortex-a53 cortex-a76; do
  step "sbc-aarch64 under qemu-user, QEMU_CPU=$cpu"
  (cd sbc-aarch64 && QEMU_CPU=$cpu cargo run --release --locked) 2>&1 | tee "$logs/sbc-$cpu.log"
  case $cpu in
    cortex-a53) grep -q "kernels neon$" "$logs/sbc-$cpu.log" ;;
    cortex-a76) grep -q "kernels neon-dotprod$" "$logs/sbc-$cpu.log" ;;
  esac || { echo "sbc-aarch64: unexpected kernel path on $cpu" >&2; exit 1; }
  compare sbc-aarch64 "$logs/sbc-$cpu.log"
done

step "boards passed"
