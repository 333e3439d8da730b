"""Golden outputs of the reference model for the runtime's tests.

    python3 -m latte_train.golden MODEL.safetensors -o golden.json

For each fixed prompt (bytes), writes the logits after every prompt byte and a
greedy continuation. Both come from the *recurrent* reference form evaluated in
float64, so they are independent of the runtime under test. `greedy_margins`
holds, for each greedy byte, how far the chosen logit is above the runner-up.

Each prompt's `q8_0` entry holds the same for the model's Q8_0 file: the
reference computing with Q8_0 weights and Q8_0-quantized matrix inputs, as
`crates/latte-gguf/FORMAT.md` defines them (`quantized.py`), still in float64.
A quantized file is checked against this, not against the float model: where
the float model's greedy text has a near tie, quantization may take the other
branch, and this says which one it takes. The `f16` entry does the same for the
f16 file: the reference with its matrices rounded to f16 (`quantized.f16`).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from .export import load_safetensors
from .quantized import f16, has_q8_0_file, q8_0

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
    greedy, margins = [], []
    pos = len(prompt)
    for _ in range(n_greedy):
        top = torch.topk(logits, 2).values
        tok = int(torch.argmax(logits))
        greedy.append(tok)
        margins.append(round(float(top[0] - top[1]), 6))
        logits = model.step(torch.tensor([tok]), pos, st)[0]
        pos += 1
    return {"text": prompt.decode("utf-8"), "tokens": list(prompt), "logits": rows,
            "greedy": greedy, "greedy_margins": margins}


def golden_in(form, model, prompt: bytes, n_greedy: int) -> dict:
    """The reference for ``prompt`` computing as a stored file does (``form``: a
    context from quantized.py). Such a file agrees with it to float rounding only
    (the runtime's Q8_0 logits to ~0.03, quantized.py), so 6 decimals keep every
    digit that matters."""
    with form(model):
        g = golden(model, prompt, n_greedy)
    g["logits"] = [[round(v, 6) for v in row] for row in g["logits"]]
    return {k: g[k] for k in ("logits", "greedy", "greedy_margins")}


def golden_prompt(model, prompt: bytes, n_greedy: int) -> dict:
    """The float64 reference for ``prompt``, with its f16 file's under ``f16`` and
    its Q8_0 file's under ``q8_0`` (where the model can have one)."""
    out = golden(model, prompt, n_greedy)
    out["f16"] = golden_in(f16, model, prompt, n_greedy)
    if has_q8_0_file(model):
        out["q8_0"] = golden_in(q8_0, model, prompt, n_greedy)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--greedy", type=int, default=64, help="greedy tokens after each prompt")
    args = ap.parse_args()
    model, meta = load_safetensors(args.model)
    out = {"model": args.model.name, "config": json.loads(meta["latte.config"]),
           "form": "recurrent reference, float64",
           "prompts": [golden_prompt(model, p.encode("utf-8"), args.greedy) for p in PROMPTS]}
    args.out.write_text(json.dumps(out) + "\n")
    print(f"wrote {args.out}: {len(PROMPTS)} prompts")
    for p in out["prompts"]:
        for form, g in (("f64", p), ("f16", p.get("f16")), ("q8_0", p.get("q8_0"))):
            if g is None or not g["greedy_margins"]:
                continue
            i = min(range(len(g["greedy_margins"])), key=g["greedy_margins"].__getitem__)
            print(f"  {p['text']!r} {form}: smallest greedy margin {g['greedy_margins'][i]:.4f} "
                  f"at byte {i}")


if __name__ == "__main__":
    main()
