"""Weights of the official-code fixtures, from the formulas in latte-spec.md §6.2.

Matrices are built in the Flax layout (in, out) exactly as the formulas say and
transposed into ``nn.Linear``'s (out, in) when loaded into the reference model.
"""
import json
import math
from pathlib import Path

import torch

from latte_train.model import LatteConfig, LatteLM, LatteMix

FIXTURE = (Path(__file__).resolve().parents[3] / "crates" / "latte-core" / "tests" / "fixtures"
           / "latte_official_fixture.json")


def load_fixture() -> dict:
    return json.loads(FIXTURE.read_text())


def mat(rows, cols, f):
    return torch.tensor([[f(i, j) for j in range(cols)] for i in range(rows)], dtype=torch.float64)


def latte_weights(D, L, shift=0.0):
    """Flax-layout (in, out) Wq, Wk, Wv, Wo of the layer fixture, with ``shift``
    added inside every sin/cos after the constant (the LM fixture's 0.5*li)."""
    wq = mat(D, L, lambda i, j: 0.5 * math.sin(1.0 + shift + 0.37 * i + 0.11 * j))
    wk = mat(D, L, lambda i, j: 0.5 * math.cos(2.0 + shift + 0.23 * i - 0.19 * j))
    wv = mat(D, D, lambda i, j: 0.5 * math.sin(3.0 + shift - 0.29 * i + 0.17 * j))
    wo = mat(D, D, lambda i, j: 0.5 * math.cos(4.0 + shift + 0.31 * i + 0.13 * j))
    return wq, wk, wv, wo


def load_latte(mix: LatteMix, D, L, shift=0.0):
    wq, wk, wv, wo = latte_weights(D, L, shift)
    with torch.no_grad():
        mix.wq.weight.copy_(wq.T)
        mix.wk.weight.copy_(wk.T)
        mix.wv.weight.copy_(wv.T)
        mix.wo.weight.copy_(wo.T)


def layer_inputs(T, D):
    return mat(T, D, lambda t, d: math.cos(0.3 * t + 0.7 * d) * (1 + 0.5 * t))


def fixture_lm() -> LatteLM:
    fx = load_fixture()["lm"]
    V, D, H, L, N = fx["V"], fx["D"], fx["H"], fx["L"], fx["layers"]
    cfg = LatteConfig(vocab_size=V, d_model=D, n_layers=N, n_heads=H, n_latents=L, max_seq_len=64)
    model = LatteLM(cfg).double()
    vec = lambda n, f: torch.tensor([f(i) for i in range(n)], dtype=torch.float64)
    with torch.no_grad():
        model.tok_emb.weight.copy_(mat(V, D, lambda v, d: math.sin(0.5 + 0.41 * v + 0.23 * d)))
        for li, blk in enumerate(model.blocks):
            blk.ln1.weight.copy_(vec(D, lambda d: 1 + 0.1 * math.sin(d + li)))
            blk.ln1.bias.copy_(vec(D, lambda d: 0.05 * math.cos(d + li)))
            blk.ln2.weight.copy_(vec(D, lambda d: 1 + 0.1 * math.cos(d + li)))
            blk.ln2.bias.copy_(vec(D, lambda d: 0.05 * math.sin(d - li)))
            load_latte(blk.latte, D, L, 0.5 * li)
            F = 4 * D
            blk.mlp.fc1.weight.copy_(mat(D, F, lambda i, j: 0.3 * math.sin(0.7 + li + 0.13 * i + 0.07 * j)).T)
            blk.mlp.fc1.bias.copy_(vec(F, lambda j: 0.02 * math.cos(j)))
            blk.mlp.fc2.weight.copy_(mat(F, D, lambda i, j: 0.3 * math.cos(1.1 + li + 0.05 * i - 0.17 * j)).T)
            blk.mlp.fc2.bias.copy_(vec(D, lambda j: 0.02 * math.sin(j)))
        model.ln_f.weight.copy_(vec(D, lambda d: 1 + 0.05 * math.sin(3 * d)))
        model.ln_f.bias.copy_(vec(D, lambda d: 0.01 * d))
        model.head.weight.copy_(mat(D, V, lambda i, j: 0.4 * math.sin(0.9 + 0.21 * i + 0.33 * j)).T)
        model.head.bias.copy_(vec(V, lambda j: 0.01 * j))
    return model
