#!/usr/bin/env bash
# Builds and runs every board this machine can, as CI does:
#
# * QEMU boards (mps2-an386, mps2-an500, mps3-an547): the firmware generates
#   text from the model in flash; its `greedy:` and `sampled:` lines must equal
#   expected/<model file>.txt (the greedy line is the PyTorch reference's
#   continuation from the model's golden.json; the sampled line is what
#   `latte run` prints on a host; bless.sh writes both). The classifier board
#   (mps2-an386-spam) labels the messages in its flash: its `class:` lines must
#   equal the labels `latte classify` gives on a host. Then the on-device kernel tests, and the
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

# Boards are found, not listed: every folder with a .cargo/config.toml is a
# board, and its runner says which kind it is (../qemu-run: a QEMU board that
# runs here; probe-rs: a real board, built and budgeted here; qemu-aarch64: the
# Linux SBC under qemu-user). Its target is the config's `target`, its model
# the GGUF its build.rs (or main.rs) names, and its expected output
# expected/<model file>.txt (written by bless.sh).
boards_of() { # kind
  local cfg
  for cfg in */.cargo/config.toml; do
    case "$(grep -E '^runner' "$cfg")" in
      *../qemu-run*) k=qemu ;;
      *probe-rs*) k=device ;;
      *qemu-aarch64*) k=sbc ;;
      *) echo "$cfg: unknown runner" >&2; exit 1 ;;
    esac
    if [ "$k" = "$1" ]; then echo "${cfg%%/*}"; fi
  done
}
target_of() { sed -nE 's/^target = "([^"]+)"/\1/p' "$1/.cargo/config.toml"; }
expected_of() {
  local m
  m=$(grep -ohE 'models/[^"]+\.gguf' "$1"/build.rs "$1"/src/main.rs 2>/dev/null | head -1)
  [ -n "$m" ] || { echo "$1: no model path in build.rs or src/main.rs" >&2; exit 1; }
  echo "expected/$(basename "${m%.gguf}").txt"
}

boards_of check >/dev/null # every runner is of a known kind (fails here otherwise)

step "latte-board-build: memory maps and model sizes (host tests)"
cargo test --locked -p latte-board-build

compare() { # board log
  local want
  want=$(expected_of "$1")
  grep -E '^(greedy|sampled|class): ' "$2" > "$logs/$1.got" || true
  if ! diff -u "$want" "$logs/$1.got"; then
    echo "$1: the output differs from boards/$want (full log above)" >&2
    exit 1
  fi
  echo "$1: output matches $want"
}

for b in $(boards_of qemu); do
  step "$b under QEMU"
  t=$(target_of "$b")
  (cd "$b" && cargo run --release --locked) 2>&1 | tee "$logs/$b.log"
  compare "$b" "$logs/$b.log"
  (cd "$b" && cargo run --release --locked --bin kernel-tests)
  python3 budget.py "$b" "target/$t/release/$b" "$logs/$b.log"
done

for b in $(boards_of device); do
  step "$b: build (real board, flashed with probe-rs)"
  t=$(target_of "$b")
  (cd "$b" && cargo build --release --locked)
  python3 budget.py "$b" "target/$t/release/$b"
done

for b in $(boards_of sbc); do
  for cpu in cortex-a53 cortex-a76; do
    step "$b under qemu-user, QEMU_CPU=$cpu"
    (cd "$b" && QEMU_CPU=$cpu cargo run --release --locked) 2>&1 | tee "$logs/$b-$cpu.log"
    case $cpu in
      cortex-a53) grep -q "kernels neon$" "$logs/$b-$cpu.log" ;;
      cortex-a76) grep -q "kernels neon-dotprod$" "$logs/$b-$cpu.log" ;;
    esac || { echo "$b: unexpected kernel path on $cpu" >&2; exit 1; }
    compare "$b" "$logs/$b-$cpu.log"
  done
done

step "boards passed"
