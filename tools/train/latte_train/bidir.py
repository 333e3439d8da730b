"""Bidirectional Latte (the official ``BidLatte``) and the official sequence
classifier around it (``models/tasks.py`` ``Classification``), in PyTorch.

For each head, with ``p_t = softmax_l(q_t)`` over the head's latents and the key
softmax taken over the *whole* input instead of the prefix:

    w_{s,l} = exp(k_{s,l}) / sum_{s'} exp(k_{s',l})      (pad positions excluded)
    y_t     = sum_l p_{t,l} sum_s w_{s,l} v_s

then ``Wo``. No ``1/sqrt(d)`` scaling, no biases: the parameters are those of
the causal layer (``LatteMix``), so the same weights drive both, and the two
agree at the last position. Pad positions (``mask`` false) take no part in the
sums, as the official code zeroes both ``exp(k)`` and ``v`` there.

The classifier is the official text encoder: byte embedding plus the sinusoidal
table (and, with ``conv_width`` K > 0, the byte n-gram stem: an extension that adds
``W [e_t | e_{t-1} | ... | e_{t-K+1}] + b`` to each embedding, zero-initialised,
since a bidirectional Latte layer mixes tokens only through its global summaries), pre-LayerNorm blocks (``BidLatte`` then the GELU MLP), no final norm, mean
pooling over the non-pad positions, one dense layer to the class logits.

A bidirectional layer needs, per latent, sums over the whole input before any
output: ``latent_means`` gives those sums (the weighted mean value per latent,
computed in one pass with a running maximum as a runtime would), ``forward`` the
outputs. ``tests/test_bidir.py`` checks the layer against the official code's
fixture and an O(T^2) float64 definition.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn as nn

from .model import Mlp, sinusoidal_table


@dataclass
class ClassifierConfig:
    vocab_size: int = 256
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    n_latents: int = 40
    d_ff: int = 0  # 0 means 4 * d_model
    n_classes: int = 2
    max_seq_len: int = 2048  # rows of the sinusoidal table
    pos_encoding: str = "sinusoidal"  # or "none"
    ln_eps: float = 1e-6
    mixer: str = "bid_latte"  # or "attention" (the standard-attention baseline)
    # The byte n-gram stem (an extension, not the official model): 0 = off.
    # K > 0 adds W [e_t | e_{t-1} | ... | e_{t-K+1}] + b to each embedding.
    conv_width: int = 0

    def __post_init__(self) -> None:
        if self.d_ff == 0:
            self.d_ff = 4 * self.d_model
        if self.d_model % self.n_heads or self.n_latents % self.n_heads:
            raise ValueError("d_model and n_latents must both be divisible by n_heads")
        if self.pos_encoding not in ("sinusoidal", "none"):
            raise ValueError(f"unknown pos_encoding {self.pos_encoding!r}")
        if self.n_classes < 2:
            raise ValueError("a classifier needs at least two classes")
        if self.mixer not in ("bid_latte", "attention"):
            raise ValueError(f"unknown mixer {self.mixer!r}")
        if self.conv_width < 0:
            raise ValueError("conv_width must be >= 0")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> "ClassifierConfig":
        return ClassifierConfig(**json.loads(text))


class BidLatteMix(nn.Module):
    """The official ``BidLatte``: parameters ``wq``, ``wk`` (L x D), ``wv``, ``wo``
    (D x D) as ``nn.Linear`` without bias, named as in ``LatteMix``."""

    def __init__(self, d_model: int, n_heads: int, n_latents: int):
        super().__init__()
        self.h = n_heads
        self.wq = nn.Linear(d_model, n_latents, bias=False)
        self.wk = nn.Linear(d_model, n_latents, bias=False)
        self.wv = nn.Linear(d_model, d_model, bias=False)
        self.wo = nn.Linear(d_model, d_model, bias=False)

    def _heads(self, y: torch.Tensor) -> torch.Tensor:
        b, t, _ = y.shape
        return y.view(b, t, self.h, -1).transpose(1, 2)  # (B,H,T,.)

    def latent_means(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Per head and latent, the key-softmax-weighted mean of the values over
        the whole input: (B, T, D) -> (B, H, Lh, Dh)."""
        k, v = self._heads(self.wk(x)), self._heads(self.wv(x))
        if mask is not None:
            keep = mask[:, None, :, None].to(torch.bool)
            k = torch.where(keep, k, torch.full_like(k, -math.inf))
            v = torch.where(keep, v, torch.zeros_like(v))
        w = torch.softmax(k, dim=2)  # over time, per latent
        return w.transpose(-1, -2) @ v

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (B, T, D), mask (B, T) bool (true = a real token) -> (B, T, D)."""
        b, t, d = x.shape
        p = torch.softmax(self._heads(self.wq(x)), dim=-1)  # (B,H,T,Lh)
        y = p @ self.latent_means(x, mask)  # (B,H,T,Dh)
        return self.wo(y.transpose(1, 2).reshape(b, t, d))


class AttentionMix(nn.Module):
    """Standard bidirectional multi-head softmax attention (scaled by
    ``1/sqrt(Dh)``, no biases), the baseline encoder's mixer: ``wq``, ``wk``,
    ``wv``, ``wo`` all D x D. Pad keys (``mask`` false) get no weight."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.h = n_heads
        self.wq = nn.Linear(d_model, d_model, bias=False)
        self.wk = nn.Linear(d_model, d_model, bias=False)
        self.wv = nn.Linear(d_model, d_model, bias=False)
        self.wo = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        b, t, d = x.shape
        heads = lambda y: y.view(b, t, self.h, -1).transpose(1, 2)
        q, k, v = heads(self.wq(x)), heads(self.wk(x)), heads(self.wv(x))
        keep = None if mask is None else mask[:, None, None, :].to(torch.bool)
        y = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        return self.wo(y.transpose(1, 2).reshape(b, t, d))


class EncoderBlock(nn.Module):
    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model, eps=cfg.ln_eps)
        self.latte = (BidLatteMix(cfg.d_model, cfg.n_heads, cfg.n_latents) if cfg.mixer == "bid_latte"
                      else AttentionMix(cfg.d_model, cfg.n_heads))
        self.ln2 = nn.LayerNorm(cfg.d_model, eps=cfg.ln_eps)
        self.mlp = Mlp(cfg)  # reads d_model and d_ff only

    def forward(self, h: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        h = h + self.latte(self.ln1(h), mask)
        return h + self.mlp(self.ln2(h))


def ngram_window(e: torch.Tensor, k: int) -> torch.Tensor:
    """(B, T, D) -> (B, T, K*D): at each position the embeddings of it and the
    K-1 before it, newest first, zeros before the start."""
    parts = [e]
    for s in range(1, k):
        parts.append(nn.functional.pad(e, (0, 0, s, 0))[:, : e.shape[1]])
    return torch.cat(parts, dim=-1)


class LatteClassifier(nn.Module):
    """Sequence classifier: tokens (B, T) and mask (B, T) -> class logits (B, C)."""

    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList([EncoderBlock(cfg) for _ in range(cfg.n_layers)])
        self.head = nn.Linear(cfg.d_model, cfg.n_classes)
        self.stem = nn.Linear(cfg.conv_width * cfg.d_model, cfg.d_model) if cfg.conv_width else None
        for mod in self.modules():  # Lecun-normal kernels, zero biases (Flax defaults)
            if isinstance(mod, nn.Linear):
                nn.init.normal_(mod.weight, std=1.0 / math.sqrt(mod.in_features))
                if mod.bias is not None:
                    nn.init.zeros_(mod.bias)
            elif isinstance(mod, nn.Embedding):
                nn.init.normal_(mod.weight, std=1.0 / math.sqrt(cfg.d_model))
        if self.stem is not None:  # starts as the official model
            nn.init.zeros_(self.stem.weight)

    def encode(self, tokens: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The encoder's last hidden states (B, T, D)."""
        t = tokens.shape[1]
        if self.cfg.pos_encoding == "sinusoidal" and t > self.cfg.max_seq_len:
            raise ValueError(f"input of {t} tokens is longer than max_seq_len {self.cfg.max_seq_len}")
        h = self.tok_emb(tokens)
        if self.stem is not None:
            h = h + self.stem(ngram_window(h, self.cfg.conv_width))
        if self.cfg.pos_encoding == "sinusoidal":
            h = h + sinusoidal_table(t, self.cfg.d_model).to(h.dtype).to(h.device)[None]
        for blk in self.blocks:
            h = blk(h, mask)
        return h

    def forward(self, tokens: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = self.encode(tokens, mask)
        if mask is None:
            pooled = h.mean(dim=1)
        else:
            m = mask.to(h.dtype)[..., None]
            pooled = (h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
        return self.head(pooled)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def save_classifier(model: LatteClassifier, path, name: Optional[str] = None,
                    labels: Optional[Sequence[str]] = None) -> None:
    """Writes ``model`` as safetensors with its configuration under
    ``latte.classifier`` (and ``latte.name``, ``latte.class_labels`` as a JSON
    list when given): what ``latte convert`` reads."""
    from safetensors.torch import save_file

    meta = {"format": "pt", "latte.classifier": model.cfg.to_json()}
    if name:
        meta["latte.name"] = name
    if labels is not None:
        if len(labels) != model.cfg.n_classes:
            raise ValueError(f"{len(labels)} labels for {model.cfg.n_classes} classes")
        meta["latte.class_labels"] = json.dumps(list(labels))
    save_file({k: v.detach().float().contiguous() for k, v in model.state_dict().items()},
              str(Path(path)), metadata=meta)
