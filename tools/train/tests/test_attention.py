import math

import torch

from latte_train.attention import CausalAttention, reference


def _check(window: int, start: int = 0, pos: str = "rope") -> None:
    torch.manual_seed(7 + window)
    att = CausalAttention(16, 2, window=window, pos=pos).double()
    if pos == "bias":
        with torch.no_grad():  # slopes that matter at these sizes
            att.slope_log.copy_(torch.log(torch.tensor([0.3, 0.05], dtype=torch.float64)))
    x = torch.randn(1, 11, 16, dtype=torch.float64)
    want = reference(att, x[0], start)
    got = att(x, start=start)[0]
    assert torch.allclose(got, want, atol=1e-12, rtol=0), (got - want).abs().max()
    if start == 0:
        cache = att.new_cache(1, max_tokens=11, dtype=torch.float64)
        rec = torch.stack([att.step(x[:, t], cache)[0] for t in range(11)])
        assert torch.allclose(rec, want, atol=1e-12, rtol=0), (rec - want).abs().max()
        assert cache.k.shape[2] == (window or 11)  # a window's cache never grows


def test_full_attention_parallel_and_recurrent_match_the_definition():
    _check(0)


def test_sliding_window_parallel_and_ring_buffer_match_the_definition():
    _check(4)  # wraps the ring several times in 11 tokens
    _check(1)  # only the token itself


def test_rope_makes_scores_depend_on_distance_only():
    _check(0, start=5)
    _check(3, start=1000)
    torch.manual_seed(1)
    att = CausalAttention(16, 2, window=0).double()
    x = torch.randn(1, 6, 16, dtype=torch.float64)
    assert torch.allclose(att(x, start=0), att(x, start=12345), atol=1e-9)


def test_distance_bias_parallel_and_ring_buffer_match_the_definition():
    _check(0, pos="bias")
    _check(4, pos="bias")
    # The bias depends on the distance only: the start position is irrelevant.
    torch.manual_seed(2)
    att = CausalAttention(16, 2, window=3, pos="bias").double()
    x = torch.randn(1, 7, 16, dtype=torch.float64)
    assert torch.equal(att(x, start=0), att(x, start=10**7))


def test_fused_and_written_out_scores_give_the_same_values_and_gradients():
    # attend() without need_lse folds the distance bias into the queries and
    # keys; with it, the scores are written out with the bias added. The two
    # must agree in the outputs and in every gradient, the slopes' included.
    for window, pos in ((0, "bias"), (5, "bias"), (5, "rope")):
        torch.manual_seed(11 + window)
        att = CausalAttention(16, 2, window=window, pos=pos, out=False).double()
        if pos == "bias":
            with torch.no_grad():
                att.slope_log.copy_(torch.log(torch.tensor([0.7, 0.02], dtype=torch.float64)))
        x = torch.randn(3, 13, 16, dtype=torch.float64)
        w = torch.randn(3, 13, 16, dtype=torch.float64)
        got = []
        for need_lse in (False, True):
            att.zero_grad()
            y, _ = att.attend(x, need_lse=need_lse)
            (y * w).sum().backward()
            got.append((y.detach(), [p.grad.clone() for p in att.parameters()]))
        (y0, g0), (y1, g1) = got
        assert torch.allclose(y0, y1, atol=1e-12, rtol=0), (y0 - y1).abs().max()
        assert len(g0) == (4 if pos == "bias" else 3)
        for a, b in zip(g0, g1):
            assert torch.allclose(a, b, atol=1e-10, rtol=0), (a - b).abs().max()


def test_distance_bias_penalises_far_tokens():
    # Identical keys and values except the value: the nearer token must win.
    att = CausalAttention(4, 1, window=0, pos="bias", out=False).double()
    with torch.no_grad():
        att.wq.weight.zero_()
        att.wk.weight.zero_()
        att.wv.weight.copy_(torch.eye(4, dtype=torch.float64))
        att.slope_log.fill_(0.0)  # slope 1 per token
    x = torch.tensor([[[1.0, 0, 0, 0], [0, 1.0, 0, 0]]], dtype=torch.float64)
    y = att(x)[0, 1].detach()
    w_near = 1 / (1 + math.exp(-1))
    assert abs(float(y[1]) - w_near) < 1e-12 and abs(float(y[0]) - (1 - w_near)) < 1e-12


def _macchiato_definition(blk, x):
    """A Macchiato block's mixer (before the residual), float64 loops: Latte's
    term with the decay weights summed over the whole prefix directly (no
    running maximum), the window's from ``reference_heads``, combined by the
    rule's definition (for "joint": one normaliser over latents and window)."""
    from latte_train.attention import reference_heads

    x = x.to(torch.float64)
    t, d = x.shape
    lt, cfg = blk.latte, blk.cfg
    h, dh, lh = cfg.n_heads, d // cfg.n_heads, cfg.n_latents // cfg.n_heads
    W = lambda m: m.weight.detach().to(torch.float64)  # noqa: E731
    q, k, v = x @ W(lt.wq).T, x @ W(lt.wk).T, x @ W(lt.wv).T
    lam = lt.decay().detach().double().reshape(-1) if lt.decay_logit is not None else None
    win = reference_heads(blk.local, x)
    out = torch.zeros(t, d, dtype=torch.float64)
    for ti in range(t):
        y = torch.zeros(d, dtype=torch.float64)
        for hh in range(h):
            vs = slice(hh * dh, (hh + 1) * dh)
            el, means = [], []
            for li in range(hh * lh, (hh + 1) * lh):
                w = torch.tensor([math.exp(float(k[s, li]) - (float(lam[li]) * (ti - s) if lam is not None else 0.0))
                                  for s in range(ti + 1)], dtype=torch.float64)
                means.append((w[:, None] * v[: ti + 1, vs]).sum(0) / w.sum())
                el.append(math.exp(float(q[ti, li])))
            scores, vals = win[ti][hh]
            ea = [math.exp(a) for a in scores]
            y_l = sum(e * m for e, m in zip(el, means))
            y_w = sum(e * vv for e, vv in zip(ea, vals))
            if cfg.combine == "joint":
                y[vs] = (y_l + y_w) / (sum(el) + sum(ea))
            else:
                y[vs] = y_l / sum(el) + y_w / sum(ea)
        out[ti] = W(lt.wo) @ y
    return out


def test_macchiato_block_parallel_and_recurrent_match_the_definition():
    from latte_train.model import LatteConfig, LatteLM

    for combine in ("sum", "joint"):
        cfg = LatteConfig(d_model=16, n_heads=2, n_latents=6, n_layers=1, pos_encoding="none",
                          latent_decay=True, window=3, combine=combine)
        torch.manual_seed(3)
        model = LatteLM(cfg).double()
        blk = model.blocks[0]
        x = torch.randn(1, 9, 16, dtype=torch.float64)
        want = _macchiato_definition(blk, x[0])
        got = blk.mix(x)[0]
        assert torch.allclose(got, want, atol=1e-10, rtol=0), (combine, (got - want).abs().max())
        # The whole model, recurrent (ring buffer) against parallel.
        toks = torch.randint(0, 256, (1, 12))
        par = model(toks)[0]
        st = model.new_state(1, torch.float64)
        rec = torch.stack([model.step(toks[:, i], i, st)[0] for i in range(12)])
        assert torch.allclose(par, rec, atol=1e-9, rtol=0), (combine, (par - rec).abs().max())
        assert st[0].window.k.shape[2] == 3


def test_the_two_combinations_differ_and_share_parameters():
    from latte_train.model import LatteConfig, LatteLM

    outs, names = [], []
    for combine in ("sum", "joint"):
        cfg = LatteConfig(d_model=16, n_heads=2, n_latents=6, n_layers=1, pos_encoding="none",
                          window=3, combine=combine)
        torch.manual_seed(3)
        m = LatteLM(cfg).double()
        outs.append(m(torch.arange(8)[None]))
        names.append(sorted(n for n, _ in m.named_parameters()))
    assert names[0] == names[1]
    assert not torch.allclose(outs[0], outs[1])


def test_attention_model_parallel_and_recurrent_agree():
    from latte_train.model import LatteConfig, LatteLM

    for window in (0, 3):
        cfg = LatteConfig(d_model=16, n_heads=2, n_latents=6, n_layers=2, pos_encoding="none",
                          window=window, mixer="attention")
        torch.manual_seed(5)
        model = LatteLM(cfg).double()
        assert all(b.latte is None and b.attn is not None for b in model.blocks)
        toks = torch.randint(0, 256, (1, 10))
        par = model(toks)[0]
        st = model.new_state(1, torch.float64)
        rec = torch.stack([model.step(toks[:, i], i, st)[0] for i in range(10)])
        assert torch.allclose(par, rec, atol=1e-9, rtol=0), (window, (par - rec).abs().max())


def test_mixed_precision_keeps_scores_and_bias_in_float32():
    # Under bf16 autocast only the projections may round: the distance bias folded
    # into the keys reaches beta_h T sqrt(Dh) (about 360 here), where bfloat16's
    # spacing is 2, so a bias rounded to bf16 moves the outputs by ~0.1; the
    # projections alone move them by ~0.006.
    torch.manual_seed(3)
    att = CausalAttention(128, 4, window=128, pos="bias", out=False)
    x = torch.randn(2, 256, 128)
    for need_lse in (False, True):
        want, _ = att.attend(x, need_lse=need_lse)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got, _ = att.attend(x, need_lse=need_lse)
        assert got.dtype == torch.float32
        err = (got - want).abs().max().item()
        assert err < 0.02, (need_lse, err)


def test_mixed_precision_keeps_macchiato_latte_mixing_in_float32():
    from latte_train.model import LatteConfig, LatteLM, LatteMix

    cfg = LatteConfig(d_model=32, n_heads=2, n_latents=8, n_layers=1, mixer="macchiato", window=4,
                      pos_encoding="none")
    model = LatteLM(cfg)
    seen = []
    mix = LatteMix._mix

    def spy(self, q, k, v, state=None):
        seen.append((q.dtype, k.dtype, v.dtype))
        return mix(self, q, k, v, state)

    LatteMix._mix = spy
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(torch.randint(0, 256, (1, 9)))
    finally:
        LatteMix._mix = mix
    assert seen == [(torch.float32,) * 3]
