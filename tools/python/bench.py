"""Generation speed of the Python package against `latte run`, side by side.

    python3 tools/python/bench.py [MODEL] [N]

Alternates the two 3 times on the same model, prompt and seed (1 thread each:
the Python session runs its products on the calling thread) and prints the
median tokens/s of each and their ratio. `latte run` reports its own
generation rate (prompt excluded); the Python figure times `generate` after
the prompt was fed.
"""
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import latte

ROOT = Path(__file__).resolve().parents[2]
model_path = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "models/latte-micro-decay/latte-micro-decay-q8_0.gguf"
n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
cli = ROOT / "target/release/latte"
prompt = b"It was a dark and stormy night"
model = latte.Model(model_path)
py_rates, cli_rates = [], []
for _ in range(3):
    s = model.session()
    s.feed(prompt)
    gen = s.generate(b"", n, seed=42)
    t0 = time.perf_counter()
    out = b"".join(gen)
    py_rates.append(len(out) / (time.perf_counter() - t0))
    r = subprocess.run([str(cli), "run", "-m", str(model_path), "-p", prompt.decode(), "-n", str(n),
                        "--seed", "42", "-t", "1"], capture_output=True, text=True, check=True)
    m = re.search(r"generated: \d+ tokens in [\d.]+ s \(([\d.]+) tokens/s\)", r.stderr)
    cli_rates.append(float(m.group(1)))
py, rs = statistics.median(py_rates), statistics.median(cli_rates)
print(f"model {model_path.name}, {n} tokens, kernels {model.kernels}")
print(f"python generate: {py:.1f} tokens/s (runs {', '.join(f'{x:.0f}' for x in py_rates)})")
print(f"latte run -t 1:  {rs:.1f} tokens/s (runs {', '.join(f'{x:.0f}' for x in cli_rates)})")
print(f"ratio python / latte run: {py / rs:.3f}")
