"""Compare the runtime's logits with golden outputs of the reference recurrence.

    python3 -m latte_train.check_logits path/to/latte MODEL.gguf golden.json --tol 1e-4

Runs ``latte logits`` on every golden prompt and prints, per prompt, the largest
absolute difference from the float64 reference; exits with status 1 when one
exceeds ``--tol``. A model file converted from the checkpoint the golden file
was made from (f32) should agree to about 1e-5.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("latte", type=Path, help="the latte binary")
    ap.add_argument("model", type=Path)
    ap.add_argument("golden", type=Path)
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()
    for path in (args.latte, args.model, args.golden):
        if not path.is_file():
            print(f"error: {path} does not exist", file=sys.stderr)
            return 2
    try:
        gold = json.loads(args.golden.read_text())
        prompts = gold["prompts"]
    except (ValueError, KeyError, TypeError) as e:
        print(f"error: {args.golden} is not a golden file of latte_train.golden: {e}", file=sys.stderr)
        return 2
    worst_all = 0.0
    for p in prompts:
        toks = ",".join(str(t) for t in p["tokens"])
        res = subprocess.run([str(args.latte), "logits", "-m", str(args.model), "--tokens", toks],
                             capture_output=True, text=True)
        if res.returncode != 0:
            print(f"error: latte logits failed: {res.stderr.strip()}", file=sys.stderr)
            return 2
        got = json.loads(res.stdout)["logits"]
        if len(got) != len(p["logits"]):
            print(f"error: {len(got)} rows of logits, the golden file has {len(p['logits'])}",
                  file=sys.stderr)
            return 1
        worst = max(abs(a - b) for ra, rb in zip(got, p["logits"]) for a, b in zip(ra, rb))
        worst_all = max(worst_all, worst)
        print(f"{p['text'][:32]!r}: max |logit error| {worst:.2e}")
    ok = worst_all <= args.tol
    print(f"{'ok' if ok else 'FAILED'}: worst {worst_all:.2e}, tolerance {args.tol:.0e}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
