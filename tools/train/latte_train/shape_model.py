"""A randomly initialised model of a given shape, for checking and benchmarking
the runtime at sizes that no trained model has yet (speed does not depend on the
weights; the golden outputs of ``latte_train.golden`` work on it as on any model).

    python3 -m latte_train.shape_model --d-model 384 --layers 8 --heads 6 --latents 192 \\
        --seq 512 -o /tmp/latte-small-shape.safetensors

Weights as the trainer initialises them (seeded), then every norm and bias moved
off its initial value so that each parameter changes the output.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from .export import save_safetensors
from .model import LatteConfig, LatteLM


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--name", default="latte-shape")
    ap.add_argument("--d-model", type=int, default=384)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--latents", type=int, default=192)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--pos", choices=["sinusoidal", "vapor", "none"], default="sinusoidal")
    ap.add_argument("--gate", choices=["none", "decay"], default="none")
    ap.add_argument("--window", type=int, default=0, help="Latte-Macchiato's window (0: plain Latte)")
    ap.add_argument("--combine", choices=["sum", "joint"], default="sum")
    ap.add_argument("--attention", action="store_true",
                    help="causal softmax attention alone over --window tokens (0: all), no Latte")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    try:
        cfg = LatteConfig(d_model=args.d_model, n_layers=args.layers, n_heads=args.heads,
                          n_latents=args.latents, max_seq_len=args.seq, pos_encoding=args.pos,
                          latent_decay=args.gate == "decay", window=args.window,
                          combine=args.combine, mixer="attention" if args.attention else "latte")
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    torch.manual_seed(args.seed)
    model = LatteLM(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("decay_logit"):
                p.normal_(0.0, 2.0)  # rates spread over (0, decay_max)
            elif p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    save_safetensors(model, args.out, name=args.name)
    print(f"wrote {args.out}: {model.num_params():,} parameters, random weights (seed {args.seed})")


if __name__ == "__main__":
    main()
