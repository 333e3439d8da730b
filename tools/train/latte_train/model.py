"""Reference Causal Latte language model (PyTorch).

Parameter-compatible with the official implementation (StableScanLatte inside
pre-LayerNorm transformer blocks; see crates/latte-gguf/FORMAT.md for the exported
layout). Two forms of the mixing layer are provided and tested equal:

* ``forward`` -- the parallel (training) form, numerically stable through a
  log-cumulative-sum-exp normaliser evaluated in float64;
* ``step`` -- the recurrent form with the running-max state ``(S, n, m)`` that the
  Rust runtime implements, one token at a time.

VAPOR (value rotations by relative position) is a configuration option. Its
rotation pairs value dimensions ``(2i, 2i+1)`` inside each head and turns pair ``i``
by ``theta_i = vapor_base ** (-2i / Dh)`` per step (RoPE's schedule). A VAPOR model
drops the additive sinusoidal encoding.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


EXP_RANGE = 80.0


@dataclass
class LatteConfig:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 6
    n_heads: int = 4
    n_latents: int = 64
    d_ff: int = 0  # 0 means 4 * d_model
    max_seq_len: int = 256
    pos_encoding: str = "sinusoidal"  # or "vapor"
    vapor_base: float = 10000.0
    ln_eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.d_ff == 0:
            self.d_ff = 4 * self.d_model
        if self.d_model % self.n_heads or self.n_latents % self.n_heads:
            raise ValueError("d_model and n_latents must both be divisible by n_heads")
        if self.pos_encoding not in ("sinusoidal", "vapor"):
            raise ValueError(f"unknown pos_encoding {self.pos_encoding!r}")
        if self.pos_encoding == "vapor" and (self.d_model // self.n_heads) % 2:
            raise ValueError("VAPOR needs an even head width d_model / n_heads")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> "LatteConfig":
        return LatteConfig(**json.loads(text))

    def vapor_frequencies(self) -> torch.Tensor:
        """Angle per step for each value pair of a head, float64, length Dh/2."""
        dh = self.d_model // self.n_heads
        i = torch.arange(0, dh // 2, dtype=torch.float64)
        return self.vapor_base ** (-2.0 * i / dh)


def sinusoidal_table(n_pos: int, d: int) -> torch.Tensor:
    """The official code's table, computed in float32 as JAX does."""
    position = torch.arange(0, n_pos, dtype=torch.float32)[:, None]
    div_term = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-(math.log(10000.0) / d)))
    pe = torch.zeros(n_pos, d, dtype=torch.float32)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe


def rotate_pairs(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (2i, 2i+1) of the last axis of ``x`` by ``angle[..., i]``.

    ``angle`` broadcasts against ``x[..., ::2]``.
    """
    c, s = torch.cos(angle).to(x.dtype), torch.sin(angle).to(x.dtype)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x0 * c - x1 * s
    out[..., 1::2] = x0 * s + x1 * c
    return out


class LatteState:
    """Recurrent state of one layer: S (B,H,Lh,Dh), n and m (B,H,Lh)."""

    def __init__(self, batch: int, cfg: LatteConfig, dtype=torch.float32, device=None):
        h, lh, dh = cfg.n_heads, cfg.n_latents // cfg.n_heads, cfg.d_model // cfg.n_heads
        self.S = torch.zeros(batch, h, lh, dh, dtype=dtype, device=device)
        self.n = torch.zeros(batch, h, lh, dtype=dtype, device=device)
        self.m = torch.full((batch, h, lh), -math.inf, dtype=dtype, device=device)


class LatteMix(nn.Module):
    """StableScanLatte: causal latent attention, no biases, no 1/sqrt(d) scaling."""

    def __init__(self, cfg: LatteConfig):
        super().__init__()
        self.cfg = cfg
        d, l = cfg.d_model, cfg.n_latents
        self.wq = nn.Linear(d, l, bias=False)
        self.wk = nn.Linear(d, l, bias=False)
        self.wv = nn.Linear(d, d, bias=False)
        self.wo = nn.Linear(d, d, bias=False)
        if cfg.pos_encoding == "vapor":
            self.register_buffer("theta", cfg.vapor_frequencies(), persistent=False)
        else:
            self.theta = None
        self.key_range = torch.zeros(())

    def _heads(self, x: torch.Tensor, w: nn.Linear) -> torch.Tensor:
        b, t, _ = x.shape
        y = w(x)
        return y.view(b, t, self.cfg.n_heads, -1).transpose(1, 2)  # (B,H,T,.)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Parallel form over a whole sequence x: (B, T, D) -> (B, T, D)."""
        b, t, d = x.shape
        q, k, v = self._heads(x, self.wq), self._heads(x, self.wk), self._heads(x, self.wv)
        if torch.is_autocast_enabled(x.device.type):
            # Under mixed precision the projections run in bf16/f16; the mixing
            # (exponentials, cumulative normaliser, T x T products) stays float32.
            with torch.autocast(x.device.type, enabled=False):
                y = self._mix(q.float(), k.float(), v.float())
        else:
            y = self._mix(q, k, v)
        return self.wo(y)

    def _mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The causal latent mixing of heads q, k (B,H,T,Lh) and v (B,H,T,Dh) -> (B,T,D)."""
        b, _, t, _ = q.shape
        d = self.cfg.d_model
        if self.theta is not None:
            pos = torch.arange(t, dtype=torch.float64, device=q.device)
            ang = pos[:, None] * self.theta.to(q.device)[None, :]  # (T, Dh/2), float64
            v = rotate_pairs(v, -ang)
        # p(s|t) = sum_l softmax_l(q_t)_l * exp(k_{s,l}) / sum_{s'<=t} exp(k_{s',l})
        # evaluated as exp(log p - log alpha + c) @ exp(k - c)^T with a per-latent
        # constant c (the maximum key over the sequence). For s <= t the true
        # product is at most 1; the factors stay finite in float32 while the key
        # range within one sequence is below EXP_RANGE, which the clamps enforce
        # (the recurrent form has no such limit). The widest key range of the last
        # call is kept in ``key_range`` so that training can report whether a batch
        # went past it.
        self.key_range = (k.detach().amax(dim=2) - k.detach().amin(dim=2)).amax()
        log_p = torch.log_softmax(q, dim=-1)
        log_alpha = torch.logcumsumexp(k, dim=2)
        c = k.detach().amax(dim=2, keepdim=True)
        left = torch.exp(torch.clamp(log_p - log_alpha + c, max=EXP_RANGE))
        right = torch.exp(torch.clamp(k - c, min=-EXP_RANGE))
        att = torch.tril(left @ right.transpose(-1, -2))  # (B,H,T,T)
        y = att @ v  # (B,H,T,Dh)
        if self.theta is not None:
            y = rotate_pairs(y, ang)
        return y.transpose(1, 2).reshape(b, t, d)

    def step(self, x: torch.Tensor, st: LatteState) -> torch.Tensor:
        """Recurrent form for one token x: (B, D); updates ``st`` in place."""
        b, d = x.shape
        h = self.cfg.n_heads
        dt = st.S.dtype
        q = self.wq(x).to(dt).view(b, h, -1)
        k = self.wk(x).to(dt).view(b, h, -1)
        v = self.wv(x).to(dt).view(b, h, -1)
        p = torch.softmax(q, dim=-1)
        m_new = torch.maximum(st.m, k)
        r = torch.exp(st.m - m_new)
        a = torch.exp(k - m_new)
        S = st.S
        if self.theta is not None:
            S = rotate_pairs(S, self.theta.to(x.device))
        st.S = S * r[..., None] + a[..., None] * v[:, :, None, :]
        st.n = st.n * r + a
        st.m = m_new
        y = ((p / st.n)[..., None] * st.S).sum(dim=2)  # (B,H,Dh)
        return self.wo(y.reshape(b, d).to(x.dtype))


class Mlp(nn.Module):
    def __init__(self, cfg: LatteConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.d_model, cfg.d_ff)
        self.fc2 = nn.Linear(cfg.d_ff, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, cfg: LatteConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model, eps=cfg.ln_eps)
        self.latte = LatteMix(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model, eps=cfg.ln_eps)
        self.mlp = Mlp(cfg)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h + self.latte(self.ln1(h))
        return h + self.mlp(self.ln2(h))

    def step(self, h: torch.Tensor, st: LatteState) -> torch.Tensor:
        h = h + self.latte.step(self.ln1(h), st)
        return h + self.mlp(self.ln2(h))


class LatteLM(nn.Module):
    def __init__(self, cfg: LatteConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)])
        self.ln_f = nn.LayerNorm(cfg.d_model, eps=cfg.ln_eps)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)
        self._init()

    def _init(self) -> None:
        # Lecun-normal kernels and zero biases, as the official Flax modules do.
        for mod in self.modules():
            if isinstance(mod, nn.Linear):
                nn.init.normal_(mod.weight, std=1.0 / math.sqrt(mod.in_features))
                if mod.bias is not None:
                    nn.init.zeros_(mod.bias)
            elif isinstance(mod, nn.Embedding):
                nn.init.normal_(mod.weight, std=1.0 / math.sqrt(self.cfg.d_model))

    def pe(self, start: int, length: int, device=None) -> Optional[torch.Tensor]:
        if self.cfg.pos_encoding != "sinusoidal":
            return None
        return sinusoidal_table(start + length, self.cfg.d_model)[start:].to(device)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, T) -> logits (B, T, V), parallel form."""
        h = self.tok_emb(tokens)
        pe = self.pe(0, tokens.shape[1], tokens.device)
        if pe is not None:
            h = h + pe[None]
        for blk in self.blocks:
            h = blk(h)
        return self.head(self.ln_f(h))

    def new_state(self, batch: int = 1, dtype=torch.float32) -> List[LatteState]:
        return [LatteState(batch, self.cfg, dtype, self.head.weight.device) for _ in self.blocks]

    def step(self, tokens: torch.Tensor, pos: int, states: List[LatteState]) -> torch.Tensor:
        """One token per sequence, tokens (B,), at position ``pos`` -> logits (B, V)."""
        h = self.tok_emb(tokens)
        pe = self.pe(pos, 1, tokens.device)
        if pe is not None:
            h = h + pe[0]
        for blk, st in zip(self.blocks, states):
            h = blk.step(h, st)
        return self.head(self.ln_f(h))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
