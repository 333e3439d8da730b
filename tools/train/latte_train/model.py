"""Reference Causal Latte language model (PyTorch).

Parameter-compatible with the official implementation (StableScanLatte inside
pre-LayerNorm transformer blocks; see crates/latte-gguf/FORMAT.md for the exported
layout). Two forms of the mixing layer are provided and tested equal:

* ``forward`` -- the parallel (training) form, in chunks whose exponentials are
  scaled by each latent's largest key, so the normaliser is a cumulative sum;
* ``step`` -- the recurrent form with the running-max state ``(S, n, m)`` that the
  Rust runtime implements, one token at a time.

VAPOR (value rotations by relative position) is a configuration option. Its
rotation pairs value dimensions ``(2i, 2i+1)`` inside each head and turns pair ``i``
by ``theta_i = vapor_base ** (-2i / Dh)`` per step (RoPE's schedule). A VAPOR model
drops the additive sinusoidal encoding; ``pos_encoding="none"`` has no positions at
all (order only from causality and, with it, the gate).

The decay gate (``latent_decay``, an extension of the paper's model) gives latent l
a rate ``lambda_l`` and weighs token s at time t by ``exp(k_s - lambda_l (t - s))``;
the recurrence lets its running maximum decay with it (``m - lambda`` before the
maximum), one subtraction per latent and step.

The parallel form runs in chunks of ``CHUNK`` tokens and can continue from a state
(stream training, truncated backpropagation through time); it equals the recurrence
across window boundaries (``tests/test_stream.py``).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import in_float32


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
    pos_encoding: str = "sinusoidal"  # or "vapor" or "none"
    vapor_base: float = 10000.0
    ln_eps: float = 1e-6
    # The decay gate (an extension of the paper's model): latent l of every layer
    # forgets at rate lambda_l = decay_max * sigmoid(decay_logit_l) per token.
    latent_decay: bool = False
    decay_max: float = 0.25
    # Latte-Macchiato (``attention.py``, ``Block``): each block also attends to
    # the last ``window`` tokens (0: plain Latte), the two terms combined by
    # ``combine``: "sum" (v3/v4) or "joint" (v5's one normalisation).
    window: int = 0
    combine: str = "sum"
    # The mixer of every block: "latte", "macchiato" (set by a window > 0) or
    # "attention" (causal softmax attention alone over ``window`` tokens, 0 =
    # all: the standard-attention baseline; no Latte term).
    mixer: str = "latte"

    def __post_init__(self) -> None:
        if self.d_ff == 0:
            self.d_ff = 4 * self.d_model
        if self.d_model % self.n_heads or self.n_latents % self.n_heads:
            raise ValueError("d_model and n_latents must both be divisible by n_heads")
        if self.pos_encoding not in ("sinusoidal", "vapor", "none"):
            raise ValueError(f"unknown pos_encoding {self.pos_encoding!r}")
        if self.pos_encoding == "vapor" and (self.d_model // self.n_heads) % 2:
            raise ValueError("VAPOR needs an even head width d_model / n_heads")
        if self.window < 0:
            raise ValueError("window must be >= 0 (0: no local attention)")
        if self.mixer == "latte" and self.window > 0:
            self.mixer = "macchiato"
        if self.mixer not in ("latte", "macchiato", "attention"):
            raise ValueError(f"unknown mixer {self.mixer!r}")
        if self.mixer == "macchiato" and self.window == 0:
            raise ValueError("a Macchiato model needs a window >= 1")
        if self.combine not in ("sum", "joint"):
            raise ValueError(f"unknown combine {self.combine!r}")
        if self.mixer != "latte" and (self.d_model // self.n_heads) % 2:
            raise ValueError("window attention needs an even head width d_model / n_heads")

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
    """Recurrent state of one layer: S (B,H,Lh,Dh), n and m (B,H,Lh).

    The recurrence keeps ``S = sum_s w_s v_s / exp(m)``, ``n = sum_s w_s / exp(m)``
    with a running maximum ``m``. Only ``S / n`` and ``m + log n`` matter, so the
    parallel form hands its state over as ``S = S/n``, ``n = 1``, ``m = m + log n``
    (``m = -inf`` with ``n = 0`` is the empty state in both).
    """

    def __init__(self, batch: int, cfg: LatteConfig, dtype=torch.float32, device=None):
        h, lh, dh = cfg.n_heads, cfg.n_latents // cfg.n_heads, cfg.d_model // cfg.n_heads
        self.S = torch.zeros(batch, h, lh, dh, dtype=dtype, device=device)
        self.n = torch.zeros(batch, h, lh, dtype=dtype, device=device)
        self.m = torch.full((batch, h, lh), -math.inf, dtype=dtype, device=device)
        # A Macchiato layer's ring of the window's keys and values (``KVCache``).
        self.window = None

    def normalised(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(log A, S/n)``: the log normaliser and the weighted mean value per latent."""
        empty = self.n <= 0
        log_a = torch.where(empty, torch.full_like(self.m, -math.inf),
                            self.m + torch.log(torch.where(empty, torch.ones_like(self.n), self.n)))
        mean = self.S / torch.where(empty, torch.ones_like(self.n), self.n)[..., None]
        return log_a, torch.where(empty[..., None], torch.zeros_like(mean), mean)

    def set_normalised(self, log_a: torch.Tensor, mean: torch.Tensor) -> None:
        self.m, self.S = log_a, mean
        self.n = torch.where(torch.isinf(log_a), torch.zeros_like(log_a), torch.ones_like(log_a))

    def detach_(self) -> "LatteState":
        """Cut the graph (truncated backpropagation through time)."""
        self.S, self.n, self.m = self.S.detach(), self.n.detach(), self.m.detach()
        return self

    def reset_(self, lanes: torch.Tensor) -> None:
        """Back to the empty state for the batch rows where ``lanes`` (bool, B) is true."""
        keep = ~lanes.to(self.S.device)
        self.S = self.S * keep[:, None, None, None].to(self.S.dtype)
        self.n = self.n * keep[:, None, None].to(self.n.dtype)
        self.m = torch.where(keep[:, None, None], self.m, torch.full_like(self.m, -math.inf))


# Tokens per chunk of the parallel form. Within a chunk the exponent range is the
# key range plus lambda * CHUNK (at most 16 with the default decay_max), far from
# EXP_RANGE; chunks hand the state on as the recurrence does.
CHUNK = 64


class LatteMix(nn.Module):
    """StableScanLatte: causal latent attention, no biases, no 1/sqrt(d) scaling.

    With ``cfg.latent_decay`` each latent also forgets: token s weighs
    ``exp(k_s - lambda (t - s))`` at time t (an extension of the paper's model).
    """

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
        if cfg.latent_decay:
            # Initial rates log-uniform over 1e-3 .. 0.2 per token (horizons of
            # 5 to 1,000 tokens), evenly spread over each head's latents.
            rates = torch.logspace(math.log10(1e-3), math.log10(0.2), l // cfg.n_heads,
                                   dtype=torch.float64).repeat(cfg.n_heads)
            rates = rates.clamp(max=0.999 * cfg.decay_max)
            self.decay_logit = nn.Parameter(torch.log(rates / (cfg.decay_max - rates)).float())
        else:
            self.decay_logit = None
        self.key_range = torch.zeros(())

    def decay(self) -> Optional[torch.Tensor]:
        """The rates lambda (H, Lh), or None without the gate."""
        if self.decay_logit is None:
            return None
        lam = self.cfg.decay_max * torch.sigmoid(self.decay_logit)
        return lam.view(self.cfg.n_heads, -1)

    def _heads(self, x: torch.Tensor, w: nn.Linear) -> torch.Tensor:
        b, t, _ = x.shape
        y = w(x)
        return y.view(b, t, self.cfg.n_heads, -1).transpose(1, 2)  # (B,H,T,.)

    def forward(self, x: torch.Tensor, state: Optional[LatteState] = None) -> torch.Tensor:
        """Parallel form over a whole sequence x: (B, T, D) -> (B, T, D).

        With ``state``, the sequence continues from it and ``state`` is replaced by
        the state after the last token (in the normalised representation of
        ``LatteState``); gradients flow through it unless the caller detaches it.
        """
        q, k, v = self._heads(x, self.wq), self._heads(x, self.wk), self._heads(x, self.wv)
        return self.wo(self.mix_heads(q, k, v, state))

    def mix_heads(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                  state: Optional[LatteState] = None) -> torch.Tensor:
        """``_mix`` of projected heads; under mixed precision the projections ran
        in bf16/f16, and the mixing (exponentials, cumulative normaliser, T x T
        products) still runs in float32."""
        return in_float32(self._mix, q, k, v, state=state)

    def _mix(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
             state: Optional[LatteState] = None) -> torch.Tensor:
        """The causal latent mixing of heads q, k (B,H,T,Lh) and v (B,H,T,Dh) -> (B,T,D),
        chunk by chunk, each chunk continuing from the state the previous one left."""
        b, h, t, lh = q.shape
        dh = v.shape[-1]
        self.key_range = (k.detach().amax(dim=2) - k.detach().amin(dim=2)).amax()
        lam = self.decay()
        if lam is not None:
            lam = lam.to(q.dtype)
        if state is not None:
            log_a, mean = state.normalised()
            log_a, mean = log_a.to(q.dtype), mean.to(q.dtype)
        else:
            log_a = torch.full((b, h, lh), -math.inf, dtype=q.dtype, device=q.device)
            mean = torch.zeros(b, h, lh, dh, dtype=q.dtype, device=q.device)
        ys = []
        for c0 in range(0, t, CHUNK):
            c1 = min(t, c0 + CHUNK)
            y, log_a, mean = self._chunk(q[:, :, c0:c1], k[:, :, c0:c1], v[:, :, c0:c1],
                                         lam, log_a, mean)
            ys.append(y)
        if state is not None:
            state.set_normalised(log_a, mean)
        y = torch.cat(ys, dim=2)  # (B,H,T,Dh)
        return y.transpose(1, 2).reshape(b, t, h * dh)

    def _chunk(self, q, k, v, lam, log_a, mean):
        """One chunk of C tokens continuing from ``(log_a, mean)`` (the state after
        the previous token: log normaliser and weighted mean value, per latent).

        With rates lambda, token j of the chunk gets the key ``k'_j = k_j + lambda j``
        and the carried state acts as one more token before the chunk with key
        ``log_a - lambda`` and value ``mean`` (per latent); the common factor
        ``exp(-lambda j)`` cancels between numerator and normaliser. VAPOR works in
        the chunk's own frame: values turned back by ``theta j``, the carried mean
        forward by ``theta``, outputs turned by ``theta j``.
        """
        c = q.shape[2]
        j = torch.arange(c, dtype=q.dtype, device=q.device)
        if lam is not None:
            kp = k + lam[None, :, None, :] * j[None, None, :, None]
            kv = log_a - lam[None]
        else:
            kp, kv = k, log_a
        if self.theta is not None:
            ang = j.double()[:, None] * self.theta.to(q.device)[None, :]  # (C, Dh/2), float64
            v = rotate_pairs(v, -ang)
            mean = rotate_pairs(mean, self.theta.to(q.device)[None, :])
        # p(s|t) = sum_l softmax_l(q_t)_l * exp(k'_{s,l}) / A'_{t,l}. Everything is
        # scaled by exp(-c), c the per-latent maximum of the chunk's keys and the
        # carried key, so each factor is at most 1: the cumulative normaliser is a
        # plain cumulative sum instead of a logcumsumexp. The clamp keeps the factors
        # above exp(-EXP_RANGE), exact while the chunk's key range stays below
        # EXP_RANGE (far terms below it are dropped, as in the recurrence's float32).
        p = torch.softmax(q, dim=-1)
        cmax = torch.maximum(kp.detach().amax(dim=2), kv.detach())[:, :, None, :]  # (B,H,1,Lh)
        right = torch.exp(torch.clamp(kp - cmax, min=-EXP_RANGE))  # exp(k' - c), (B,H,C,Lh)
        carried = bool(torch.isfinite(kv).any())  # any state carried in (one check)
        sv = torch.exp(kv[:, :, None, :] - cmax)  # exp(k_state - c), 0 for an empty state
        den = torch.cumsum(right, dim=2)  # A' exp(-c), > 0
        if carried:
            den = den + sv
        left = p / den
        att = torch.tril(left @ right.transpose(-1, -2))  # (B,H,C,C)
        y = att @ v  # (B,H,C,Dh)
        if carried:
            y = y + (left * sv) @ mean
        # The state after the chunk's last token.
        last = den[:, :, -1:, :]  # (B,H,1,Lh)
        new_mean = (right / last).transpose(-1, -2) @ v
        if carried:
            new_mean = new_mean + (sv / last).transpose(-1, -2) * mean
        log_last = (torch.log(last) + cmax)[:, :, 0, :]  # log A' after the last token
        new_log_a = log_last - lam[None] * (c - 1) if lam is not None else log_last
        if self.theta is not None:
            y = rotate_pairs(y, ang)
            new_mean = rotate_pairs(new_mean, ang[-1][None, :])
        return y, new_log_a, new_mean

    def step(self, x: torch.Tensor, st: LatteState) -> torch.Tensor:
        """Recurrent form for one token x: (B, D); updates ``st`` in place."""
        y, _ = self.step_heads(x, st)
        return self.wo(y.to(x.dtype))

    def step_heads(self, x: torch.Tensor, st: LatteState):
        """The recurrence for one token x (B, D): the heads' outputs before
        ``Wo`` (B, D, in the state's dtype) and the query logits (B, H, Lh)."""
        b, d = x.shape
        h = self.cfg.n_heads
        dt = st.S.dtype
        q = self.wq(x).to(dt).view(b, h, -1)
        k = self.wk(x).to(dt).view(b, h, -1)
        v = self.wv(x).to(dt).view(b, h, -1)
        p = torch.softmax(q, dim=-1)
        m = st.m
        lam = self.decay()
        if lam is not None:
            m = m - lam.to(dt)[None]
        m_new = torch.maximum(m, k)
        r = torch.exp(m - m_new)
        a = torch.exp(k - m_new)
        S = st.S
        if self.theta is not None:
            S = rotate_pairs(S, self.theta.to(x.device))
        st.S = S * r[..., None] + a[..., None] * v[:, :, None, :]
        st.n = st.n * r + a
        st.m = m_new
        y = ((p / st.n)[..., None] * st.S).sum(dim=2)  # (B,H,Dh)
        return y.reshape(b, d), q


class Mlp(nn.Module):
    def __init__(self, cfg: LatteConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.d_model, cfg.d_ff)
        self.fc2 = nn.Linear(cfg.d_ff, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class Block(nn.Module):
    """A pre-LayerNorm block. Its mixer is causal Latte or, with
    ``cfg.window``, Latte-Macchiato: Latte plus causal softmax attention over
    the last ``window`` tokens (``attention.CausalAttention`` with the distance
    bias, its own ``Wq``, ``Wk``, ``Wv``), both through Latte's ``Wo``:

    * ``"sum"`` (v3/v4): ``Wo (y_latte + y_window)``;
    * ``"joint"`` (v5, "full normalisation"): one distribution over the head's
      latents and the window's tokens. With latent logits ``q_l`` (Latte's
      query before its softmax) and window scores ``a_s``, the weights are
      ``exp(q_l) / Z`` and ``exp(a_s) / Z`` with
      ``Z = sum_l exp(q_l) + sum_s exp(a_s)``, and the head's output is
      ``(sum_l exp(q_l) M_l + sum_s exp(a_s) v_s) / Z``, ``M_l`` the latent's
      weighted mean value (Latte's ``S_l / n_l``). Latte's own output is
      ``sum_l softmax(q)_l M_l`` and the window's ``sum_s softmax(a)_s v_s``,
      so this is ``g y_latte + (1 - g) y_window`` with
      ``g = sigmoid(logsumexp_l q_l - logsumexp_s a_s)`` per head and token:
      the two terms weighed by their partition functions. Nearby tokens are
      still seen by both terms; what changes is that the weights sum to 1,
      the reviewers' objection to the sum.

    The output projection is shared (one ``Wo``), so the two combinations have
    the same parameters and differ only in the rule.
    """

    def __init__(self, cfg: LatteConfig):
        super().__init__()
        from .attention import CausalAttention

        self.cfg = cfg
        self.ln1 = nn.LayerNorm(cfg.d_model, eps=cfg.ln_eps)
        self.latte = self.local = self.attn = None
        if cfg.mixer == "attention":
            self.attn = CausalAttention(cfg.d_model, cfg.n_heads, cfg.window, pos="bias", out=True)
        else:
            self.latte = LatteMix(cfg)
        if cfg.mixer == "macchiato":
            self.local = CausalAttention(cfg.d_model, cfg.n_heads, cfg.window, pos="bias", out=False)
        self.ln2 = nn.LayerNorm(cfg.d_model, eps=cfg.ln_eps)
        self.mlp = Mlp(cfg)

    def _combine(self, y_latte, q, y_win, lse_win):
        """``y_latte``, ``y_win`` (..., D), ``q`` (..., H, Lh), ``lse_win``
        (..., H) -> the heads' combined outputs (..., D), before ``Wo``."""
        if self.cfg.combine == "sum":
            return y_latte + y_win.to(y_latte.dtype)
        h = self.cfg.n_heads
        g = torch.sigmoid(torch.logsumexp(q, dim=-1) - lse_win.to(q.dtype))[..., None]
        shape = y_latte.shape
        yl = y_latte.reshape(*shape[:-1], h, -1)
        yw = y_win.to(yl.dtype).reshape(*shape[:-1], h, -1)
        return (g * yl + (1 - g) * yw).reshape(shape)

    def mix(self, x: torch.Tensor, state: Optional[LatteState] = None) -> torch.Tensor:
        """The sequence mixer of normalised inputs x (B, T, D) -> (B, T, D)."""
        if self.attn is not None:
            if state is not None:
                raise ValueError("an attention model trains on fresh windows: no carried state")
            return self.attn(x)
        if self.local is None:
            return self.latte(x, state)
        if state is not None:
            raise ValueError("a Macchiato model trains on fresh windows: no carried state "
                             "(leave --stream-windows at 0)")
        lt = self.latte
        q, k, v = lt._heads(x, lt.wq), lt._heads(x, lt.wk), lt._heads(x, lt.wv)
        y_latte = lt.mix_heads(q, k, v, None)  # (B,T,D), before Wo
        # (B,T,D), (B,H,T); the log partition functions only for "joint".
        y_win, lse = self.local.attend(x, need_lse=self.cfg.combine == "joint")
        lse = None if lse is None else lse.transpose(1, 2)
        y = self._combine(y_latte, q.transpose(1, 2), y_win, lse)
        return lt.wo(y)

    def forward(self, h: torch.Tensor, state: Optional[LatteState] = None) -> torch.Tensor:
        h = h + self.mix(self.ln1(h), state)
        return h + self.mlp(self.ln2(h))

    def step(self, h: torch.Tensor, st: LatteState) -> torch.Tensor:
        x = self.ln1(h)
        if self.attn is not None:
            h = h + self.attn.step(x.to(st.S.dtype), st.window).to(h.dtype)
        elif self.local is None:
            h = h + self.latte.step(x, st)
        else:
            y_latte, q = self.latte.step_heads(x, st)
            y_win, lse = self.local.step_attend(x.to(st.S.dtype), st.window)
            h = h + self.latte.wo(self._combine(y_latte, q, y_win, lse).to(h.dtype))
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

    def forward(self, tokens: torch.Tensor, states: Optional[List[LatteState]] = None,
                pos: int = 0) -> torch.Tensor:
        """tokens (B, T) -> logits (B, T, V), parallel form.

        With ``states`` (one per layer, from ``new_state`` or an earlier call), the
        sequences continue from them at position ``pos`` and the states are updated
        to the end of ``tokens``: a stream cut into windows gives the same logits as
        one long sequence.
        """
        h = self.tok_emb(tokens)
        pe = self.pe(pos, tokens.shape[1], tokens.device)
        if pe is not None:
            h = h + pe[None]
        for i, blk in enumerate(self.blocks):
            h = blk(h, None if states is None else states[i])
        return self.head(self.ln_f(h))

    # Tokens a full-attention model's recurrent form can hold (``new_state``).
    attention_capacity = 4096

    def new_state(self, batch: int = 1, dtype=torch.float32) -> List[LatteState]:
        states = []
        for blk in self.blocks:
            st = LatteState(batch, self.cfg, dtype, self.head.weight.device)
            if blk.local is not None:
                st.window = blk.local.new_cache(batch, dtype=dtype)
            if blk.attn is not None:
                # Full attention: a KV cache of ``attention_capacity`` tokens.
                st.window = blk.attn.new_cache(batch, self.attention_capacity, dtype=dtype)
            states.append(st)
        return states

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
