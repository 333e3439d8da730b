import torch

from latte_train.attention import CausalAttention, reference


def _check(window: int, start: int = 0) -> None:
    torch.manual_seed(7 + window)
    att = CausalAttention(16, 2, window=window).double()
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


def test_macchiato_sum_and_joint_match_their_definitions():
    from latte_train.attention import MacchiatoMix, macchiato_reference
    from latte_train.model import LatteConfig

    cfg = LatteConfig(d_model=16, n_heads=2, n_latents=6, n_layers=1, pos_encoding="none")
    for combine in ("sum", "joint"):
        torch.manual_seed(3)
        mix = MacchiatoMix(cfg, window=3, combine=combine).double()
        x = torch.randn(1, 9, 16, dtype=torch.float64)
        want = macchiato_reference(mix, x[0])
        got = mix(x)[0]
        assert torch.allclose(got, want, atol=1e-10, rtol=0), (combine, (got - want).abs().max())
    # The two combinations differ (the joint weights sum to 1).
    torch.manual_seed(3)
    a = MacchiatoMix(cfg, window=3, combine="sum").double()
    torch.manual_seed(3)
    b = MacchiatoMix(cfg, window=3, combine="joint").double()
    assert not torch.allclose(a(x), b(x))
