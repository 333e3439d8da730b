"""The reference of a Q8_0 model file: what `latte convert --dtype q8_0` stores and
the runtime computes with it, defined from `crates/latte-gguf/FORMAT.md` alone.

    with q8_0(model):
        logits = model.step(...)   # float64 model, Q8_0 weights and activations

A Q8_0 file holds every matrix in blocks of 32 values along the row (`d` an f16
scale, `qs` int8), quantized from the f32 weights; norms, biases and decay rates
stay f32. The runtime multiplies a Q8_0 matrix with its input quantized to Q8_0
blocks on the fly (ggml's `vec_dot_q8_0_q8_0`), and looks up `token_embd` rows
dequantized. So inside the context, every `nn.Linear` uses the dequantized
weights and quantizes its input first, and every `nn.Embedding` uses dequantized
rows; all other arithmetic stays the model's own (float64 in the goldens).

The quantizer is ggml's reference one, computed in f32 as the runtime does:
`amax = max |x|`, `d = amax / 127`, `id = d != 0 ? 1/d : 0`, `q = roundf(x * id)`
(half away from zero), `d` stored as f16 (nearest even). The products are summed
in float64 here, so this reference differs from the runtime by float rounding
only: f32 sums, and an input value within an f32 ulp of a rounding boundary,
which then lands one step away. Such a flip is common (thousands of values are
quantized per token) and the recurrent state carries it on: perturbing the
activations by a relative 1e-6 moves this reference's own logits by up to ~0.1
(RMS up to 0.065 on the committed prompts). So logits agree to that noise,
and a greedy byte is a firm expectation only where it leads the runner-up by
well more than that; `greedy_margins` in the goldens says by how much.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Tuple

import torch
from torch import nn

QK = 32


def quantize_q8_0(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Rows of ``x`` (last dimension a multiple of 32) -> (d, qs).

    ``d`` (float64, holding f16 values) has one scale per block, shape
    ``(..., n/32)``; ``qs`` (float64, holding integers in [-127, 127]) has the
    shape ``(..., n/32, 32)``. ``x`` is rounded to f32 first, as the runtime holds it.
    """
    n = x.shape[-1]
    if n % QK:
        raise ValueError(f"Q8_0 rows must be a multiple of {QK} values, got {n}")
    xb = x.detach().to(torch.float32).reshape(*x.shape[:-1], n // QK, QK)
    amax = xb.abs().amax(dim=-1, keepdim=True)
    d = amax / torch.tensor(127.0, dtype=torch.float32)
    one = torch.tensor(1.0, dtype=torch.float32)
    inv = torch.where(d != 0, one / torch.where(d != 0, d, one), torch.zeros_like(d))
    v = (xb * inv).to(torch.float64)  # the f32 product, held exactly
    # roundf: half away from zero. In float64, |v| + 0.5 is exact for f32 v.
    qs = torch.sign(v) * torch.floor(v.abs() + 0.5)
    d16 = d.to(torch.float16).to(torch.float64)
    return d16.squeeze(-1), qs


def dequantize_q8_0(d: torch.Tensor, qs: torch.Tensor) -> torch.Tensor:
    """(d, qs) from `quantize_q8_0` -> the values ``d * qs`` (float64), blocks joined."""
    v = d.unsqueeze(-1) * qs
    return v.reshape(*v.shape[:-2], v.shape[-2] * QK)


def _linear_q8_0(mod: nn.Linear, wd: torch.Tensor, wq: torch.Tensor):
    def forward(x: torch.Tensor) -> torch.Tensor:
        xd, xq = quantize_q8_0(x)
        # Per block the exact integer sum of products, times d_w * d_x; summed
        # over the blocks of a row.
        isum = torch.einsum("...bk,obk->...ob", xq, wq)
        y = (isum * (xd.unsqueeze(-2) * wd)).sum(dim=-1)
        if mod.bias is not None:
            y = y + mod.bias.to(torch.float64)
        return y.to(x.dtype)
    return forward


def has_q8_0_file(model: nn.Module) -> bool:
    """Whether ``model`` can have a Q8_0 file: every matrix row a multiple of 32."""
    return all(mod.weight.shape[-1] % QK == 0 for mod in model.modules()
               if isinstance(mod, (nn.Linear, nn.Embedding)))


@contextlib.contextmanager
def q8_0(model: nn.Module) -> Iterator[nn.Module]:
    """Makes ``model`` compute as its Q8_0 file does while the context is open."""
    saved = []
    try:
        for mod in model.modules():
            if isinstance(mod, nn.Linear):
                wd, wq = quantize_q8_0(mod.weight)
                saved.append((mod, "forward", mod.__dict__.get("forward")))
                mod.forward = _linear_q8_0(mod, wd, wq)
            elif isinstance(mod, nn.Embedding):
                w = dequantize_q8_0(*quantize_q8_0(mod.weight)).to(mod.weight.dtype)
                saved.append((mod, "weight", mod.weight.data))
                mod.weight.data = w
        yield model
    finally:
        for mod, what, old in reversed(saved):
            if what == "weight":
                mod.weight.data = old
            elif old is None:
                del mod.forward
            else:
                mod.forward = old


@contextlib.contextmanager
def f16(model: nn.Module) -> Iterator[nn.Module]:
    """Makes ``model`` compute as its f16 file does while the context is open.

    `latte convert --dtype f16` stores the same tensors in f16 that a Q8_0 file
    stores in Q8_0 (every `nn.Linear` and `nn.Embedding` weight, rounded from f32
    to the nearest f16); norms, biases and decay rates stay f32. The runtime widens
    the f16 weights and multiplies them with its f32 inputs, so this reference
    rounds those weights the same way and keeps everything else the model's own
    (float64 in the goldens): it differs from the runtime by float rounding only.
    """
    saved = []
    try:
        for mod in model.modules():
            if isinstance(mod, (nn.Linear, nn.Embedding)):
                w = mod.weight.detach().to(torch.float32).to(torch.float16).to(mod.weight.dtype)
                saved.append((mod, mod.weight.data))
                mod.weight.data = w
        yield model
    finally:
        for mod, old in reversed(saved):
            mod.weight.data = old
