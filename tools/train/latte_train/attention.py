"""Causal softmax attention for the trainer: full (the standard-attention baseline
of [MACCHIATO]) or a sliding window of the last ``window`` tokens (the local term of
Latte-Macchiato), in a parallel form for training and a recurrent form with a key /
value cache for generation.

Per head, with RoPE on queries and keys (base ``rope_base``; pair ``(2i, 2i+1)``
of a head rotated by ``pos * base^(-2i/Dh)``) and the usual ``1/sqrt(Dh)`` scale:

    y_t = sum_{s in S(t)} softmax_s(q_t . k_s / sqrt(Dh)) v_s,  out = Wo [y_0 | ... | y_{H-1}]

with ``S(t) = {s <= t}`` (full) or ``{t - window < s <= t}`` (sliding window).

Positions: RoPE, not VAPOR. Rotating queries and keys by their absolute positions
makes their dot product depend on the distance ``t - s`` only, so a cache can keep
each key rotated once, when it is written, and a ring buffer of the last ``window``
keys and values is the whole state of the local term: constant memory whatever ``t``.
VAPOR rotates the values of a running sum, which a window (a finite set of tokens,
each weighed by its own softmax score) does not need.

``reference`` is the O(T^2) loop definition the tests compare both forms with in
float64. ``MacchiatoMix`` combines it with the Latte layer (see there). The file
format, the runtime mixers and a trained model are not written yet.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn


def rope_angles(pos: torch.Tensor, d_head: int, base: float) -> torch.Tensor:
    """Angles (len(pos), Dh/2) of positions ``pos`` for RoPE, in float64."""
    i = torch.arange(0, d_head // 2, dtype=torch.float64)
    return pos.to(torch.float64)[:, None] * base ** (-2.0 * i / d_head)[None, :]


def rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotates pairs (2i, 2i+1) of the last axis of ``x`` (..., T, Dh) by ``angles`` (T, Dh/2)."""
    c, s = torch.cos(angles).to(x.dtype), torch.sin(angles).to(x.dtype)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x0 * c - x1 * s
    out[..., 1::2] = x0 * s + x1 * c
    return out


class KVCache:
    """The recurrent state of one layer: the last ``capacity`` keys (already
    rotated) and values of each head, and the position of the next token.
    ``capacity`` is the window (a ring buffer) or, for full attention, the most
    tokens the caller allows."""

    def __init__(self, batch: int, n_heads: int, d_head: int, capacity: int, dtype=torch.float32):
        self.k = torch.zeros(batch, n_heads, capacity, d_head, dtype=dtype)
        self.v = torch.zeros(batch, n_heads, capacity, d_head, dtype=dtype)
        self.capacity = capacity
        self.pos = 0


class CausalAttention(nn.Module):
    """Multi-head causal softmax attention, full (``window=0``) or over a sliding
    window; ``wq``, ``wk``, ``wv``, ``wo`` all D x D without biases."""

    def __init__(self, d_model: int, n_heads: int, window: int = 0, rope_base: float = 10000.0):
        super().__init__()
        if d_model % n_heads or (d_model // n_heads) % 2:
            raise ValueError("d_model must be n_heads times an even head width")
        if window < 0:
            raise ValueError("window must be >= 0 (0: full attention)")
        self.h, self.dh, self.window, self.base = n_heads, d_model // n_heads, window, rope_base
        self.wq = nn.Linear(d_model, d_model, bias=False)
        self.wk = nn.Linear(d_model, d_model, bias=False)
        self.wv = nn.Linear(d_model, d_model, bias=False)
        self.wo = nn.Linear(d_model, d_model, bias=False)

    def _heads(self, y: torch.Tensor) -> torch.Tensor:
        b, t, _ = y.shape
        return y.view(b, t, self.h, self.dh).transpose(1, 2)

    def attend(self, x: torch.Tensor, start: int = 0):
        """The heads' outputs before ``Wo`` (B, T, D) and each head's log
        partition function ``logsumexp_s(q_t . k_s / sqrt(Dh))`` (B, H, T), with
        the scores written out (O(T^2) memory: for training lengths)."""
        b, t, d = x.shape
        ang = rope_angles(torch.arange(start, start + t), self.dh, self.base)
        q = rope(self._heads(self.wq(x)), ang)
        k = rope(self._heads(self.wk(x)), ang)
        v = self._heads(self.wv(x))
        i = torch.arange(t, device=x.device)
        keep = i[None, :] <= i[:, None]
        if self.window:
            keep &= i[None, :] > i[:, None] - self.window
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.dh)
        scores = scores.masked_fill(~keep, -math.inf)
        lse = torch.logsumexp(scores, dim=-1)
        y = torch.softmax(scores, dim=-1) @ v
        return y.transpose(1, 2).reshape(b, t, d), lse

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Parallel form: x (B, T, D) at positions start.. -> (B, T, D)."""
        b, t, d = x.shape
        ang = rope_angles(torch.arange(start, start + t), self.dh, self.base)
        q = rope(self._heads(self.wq(x)), ang)
        k = rope(self._heads(self.wk(x)), ang)
        v = self._heads(self.wv(x))
        i = torch.arange(t)
        keep = i[None, :] <= i[:, None]
        if self.window:
            keep &= i[None, :] > i[:, None] - self.window
        y = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=keep.to(x.device))
        return self.wo(y.transpose(1, 2).reshape(b, t, d))

    def new_cache(self, batch: int, max_tokens: int = 0, dtype=torch.float32) -> KVCache:
        """A cache for ``step``: the window's size, or ``max_tokens`` for full attention."""
        cap = self.window or max_tokens
        if cap <= 0:
            raise ValueError("full attention needs max_tokens > 0 for its cache")
        return KVCache(batch, self.h, self.dh, cap, dtype)

    def step(self, x: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Recurrent form: one token x (B, D) -> (B, D), continuing ``cache``."""
        b, d = x.shape
        t = cache.pos
        if not self.window and t >= cache.capacity:
            raise ValueError(f"the cache holds {cache.capacity} tokens; start a new one")
        ang = rope_angles(torch.tensor([t]), self.dh, self.base)
        q = rope(self.wq(x).view(b, self.h, 1, self.dh), ang)
        k = rope(self.wk(x).view(b, self.h, 1, self.dh), ang)
        v = self.wv(x).view(b, self.h, 1, self.dh)
        slot = t % cache.capacity
        cache.k[:, :, slot] = k[:, :, 0].to(cache.k.dtype)
        cache.v[:, :, slot] = v[:, :, 0].to(cache.v.dtype)
        cache.pos = t + 1
        n = min(cache.pos, cache.capacity)
        # The valid slots in chronological order (the ring wraps for windows).
        order = [(slot - j) % cache.capacity for j in range(n)][::-1]
        kk, vv = cache.k[:, :, order], cache.v[:, :, order]
        scores = (q @ kk.transpose(-1, -2)) / math.sqrt(self.dh)
        y = torch.softmax(scores, dim=-1) @ vv
        return self.wo(y.reshape(b, d))


def reference(att: CausalAttention, x: torch.Tensor, start: int = 0) -> torch.Tensor:
    """The definition, O(T^2) loops in float64: x (T, D) -> (T, D)."""
    x = x.to(torch.float64)
    t, d = x.shape
    w = {n: getattr(att, n).weight.detach().to(torch.float64) for n in ("wq", "wk", "wv", "wo")}
    out = torch.zeros(t, d, dtype=torch.float64)
    for ti in range(t):
        y = torch.zeros(d, dtype=torch.float64)
        for h in range(att.h):
            sl = slice(h * att.dh, (h + 1) * att.dh)

            def rot(vec, pos):
                r = vec.clone()
                for i in range(att.dh // 2):
                    a = (start + pos) * att.base ** (-2.0 * i / att.dh)
                    c, s = math.cos(a), math.sin(a)
                    r[2 * i] = vec[2 * i] * c - vec[2 * i + 1] * s
                    r[2 * i + 1] = vec[2 * i] * s + vec[2 * i + 1] * c
                return r

            q = rot((w["wq"] @ x[ti])[sl], ti)
            lo = 0 if not att.window else max(0, ti - att.window + 1)
            scores, vals = [], []
            for s in range(lo, ti + 1):
                k = rot((w["wk"] @ x[s])[sl], s)
                scores.append(float(q @ k) / math.sqrt(att.dh))
                vals.append((w["wv"] @ x[s])[sl])
            m = max(scores)
            e = [math.exp(sc - m) for sc in scores]
            z = sum(e)
            y[sl] = sum(ei / z * vi for ei, vi in zip(e, vals))
        out[ti] = w["wo"] @ y
    return out


class MacchiatoMix(nn.Module):
    """Latte-Macchiato: the causal Latte layer (global) and sliding-window
    attention (local), combined in one of two ways:

    * ``"sum"`` (v3/v4): ``Latte(x) + SWA(x)``, each with its own ``Wo``.
    * ``"joint"`` (v5, "full normalisation"): one softmax over the head's
      latents and the window's tokens. With latent logits ``q_l`` (Latte's
      query, before its softmax) and window scores ``a_s = q'_t . k'_s /
      sqrt(Dh)``, the weights are ``exp(q_l) / Z`` and ``exp(a_s) / Z`` with
      ``Z = sum_l exp(q_l) + sum_s exp(a_s)``, and the head's output is
      ``(sum_l exp(q_l) M_l + sum_s exp(a_s) v'_s) / Z``, ``M_l`` the latent's
      weighted mean value (Latte's ``S_l / n_l``). Since Latte's own output is
      ``sum_l softmax(q)_l M_l`` and the window's ``sum_s softmax(a)_s v'_s``,
      this is ``g y_latte + (1 - g) y_window`` with
      ``g = sigmoid(logsumexp_l q_l - logsumexp_s a_s)`` per head and token: the
      two terms weighed by their partition functions, then Latte's ``Wo``.
      Nearby tokens are still seen by both terms; what changes is that the
      weights sum to 1, the reviewers' objection to the sum.
    """

    def __init__(self, cfg, window: int, combine: str = "sum", rope_base: float = 10000.0):
        super().__init__()
        from .model import LatteMix

        if combine not in ("sum", "joint"):
            raise ValueError(f"unknown combine {combine!r}")
        if window <= 0:
            raise ValueError("Macchiato needs a window >= 1")
        self.combine = combine
        self.latte = LatteMix(cfg)
        self.swa = CausalAttention(cfg.d_model, cfg.n_heads, window, rope_base)
        if combine == "joint":
            self.swa.wo = None  # the joint output goes through Latte's Wo

    def forward(self, x: torch.Tensor, state=None, start: int = 0) -> torch.Tensor:
        if self.combine == "sum":
            return self.latte(x, state) + self.swa(x, start)
        lt = self.latte
        q, k, v = lt._heads(x, lt.wq), lt._heads(x, lt.wk), lt._heads(x, lt.wv)
        y_latte = lt._mix(q, k, v, state)  # (B,T,D), before Wo
        y_win, lse_win = self.swa.attend(x, start)
        g = torch.sigmoid(torch.logsumexp(q, dim=-1) - lse_win)  # (B,H,T)
        b, t, d = x.shape
        g = g.transpose(1, 2)[..., None]  # (B,T,H,1)
        y = g * y_latte.view(b, t, -1, self.swa.dh) + (1 - g) * y_win.view(b, t, -1, self.swa.dh)
        return lt.wo(y.reshape(b, t, d))


def macchiato_reference(mix: MacchiatoMix, x: torch.Tensor) -> torch.Tensor:
    """``MacchiatoMix`` by its definition, in float64 loops: x (T, D) -> (T, D).
    Latte's term is ``sum_l softmax(q)_l M_l`` with ``M_l`` summed over the whole
    prefix directly (no running maximum), the window's from ``reference``'s
    rules; ``"joint"`` builds the one distribution over latents and window."""
    x = x.to(torch.float64)
    t, d = x.shape
    lt, sw = mix.latte, mix.swa
    h, dh = sw.h, sw.dh
    lh = lt.wq.weight.shape[0] // h
    W = lambda m: m.weight.detach().to(torch.float64)  # noqa: E731
    q, k, v = x @ W(lt.wq).T, x @ W(lt.wk).T, x @ W(lt.wv).T
    out = torch.zeros(t, d, dtype=torch.float64)
    for ti in range(t):
        y = torch.zeros(d, dtype=torch.float64)
        for hh in range(h):
            ls, vs = slice(hh * lh, (hh + 1) * lh), slice(hh * dh, (hh + 1) * dh)
            ql = q[ti, ls]
            means = []
            for li in range(lh):
                w = torch.exp(k[: ti + 1, ls][:, li])
                means.append((w[:, None] * v[: ti + 1, vs]).sum(0) / w.sum())
            el = torch.exp(ql)
            y_l = sum(el[i] * means[i] for i in range(lh))
            # The window's scores and values (RoPE'd q/k), as in `reference`.
            a, vals = [], []
            lo = max(0, ti - sw.window + 1)

            def rot(vec, pos):
                r = vec.clone()
                for i in range(dh // 2):
                    ang = pos * sw.base ** (-2.0 * i / dh)
                    c, s_ = math.cos(ang), math.sin(ang)
                    r[2 * i] = vec[2 * i] * c - vec[2 * i + 1] * s_
                    r[2 * i + 1] = vec[2 * i] * s_ + vec[2 * i + 1] * c
                return r

            qw = rot((W(sw.wq) @ x[ti])[vs], ti)
            for s in range(lo, ti + 1):
                a.append(float(qw @ rot((W(sw.wk) @ x[s])[vs], s)) / math.sqrt(dh))
                vals.append((W(sw.wv) @ x[s])[vs])
            ea = [math.exp(z) for z in a]
            y_w = sum(e * vv for e, vv in zip(ea, vals))
            if mix.combine == "joint":
                y[vs] = (y_l + y_w) / (float(el.sum()) + sum(ea))
            else:  # the window term goes through its own Wo, added below
                y[vs] = y_l / float(el.sum())
        out[ti] = W(lt.wo) @ y
    if mix.combine == "sum":
        out = out + reference(sw, x)
    return out
