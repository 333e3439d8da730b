"""The Q8_0 and f16 references (quantized.py) against values worked out by hand from the
definition in crates/latte-gguf/FORMAT.md and ggml's reference quantizer."""
import numpy as np
import torch
from torch import nn

from latte_train.quantized import dequantize_q8_0, f16, q8_0, quantize_q8_0


def test_scale_is_amax_over_127_rounded_to_f16():
    x = torch.arange(-16, 16, dtype=torch.float64) * 0.5  # amax 8 (at -8)
    d, qs = quantize_q8_0(x)
    assert d.shape == (1,) and qs.shape == (1, 32)
    assert float(d[0]) == float(np.float16(np.float32(8.0) / np.float32(127.0)))
    assert float(qs[0, 0]) == -127.0  # -8 * (127/8)
    # 0.5 * 15.875 = 7.9375 -> 8
    assert float(qs[0, 17]) == 8.0
    assert float(qs[0, 16]) == 0.0


def test_rounding_is_half_away_from_zero_in_f32():
    # amax 127: d = 1 and id = 1 exactly, so x * id = x.
    x = torch.zeros(32, dtype=torch.float64)
    x[0] = 127.0
    x[1], x[2], x[3], x[4] = 2.5, -2.5, 3.5, 0.5
    # The f32 just below 0.5: roundf gives 0 (adding 0.5 in f32 would give 1).
    x[5] = float(np.nextafter(np.float32(0.5), np.float32(0.0)))
    _, qs = quantize_q8_0(x)
    assert qs[0, 1:6].tolist() == [3.0, -3.0, 4.0, 1.0, 0.0]


def test_zero_block_has_zero_scale_and_quants():
    d, qs = quantize_q8_0(torch.zeros(64, dtype=torch.float64))
    assert d.tolist() == [0.0, 0.0] and not qs.any()
    assert not dequantize_q8_0(d, qs).any()


def test_rows_not_a_multiple_of_32_are_refused():
    try:
        quantize_q8_0(torch.zeros(33))
    except ValueError as e:
        assert "multiple of 32" in str(e)
    else:
        raise AssertionError("33 values were accepted")


def test_linear_multiplies_q8_0_weights_with_q8_0_inputs():
    torch.manual_seed(0)
    lin = nn.Linear(64, 3).double()
    # Weights and input whose blocks each hold a +-127, with integer values:
    # d = 1 everywhere, so the Q8_0 product is the exact integer product.
    w = torch.randint(-127, 128, (3, 64)).double()
    w[:, 0], w[:, 32] = 127.0, -127.0
    x = torch.randint(-127, 128, (1, 64)).double()
    x[0, 5], x[0, 40] = -127.0, 127.0
    with torch.no_grad():
        lin.weight.copy_(w)
        lin.bias.copy_(torch.tensor([0.25, -1.0, 0.0]))
        want = lin(x)
        with q8_0(lin):
            got = lin(x)
        assert torch.equal(got, want)
        # A non-representable input is quantized first: (1/3 of the block's
        # largest value) lands on round(127/3) = 42 steps of 1/127.
        y = torch.zeros(1, 64, dtype=torch.float64)
        y[0, 0], y[0, 1] = 1.0, 1.0 / 3.0
        d = float(np.float16(np.float32(1.0) / np.float32(127.0)))
        with q8_0(lin):
            got = lin(y)
        want = d * (127.0 * w[:, 0] + 42.0 * w[:, 1]) + lin.bias
        assert torch.allclose(got[0], want, rtol=1e-12, atol=0)
    # Leaving the context restores the float layer.
    with torch.no_grad():
        assert torch.equal(lin(y), y @ w.T + lin.bias)


def test_embedding_rows_are_dequantized_inside_the_context_only():
    emb = nn.Embedding(2, 32).double()
    with torch.no_grad():
        emb.weight.copy_(torch.linspace(-1, 1, 64, dtype=torch.float64).reshape(2, 32))
        before = emb.weight.clone()
        with q8_0(emb):
            inside = emb(torch.tensor([0, 1]))
        assert torch.equal(emb.weight, before)
    d, qs = quantize_q8_0(before)
    assert torch.equal(inside, dequantize_q8_0(d, qs))
    assert not torch.equal(inside, before)


def test_f16_rounds_matrices_and_embeddings_to_nearest_f16_inside_the_context_only():
    # f16 has 10 fraction bits: next to 1.0 its steps are 2^-10.
    step = 2.0 ** -10
    lin = nn.Linear(2, 1).double()
    emb = nn.Embedding(1, 2).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0 + 0.75 * step, 1.0 + 0.25 * step]], dtype=torch.float64))
        lin.bias.fill_(1.0 + 0.25 * step)  # biases stay f32 in an f16 file
        emb.weight.copy_(torch.tensor([[-(1.0 + 0.75 * step), 3.0]], dtype=torch.float64))
        w0, b0, e0 = lin.weight.clone(), lin.bias.clone(), emb.weight.clone()
        model = nn.ModuleList([lin, emb])
        with f16(model):
            assert lin.weight.tolist() == [[1.0 + step, 1.0]]
            assert lin.bias.tolist() == [1.0 + 0.25 * step]
            assert emb.weight.tolist() == [[-(1.0 + step), 3.0]]
            y = lin(torch.ones(1, 2, dtype=torch.float64))
            assert y.tolist() == [[2.0 + step + 1.0 + 0.25 * step]]
        assert torch.equal(lin.weight, w0) and torch.equal(lin.bias, b0) and torch.equal(emb.weight, e0)
