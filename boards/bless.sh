#!/usr/bin/env bash
# Regenerates the boards' expected output from the host reference and shows the diff.
#
#   boards/bless.sh
#
# For each board that runs here (QEMU boards and the SBC under qemu-user), the
# model is the GGUF its build.rs names (sbc-aarch64: the one its main.rs
# includes); expected/<model file>.txt holds that model's lines. The `greedy:`
# line is the PyTorch reference's greedy continuation of the greedy prompt, from
# the golden.json next to that model (float64 recurrence, never this runtime; for
# a Q8_0 file, the reference with Q8_0 weights and inputs, its `q8_0` entry; for
# an f16 file, the reference with f16 weights, its `f16` entry, where it has one);
# the `sampled:` line is what `latte run` prints on this host with the board's
# sampler settings (seed 42, latte run's defaults). A classifier board's file holds
# one `class:` line per message in its build.rs's messages folder: the label
# `latte classify` gives on this host. The prompts and lengths are read from
# latte-board/src/lib.rs. Review the diff before committing: a changed greedy line
# means the reference changed; a changed sampled line alone means the runtime's
# bits changed.
set -euo pipefail
latte=${LATTE_BIN:+$(cd "$(dirname "$LATTE_BIN")" && pwd)/$(basename "$LATTE_BIN")}
cd "$(dirname "$0")"
root=$(cd .. && pwd)
if [ -z "$latte" ]; then
  (cd "$root" && cargo build --release --locked -p latte-cli)
  latte=$root/target/release/latte
fi
python3 - "$latte" <<'EOF'
import json, pathlib, re, subprocess, sys

latte = sys.argv[1]
lib = pathlib.Path("latte-board/src/lib.rs").read_text()
def const(name):
    m = re.search(rf'pub const {name}: &\[u8\] = b"((?:[^"\\]|\\.)*)";', lib)
    if not m:
        sys.exit(f"error: {name} not found in latte-board/src/lib.rs")
    return m.group(1).encode().decode("unicode_escape").encode("latin-1")
greedy_prompt, sampled_prompt = const("GREEDY_PROMPT"), const("SAMPLED_PROMPT")
n = int(re.search(r"pub const N_GENERATE: usize = (\d+);", lib).group(1))

def defmt_bytes(b: bytes) -> str:
    """defmt's `{=[u8]:a}`: a Rust byte-string literal."""
    out = []
    for c in b:
        ch = chr(c)
        if ch == "\\": out.append("\\\\")
        elif ch == '"': out.append('\\"')
        elif ch == "\n": out.append("\\n")
        elif ch == "\t": out.append("\\t")
        elif ch == "\r": out.append("\\r")
        elif 0x20 <= c < 0x7f: out.append(ch)
        else: out.append(f"\\x{c:02x}")
    return 'b"' + "".join(out) + '"'

# Every board (a folder with .cargo/config.toml) names its model in build.rs (or,
# the SBC, in src/main.rs); boards that run the same model share one file,
# expected/<model file>.txt, which check.sh compares their output with.
models = {}
classifiers = {}  # classifier boards: the messages folder they label
for cfg in sorted(pathlib.Path(".").glob("*/.cargo/config.toml")):
    board = cfg.parent.parent
    if "../qemu-run" not in cfg.read_text() and "qemu-aarch64" not in cfg.read_text():
        continue  # real boards are built, not run, here
    text = "".join(p.read_text() for p in (board / "build.rs", board / "src/main.rs") if p.is_file())
    m = re.search(r'models/([^"/]+)/([^"/]+\.gguf)', text)
    if not m:
        sys.exit(f"error: no model path in {board}/build.rs or {board}/src/main.rs")
    msgs = re.search(r'messages: "([^"]+)"', text) if "configure_classifier" in text else None
    models.setdefault((m.group(1), m.group(2)), []).append(board.name)
    if msgs:
        classifiers[(m.group(1), m.group(2))] = board / msgs.group(1)
pathlib.Path("expected").mkdir(exist_ok=True)
for (model, file), boards in sorted(models.items()):
    model_dir = pathlib.Path("..") / "models" / model
    gguf = model_dir / file
    exp = pathlib.Path("expected") / (file[:-len(".gguf")] + ".txt")
    if (model, file) in classifiers:
        # A classifier board: one `class:` line per message, the label that
        # `latte classify` gives on this host (the model's training length).
        lines = []
        for msg in sorted(p for p in classifiers[(model, file)].iterdir() if p.is_file()):
            out = subprocess.run([latte, "classify", "-m", str(gguf), "-f", str(msg)],
                                 capture_output=True, check=True)
            lines.append(f"class: {msg.name} {json.loads(out.stdout)['label']}\n")
        exp.write_text("".join(lines))
        print(f"{exp}: {gguf.name}, for {', '.join(boards)}")
        continue
    gold = json.loads((model_dir / "golden.json").read_text())
    prompts = [p for p in gold["prompts"] if bytes(p["tokens"]) == greedy_prompt]
    if file.endswith("-q4_0.gguf"):
        sys.exit(f"error: {gguf}: golden.json has no Q4_0 reference; run a board with the f32, f16 or q8_0 file")
    # A Q8_0 file prints the reference computing as that file does (golden.py's q8_0 entry).
    ref = (prompts or [{}])[0]
    if file.endswith("-q8_0.gguf"):
        ref = ref.get("q8_0", {})
    # Likewise an f16 file: the reference with f16 weights (the f16 entry), where
    # golden.json has one (files made before it existed have the float64 one only).
    elif file.endswith("-f16.gguf") and "f16" in ref:
        ref = ref["f16"]
    if len(ref.get("greedy", [])) < n:
        sys.exit(f"error: {model_dir}/golden.json has no {n}-token greedy continuation of {greedy_prompt!r}"
                 " for this file type (rerun tools/train/make-model.sh or latte_train.golden)")
    greedy = bytes(ref["greedy"][:n])
    run = subprocess.run([latte, "run", "-m", str(gguf), "-p", sampled_prompt.decode(), "-n", str(n),
                          "--seed", "42"], capture_output=True, check=True)
    if not run.stdout.startswith(sampled_prompt):
        sys.exit(f"error: latte run did not echo the prompt: {run.stdout[:80]!r}")
    sampled = run.stdout[len(sampled_prompt):]
    exp.write_text(f"greedy: {defmt_bytes(greedy)}\nsampled: {defmt_bytes(sampled)}\n")
    print(f"{exp}: {gguf.name}, for {', '.join(boards)}")
EOF
git --no-pager diff --stat -- expected
git --no-pager diff -- expected
