"""How far the Q8_0 reference moves from itself under float rounding noise.

    python3 -m latte_train.q8_noise MODEL_DIR [MODEL_DIR ...] [--seeds 5]

For each committed prompt of each model folder (its NAME.safetensors and
golden.json), recomputes the reference of the Q8_0 file (`quantized.py`) with
every quantized matrix input perturbed by a relative 1e-6 (Gaussian, one
generator per seed) and prints the RMS logit distance from golden.json's `q8_0`
logits, next to the float reference's distance from them. Such a perturbation
flips inputs that sit within rounding of a quantization step, as f32 sums in the
runtime do; `crates/latte-core/tests/committed_model.rs` bounds the runtime's
distance by what this prints.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from . import quantized
from .export import load_safetensors
from .golden import golden


def _rms(a, b) -> float:
    return float(np.sqrt(((np.asarray(a) - np.asarray(b)) ** 2).mean()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", type=Path, nargs="+", help="model folders, e.g. models/latte-micro-decay")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--rel", type=float, default=1e-6, help="relative size of the perturbation")
    args = ap.parse_args()
    exact = quantized.quantize_q8_0
    for folder in args.models:
        name = folder.resolve().name
        gold = json.loads((folder / "golden.json").read_text())
        model, _ = load_safetensors(folder / f"{name}.safetensors")
        model = model.double()
        for p in gold["prompts"]:
            ref = p["q8_0"]["logits"]
            moved = []
            for seed in range(args.seeds):
                gen = torch.Generator().manual_seed(seed)

                def perturbed(x, gen=gen):
                    noise = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(x.dtype)
                    return exact(x * (1 + args.rel * noise))

                # The weights are quantized exactly on entering the context; only
                # the inputs quantized on the fly see the perturbation.
                with quantized.q8_0(model):
                    quantized.quantize_q8_0 = perturbed
                    try:
                        out = golden(model, p["text"].encode("utf-8"), 0)
                    finally:
                        quantized.quantize_q8_0 = exact
                moved.append(_rms(out["logits"], ref))
            print(f"{name} {p['text']!r}: perturbed reference RMS "
                  + " ".join(f"{m:.4f}" for m in moved)
                  + f"; float reference {_rms(p['logits'], ref):.4f}", flush=True)


if __name__ == "__main__":
    main()
