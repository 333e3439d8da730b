#!/usr/bin/env bash
# Sets up what the checks need on a fresh machine, then runs every check:
# formatting and clippy, the Rust workspace's tests, the no_std builds for a
# Cortex-M target, the C API's example under the sanitizers, the kernels under
# qemu-user, the boards (boards/check.sh),
# and the reference trainer's tests.
# Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "setup: Rust target for the no_std build, clippy and rustfmt, Python packages for the trainer"
rustup target add thumbv7em-none-eabihf >/dev/null
rustup component add clippy rustfmt >/dev/null
if ! python3 -c "import torch, numpy, safetensors, pytest, gguf" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check -r tools/train/requirements.txt
fi

step "rust: formatting (cargo fmt --check) and clippy, warnings as errors"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "rust: workspace tests"
cargo test --workspace --locked

step "python: the gguf package reads what latte writes, and latte reads what it writes"
cargo build --locked -p latte-cli
python3 tools/latte-cli/tests/gguf_compat.py target/debug/latte

step "rust: no_std builds for thumbv7em-none-eabihf (core alone, no std feature)"
cargo build --locked --release -p latte-gguf --target thumbv7em-none-eabihf
cargo build --locked --release -p latte-core --target thumbv7em-none-eabihf
cargo build --locked --release -p latte-ffi --no-default-features --target thumbv7em-none-eabihf

step "C API: the C example (cc -Wall -Werror, ASan/UBSan) prints what latte run prints"
crates/latte-ffi/examples/c/check.sh

step "C API: C firmware (gcc-arm-none-eabi) with the no_std library and the model in flash, on QEMU's Cortex-M4"
crates/latte-ffi/examples/firmware/check.sh

step "aarch64 under qemu-user (Cortex-A53 and Cortex-A76) and Cortex-M builds of the kernels"
crates/latte-kernels/cross-test.sh

step "boards: QEMU Cortex-M boards (output, on-device kernel tests, budgets), real-board builds, aarch64 SBC under qemu-user"
boards/check.sh

step "python: the latte package (pip install tools/python, PyO3 + maturin) against the command line"
cargo build --locked --release -p latte-cli
python3 -m pip install --quiet --disable-pip-version-check tools/python
python3 -m pytest -q tools/python/tests

step "python: reference trainer tests"
(cd tools/train && python3 -m pytest -q tests)

step "all checks passed"
