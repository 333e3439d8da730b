"""Golden outputs of the reference model for the runtime's tests.

    python3 -m latte_train.golden MODEL.safetensors -o golden.json

For each fixed prompt (bytes), writes the logits after every prompt byte and a
greedy continuation. Both come from the *recurrent* reference form evaluated in
float64, so they are independent of the runtime under test.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from .export import load_safetensors

PROMPTS = [
    "The ",
    "It was a dark and stormy night; ",
    "And God said, Let there be light",
    "\"Well,\" said Mr. Brown, ",
]


@torch.no_grad()
def golden(model, prompt: bytes, n_greedy: int) -> dict:
    model = model.double()
    st = model.new_state(1, torch.float64)
    rows = []
    logits = None
    for pos, b in enumerate(prompt):
        logits = model.step(torch.tensor([b]), pos, st)[0]
        rows.append([float(v) for v in logits])
    greedy = []
    pos = len(prompt)
    for _ in range(n_greedy):
        tok = int(torch.argmax(logits))
        greedy.append(tok)
        logits = model.step(torch.tensor([tok]), pos, st)[0]
        pos += 1
    return {"text": prompt.decode("utf-8"), "tokens": list(prompt), "logits": rows,
            "greedy": greedy}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--greedy", type=int, default=64, help="greedy tokens after each prompt")
    args = ap.parse_args()
    model, meta = load_safetensors(args.model)
    out = {"model": args.model.name, "config": json.loads(meta["latte.config"]),
           "form": "recurrent reference, float64",
           "prompts": [golden(model, p.encode("utf-8"), args.greedy) for p in PROMPTS]}
    args.out.write_text(json.dumps(out) + "\n")
    print(f"wrote {args.out}: {len(PROMPTS)} prompts")


if __name__ == "__main__":
    main()
