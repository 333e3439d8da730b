#!/usr/bin/env bash
# The paper's runtime figure on this machine: decode time per token and state
# memory against context length, for Latte, Latte-Macchiato and standard causal
# attention at the same width and depth (D=128, 6 blocks, 4 heads, MLP 512,
# bytes; Latte with 64 latents and the decay gate, Macchiato's window 128),
# Q8_0 weights, run by the same runtime and kernels (`latte bench`, one
# thread). The three models are random (speed does not depend on the weights)
# and made by the reference trainer's `shape_model`.
#
#     tools/runtime-figure.sh OUT_DIR
#
# Writes OUT_DIR/{latte,macchiato,attention}.csv (latte bench --csv),
# OUT_DIR/runtime.csv (the three side by side), OUT_DIR/runtime.svg (time and
# memory against context, log scales) and OUT_DIR/summary.txt (the crossover
# contexts). With M4=1 also the Cortex-M4 (QEMU mps2-an386, `-icount`):
# instructions per decode token at contexts 64 to 4,096 from the board's
# `context-cost` firmware, the weights in flash and the state in static RAM
# (4 MiB: full attention's KV cache fits 520 tokens), into OUT_DIR/m4.csv and
# OUT_DIR/m4-*.txt (X86=0: only that part). Optional: MAX_CTX (default 65536) and ATT_MAX_CTX (attention's
# longest context, default MAX_CTX: its curve costs time quadratic in it,
# about 70 minutes to 65536 on one Zen 3 core), SAMPLES (default 32),
# LATTE_BIN (a built latte), KERNELS (a kernel path), MODELS (the x86 curves to
# measure, default "latte macchiato attention"; the others are read from
# OUT_DIR's CSVs of an earlier run, to re-measure one curve).
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 OUT_DIR" >&2
  exit 2
fi
out=$1
cd "$(dirname "$0")/.."
mkdir -p "$out"
out=$(cd "$out" && pwd)
max=${MAX_CTX:-65536}
att_max=${ATT_MAX_CTX:-$max}
samples=${SAMPLES:-32}
if [ -n "${LATTE_BIN:-}" ]; then
  latte=$(cd "$(dirname "$LATTE_BIN")" && pwd)/$(basename "$LATTE_BIN")
else
  cargo build --release --locked -p latte-cli
  latte=$PWD/target/release/latte
fi
kern=()
[ -n "${KERNELS:-}" ] && kern=(--kernels "$KERNELS")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
shape="--d-model 128 --layers 6 --heads 4 --latents 64 --seq 256 --pos none --seed 5"
(
  cd tools/train
  python3 -m latte_train.shape_model $shape --gate decay --name latte -o "$tmp/latte.safetensors"
  python3 -m latte_train.shape_model $shape --gate decay --window 128 --name macchiato \
    -o "$tmp/macchiato.safetensors"
  python3 -m latte_train.shape_model $shape --window 0 --attention --name attention \
    -o "$tmp/attention.safetensors"
)
if [ "${M4:-0}" = 1 ]; then
  # Full attention on the board: a KV cache of 520 tokens (3.2 MB of RAM).
  (cd tools/train && python3 -m latte_train.shape_model $(echo "$shape" | sed 's/--seq 256/--seq 520/') \
    --window 0 --attention --name attention-520 -o "$tmp/attention-520.safetensors")
  "$latte" convert "$tmp/attention-520.safetensors" -o "$tmp/attention-520.gguf" --dtype q8_0
fi
for m in latte macchiato attention; do
  "$latte" convert "$tmp/$m.safetensors" -o "$tmp/$m.gguf" --dtype q8_0
done
models=" ${MODELS:-latte macchiato attention} "
for m in latte macchiato attention; do
  [ "${X86:-1}" = 1 ] || break
  case "$models" in *" $m "*) ;; *) continue ;; esac
  ctx=$max
  [ "$m" = attention ] && ctx=$att_max
  echo "== $m: latte bench to $ctx tokens"
  "$latte" bench -m "$tmp/$m.gguf" -t 1 "${kern[@]}" --max-ctx "$ctx" --samples "$samples" \
    --prefill 256 --decode 64 --csv "$out/$m.csv" | tee "$out/$m.txt"
done
if [ "${M4:-0}" = 1 ]; then
  for m in latte macchiato attention; do
    f=$tmp/$m.gguf
    [ "$m" = attention ] && f=$tmp/attention-520.gguf
    echo "== Cortex-M4 (QEMU mps2-an386): $m"
    (cd boards/mps2-an386 && LATTE_MODEL=$f cargo run --release --bin context-cost) | tee "$out/m4-$m.txt"
  done
  python3 - "$out" <<'EOF'
import re, sys
out = sys.argv[1]
rows = {}
for m in ("latte", "macchiato", "attention"):
    for line in open(f"{out}/m4-{m}.txt"):
        g = re.match(r"context: (\d+) (\d+) instructions per token, state in use (\d+) bytes", line)
        if g:
            rows.setdefault(int(g[1]), {})[m] = (g[2], g[3])
with open(f"{out}/m4.csv", "w") as f:
    f.write("context,latte_instructions,latte_state_bytes,macchiato_instructions,macchiato_state_bytes,"
            "attention_instructions,attention_state_bytes\n")
    for c in sorted(rows):
        cells = []
        for m in ("latte", "macchiato", "attention"):
            cells += list(rows[c].get(m, ("", "")))
        f.write(f"{c}," + ",".join(cells) + "\n")
EOF
fi
[ "${X86:-1}" = 1 ] || exit 0
python3 - "$out" <<'EOF'
import csv, math, sys
out = sys.argv[1]
names = ["latte", "macchiato", "attention"]
rows = {n: {int(r["context"]): r for r in csv.DictReader(open(f"{out}/{n}.csv"))} for n in names}
ctxs = sorted(set().union(*[set(r) for r in rows.values()]))
with open(f"{out}/runtime.csv", "w") as f:
    f.write("context," + ",".join(f"{n}_us,{n}_state_bytes" for n in names) + "\n")
    for c in ctxs:
        cells = []
        for n in names:
            r = rows[n].get(c)
            cells += [r["median_us"], r["state_bytes"]] if r else ["", ""]
        f.write(f"{c}," + ",".join(cells) + "\n")

def us(n, c):
    return float(rows[n][c]["median_us"])

def crossover(a, b):
    """The first measured context where b's median time exceeds a's."""
    for c in ctxs:
        if c in rows[a] and c in rows[b] and us(b, c) > us(a, c):
            return c
    return None

lines = []
for n in ("latte", "macchiato"):
    pts = sorted(rows[n])
    first, last = pts[0], pts[-1]
    lines.append(f"{n}: {us(n, first):.1f} us at {first}, {us(n, last):.1f} us at {last} "
                 f"({100 * (us(n, last) / us(n, first) - 1):+.1f}%); state "
                 f"{rows[n][first]['state_bytes']} bytes at {first}, {rows[n][last]['state_bytes']} at {last}")
pts = sorted(rows["attention"])
lines.append(f"attention: {us('attention', pts[0]):.1f} us at {pts[0]}, {us('attention', pts[-1]):.1f} us "
             f"at {pts[-1]}; state {rows['attention'][pts[0]]['state_bytes']} bytes at {pts[0]}, "
             f"{rows['attention'][pts[-1]]['state_bytes']} at {pts[-1]}")
for n in ("latte", "macchiato"):
    c = crossover(n, "attention")
    lines.append(f"crossover {n} vs attention: " + (f"attention is slower from {c} tokens on (first measured context where it is)"
                                                    if c else "not reached in the measured range"))
open(f"{out}/summary.txt", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))

# Two panels, log-log: time per token and state bytes against context.
W, H, M = 900, 380, 60
colors = {"latte": "#1f77b4", "macchiato": "#2ca02c", "attention": "#d62728"}
def panel(x0, key, label, fmt):
    vals = [float(rows[n][c][key]) for n in names for c in rows[n]]
    lo, hi = math.log10(min(vals)), math.log10(max(vals))
    lo, hi = math.floor(lo), math.ceil(hi)
    cx0, cx1 = math.log2(ctxs[0]), math.log2(ctxs[-1])
    pw, ph = W / 2 - M - 20, H - 2 * M
    X = lambda c: x0 + M + (math.log2(c) - cx0) / max(cx1 - cx0, 1e-9) * pw
    Y = lambda v: M + ph - (math.log10(v) - lo) / max(hi - lo, 1e-9) * ph
    s = [f'<rect x="{x0 + M}" y="{M}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    for e in range(lo, hi + 1):
        s.append(f'<text x="{x0 + M - 6}" y="{Y(10 ** e) + 4}" text-anchor="end" font-size="11">{fmt(10 ** e)}</text>')
        s.append(f'<line x1="{x0 + M}" x2="{x0 + M + pw}" y1="{Y(10 ** e)}" y2="{Y(10 ** e)}" stroke="#eee"/>')
    for c in ctxs:
        t = f"{c // 1024}K" if c >= 1024 else str(c)
        s.append(f'<text x="{X(c)}" y="{M + ph + 16}" text-anchor="middle" font-size="11">{t}</text>')
    for n in names:
        pts = " ".join(f"{X(c):.1f},{Y(float(rows[n][c][key])):.1f}" for c in sorted(rows[n]))
        s.append(f'<polyline points="{pts}" fill="none" stroke="{colors[n]}" stroke-width="2"/>')
    s.append(f'<text x="{x0 + M + pw / 2}" y="{M - 12}" text-anchor="middle" font-size="13">{label}</text>')
    s.append(f'<text x="{x0 + M + pw / 2}" y="{H - 14}" text-anchor="middle" font-size="11">context (tokens already in the state)</text>')
    return s
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif">',
       '<rect width="100%" height="100%" fill="white"/>']
svg += panel(0, "median_us", "decode time per token (us, median)", lambda v: f"{v:g}")
svg += panel(W / 2, "state_bytes", "state in use (bytes)",
             lambda v: f"{v / 1e6:g} MB" if v >= 1e6 else (f"{v / 1e3:g} kB" if v >= 1e3 else f"{v:g}"))
for i, n in enumerate(names):
    svg.append(f'<text x="{M + 10 + 130 * i}" y="20" font-size="13" fill="{colors[n]}">&#9632; {n}</text>')
svg.append("</svg>")
open(f"{out}/runtime.svg", "w").write("\n".join(svg) + "\n")
EOF
echo "wrote $out/runtime.csv, runtime.svg, summary.txt"
