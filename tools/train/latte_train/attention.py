"""Causal softmax attention for the trainer: full (the standard-attention baseline
of [MACCHIATO]) or a sliding window of the last ``window`` tokens (the local term of
Latte-Macchiato), in a parallel form for training and a recurrent form with a key /
value cache for generation.

Per head, with the usual ``1/sqrt(Dh)`` scale:

    y_t = sum_{s in S(t)} softmax_s(a_ts) v_s,   out = Wo [y_0 | ... | y_{H-1}]

with ``S(t) = {s <= t}`` (full) or ``{t - window < s <= t}`` (sliding window), and
one of two position schemes:

* ``pos="rope"``: ``a_ts = R(t) q_t . R(s) k_s / sqrt(Dh)``, RoPE with base
  ``rope_base`` (pair ``(2i, 2i+1)`` of a head turned by ``pos * base^(-2i/Dh)``).
* ``pos="bias"``: ``a_ts = q_t . k_s / sqrt(Dh) - beta_h (t - s)``, a learned
  slope ``beta_h >= 0`` per head on the distance (ALiBi's form, its slopes
  ``2^(-8(h+1)/H)`` as the start). This is what Latte-Macchiato uses.

Why the distance bias for the window and not RoPE or VAPOR. The runtime keeps
the window in a ring buffer and the model must run at any position, 10 million
tokens in. RoPE's rotation angles are ``t * theta_i``: in ``f32`` at
``t = 10^7`` the angle's rounding step is about one radian, so the keys a ring
holds would be rotated by noise (or the runtime would need ``f64``
trigonometry per token on a microcontroller). The bias depends on ``t - s``
only, which the ring knows exactly (its slot order) and which never exceeds the
window: the same bits at position 100 and 10^7, one multiply-add per score, no
tables. VAPOR rotates the values of a running sum so that they can carry
relative position through Latte's recurrence; a window keeps its tokens
separately and needs no such trick. The Latte term of a Macchiato model uses
no positions (its order comes from causality and the decay gate).

``reference`` is the O(T^2) loop definition the tests compare both forms with in
float64. The Macchiato block that combines the window with Latte is in
``model.py`` (``Block``).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


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


def in_float32(fn, *tensors, **kwargs):
    """``fn(*tensors, **kwargs)``; under autocast, with autocast off and the
    tensors (the heads that the projections made in bf16/f16) widened to
    float32, so that exponentials, scores and softmaxes never round to 8 bits."""
    dev = tensors[0].device.type
    if torch.is_autocast_enabled(dev):
        with torch.autocast(dev, enabled=False):
            return fn(*(t.float() for t in tensors), **kwargs)
    return fn(*tensors, **kwargs)


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """ALiBi's geometric slopes ``2^(-8(h+1)/H)``, float64."""
    return torch.tensor([2.0 ** (-8.0 * (h + 1) / n_heads) for h in range(n_heads)],
                        dtype=torch.float64)


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
    window; ``wq``, ``wk``, ``wv``, ``wo`` all D x D without biases. With
    ``out=False`` there is no ``wo``: the outputs are the heads' before it (a
    Macchiato block projects them with Latte's)."""

    def __init__(self, d_model: int, n_heads: int, window: int = 0, rope_base: float = 10000.0,
                 pos: str = "rope", out: bool = True):
        super().__init__()
        if d_model % n_heads or (d_model // n_heads) % 2:
            raise ValueError("d_model must be n_heads times an even head width")
        if window < 0:
            raise ValueError("window must be >= 0 (0: full attention)")
        if pos not in ("rope", "bias"):
            raise ValueError(f"unknown pos {pos!r}")
        self.h, self.dh, self.window, self.base, self.pos = (
            n_heads, d_model // n_heads, window, rope_base, pos)
        self.wq = nn.Linear(d_model, d_model, bias=False)
        self.wk = nn.Linear(d_model, d_model, bias=False)
        self.wv = nn.Linear(d_model, d_model, bias=False)
        self.wo = nn.Linear(d_model, d_model, bias=False) if out else None
        if pos == "bias":
            self.slope_log = nn.Parameter(torch.log(alibi_slopes(n_heads)).float())
        else:
            self.slope_log = None

    def slopes(self) -> torch.Tensor:
        """The distance slopes ``beta`` (H,) of ``pos="bias"``."""
        return torch.exp(self.slope_log)

    def _heads(self, y: torch.Tensor) -> torch.Tensor:
        b, t, _ = y.shape
        return y.view(b, t, self.h, self.dh).transpose(1, 2)

    def _positions(self, q: torch.Tensor, k: torch.Tensor, start: int):
        """RoPE on queries and keys (B, H, T, Dh) at positions ``start..``."""
        if self.pos == "rope":
            ang = rope_angles(torch.arange(start, start + q.shape[2]), self.dh, self.base)
            q, k = rope(q, ang), rope(k, ang)
        return q, k

    def _qk(self, x: torch.Tensor, start: int):
        return self._positions(self._heads(self.wq(x)), self._heads(self.wk(x)), start)

    def _scores(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        a = (q @ k.transpose(-1, -2)) / math.sqrt(self.dh)
        return a + self.mask(q.shape[2], q.device, a.dtype)

    def scores(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """The masked scores ``a_ts`` (B, H, T, T), ``-inf`` outside ``S(t)``."""
        return self._scores(*self._qk(x, start))

    def attend(self, x: torch.Tensor, start: int = 0, need_lse: bool = True):
        """The heads' outputs before ``Wo`` (B, T, D) and each head's log
        partition function ``logsumexp_s a_ts`` (B, H, T), with the scores
        written out (O(T^2) memory: for training lengths). Without
        ``need_lse`` the second result is ``None`` and the outputs come from
        ``scaled_dot_product_attention`` with the window as a boolean mask
        and the bias folded into the queries and keys: the same function,
        about twice as fast on a CPU as with the bias in an additive mask.

        Under autocast only the projections run in the low precision: the
        positions, the scores and the softmax stay float32. The folded bias
        below reaches ``beta_h T sqrt(Dh)``, and bfloat16's 8 significant bits
        would blur it by whole units of score (measured: +0.17 bits/byte on a
        trained Macchiato model's validation)."""
        q, k, v = self._heads(self.wq(x)), self._heads(self.wk(x)), self._heads(self.wv(x))
        return in_float32(self._attend, q, k, v, start=start, need_lse=need_lse)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start: int,
                need_lse: bool):
        """``attend`` from the projected heads (B, H, T, Dh), before positions."""
        b, _, t, _ = q.shape
        d = self.h * self.dh
        q, k = self._positions(q, k, start)
        if not need_lse:
            keep = self.keep(t, q.device)
            if self.pos != "bias":
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
                return y.transpose(1, 2).reshape(b, t, d), None
            # The bias -beta_h (t - s) is -beta_h t, the same for every key of
            # query t (softmax drops it), plus beta_h s: a term of the key alone.
            # It rides in one more dimension of the queries (1) and the keys
            # (beta_h s / scale, with s counted from the last position so that
            # it is never positive), which leaves a boolean mask without
            # gradients: PyTorch then takes its fused CPU kernel instead of
            # writing out the (B, H, T, T) scores.
            scale = 1.0 / math.sqrt(self.dh)
            s = torch.arange(t, device=q.device, dtype=q.dtype) - (t - 1)
            kb = (self.slopes().to(q.dtype)[:, None] * s / scale).expand(b, -1, -1)
            q = torch.cat([q, q.new_ones(b, self.h, t, 1)], dim=-1)
            k = torch.cat([k, kb[..., None]], dim=-1)
            v = torch.cat([v, v.new_zeros(b, self.h, t, 1)], dim=-1)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, scale=scale)[..., :self.dh]
            return y.transpose(1, 2).reshape(b, t, d), None
        a = self._scores(q, k)
        lse = torch.logsumexp(a, dim=-1)
        y = torch.softmax(a, dim=-1) @ v
        return y.transpose(1, 2).reshape(b, t, d), lse

    def keep(self, t: int, device) -> torch.Tensor:
        """``S(t)`` as a boolean mask (T, T): True where query t sees key s."""
        i = torch.arange(t, device=device)
        dist = i[:, None] - i[None, :]
        keep = dist >= 0
        if self.window:
            keep &= dist < self.window
        return keep

    def mask(self, t: int, device, dtype) -> torch.Tensor:
        """The additive mask of the scores (H or 1, T, T): minus the distance
        bias ``beta_h (t - s)`` inside ``S(t)`` (0 without ``pos="bias"``),
        ``-inf`` outside."""
        if self.pos == "bias":
            i = torch.arange(t, device=device, dtype=dtype)
            m = -self.slopes().to(dtype)[:, None, None] * (i[:, None] - i[None, :])
        else:
            m = torch.zeros(1, t, t, device=device, dtype=dtype)
        return m.masked_fill(~self.keep(t, device), -math.inf)

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Parallel form: x (B, T, D) at positions start.. -> (B, T, D)."""
        y, _ = self.attend(x, start, need_lse=False)
        return y if self.wo is None else self.wo(y)

    def new_cache(self, batch: int, max_tokens: int = 0, dtype=torch.float32) -> KVCache:
        """A cache for ``step``: the window's size, or ``max_tokens`` for full attention."""
        cap = self.window or max_tokens
        if cap <= 0:
            raise ValueError("full attention needs max_tokens > 0 for its cache")
        return KVCache(batch, self.h, self.dh, cap, dtype)

    def step_attend(self, x: torch.Tensor, cache: KVCache):
        """Recurrent form of ``attend``: one token x (B, D) -> the heads'
        outputs before ``Wo`` (B, D) and their log partition functions (B, H),
        continuing ``cache``."""
        b, d = x.shape
        t = cache.pos
        if not self.window and t >= cache.capacity:
            raise ValueError(f"the cache holds {cache.capacity} tokens; start a new one")
        q = self.wq(x).view(b, self.h, 1, self.dh)
        k = self.wk(x).view(b, self.h, 1, self.dh)
        if self.pos == "rope":
            ang = rope_angles(torch.tensor([t]), self.dh, self.base)
            q, k = rope(q, ang), rope(k, ang)
        v = self.wv(x).view(b, self.h, 1, self.dh)
        slot = t % cache.capacity
        cache.k[:, :, slot] = k[:, :, 0].to(cache.k.dtype)
        cache.v[:, :, slot] = v[:, :, 0].to(cache.v.dtype)
        cache.pos = t + 1
        n = min(cache.pos, cache.capacity)
        # The valid slots in chronological order (the ring wraps for windows).
        order = [(slot - j) % cache.capacity for j in range(n)][::-1]
        kk, vv = cache.k[:, :, order], cache.v[:, :, order]
        a = (q.to(kk.dtype) @ kk.transpose(-1, -2)) / math.sqrt(self.dh)  # (B,H,1,n)
        if self.pos == "bias":
            dist = torch.arange(n - 1, -1, -1, dtype=a.dtype)
            a = a - self.slopes().to(a.dtype)[None, :, None, None] * dist
        lse = torch.logsumexp(a, dim=-1)[..., 0]
        y = torch.softmax(a, dim=-1) @ vv
        return y.reshape(b, d), lse

    def step(self, x: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Recurrent form: one token x (B, D) -> (B, D), continuing ``cache``."""
        y, _ = self.step_attend(x, cache)
        return y if self.wo is None else self.wo(y.to(x.dtype))


def reference_heads(att: CausalAttention, x: torch.Tensor, start: int = 0):
    """The definition, O(T^2) loops in float64: x (T, D) -> for each token and
    head the list of scores ``a_ts`` and values ``v_s`` over ``S(t)``."""
    x = x.to(torch.float64)
    t, _ = x.shape
    w = {n: getattr(att, n).weight.detach().to(torch.float64) for n in ("wq", "wk", "wv")}
    slopes = att.slopes().detach().double() if att.pos == "bias" else None

    def rot(vec, pos):
        if att.pos != "rope":
            return vec
        r = vec.clone()
        for i in range(att.dh // 2):
            a = (start + pos) * att.base ** (-2.0 * i / att.dh)
            c, s = math.cos(a), math.sin(a)
            r[2 * i] = vec[2 * i] * c - vec[2 * i + 1] * s
            r[2 * i + 1] = vec[2 * i] * s + vec[2 * i + 1] * c
        return r

    rows = []
    for ti in range(t):
        heads = []
        for h in range(att.h):
            sl = slice(h * att.dh, (h + 1) * att.dh)
            q = rot((w["wq"] @ x[ti])[sl], ti)
            lo = 0 if not att.window else max(0, ti - att.window + 1)
            scores, vals = [], []
            for s in range(lo, ti + 1):
                k = rot((w["wk"] @ x[s])[sl], s)
                a = float(q @ k) / math.sqrt(att.dh)
                if slopes is not None:
                    a -= float(slopes[h]) * (ti - s)
                scores.append(a)
                vals.append((w["wv"] @ x[s])[sl])
            heads.append((scores, vals))
        rows.append(heads)
    return rows


def reference(att: CausalAttention, x: torch.Tensor, start: int = 0) -> torch.Tensor:
    """The definition, O(T^2) loops in float64: x (T, D) -> (T, D) (after ``Wo``
    when the module has one)."""
    t, d = x.shape
    out = torch.zeros(t, d, dtype=torch.float64)
    for ti, heads in enumerate(reference_heads(att, x, start)):
        y = torch.zeros(d, dtype=torch.float64)
        for h, (scores, vals) in enumerate(heads):
            m = max(scores)
            e = [math.exp(sc - m) for sc in scores]
            z = sum(e)
            y[h * att.dh:(h + 1) * att.dh] = sum(ei / z * vi for ei, vi in zip(e, vals))
        out[ti] = y if att.wo is None else att.wo.weight.detach().double() @ y
    return out
