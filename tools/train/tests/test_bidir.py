import math

import numpy as np
import pytest
import torch

from latte_train.bidir import BidLatteMix, ClassifierConfig, LatteClassifier
from latte_train.model import LatteConfig, LatteMix
from fixture_weights import layer_inputs, load_fixture, load_latte

pytestmark = pytest.mark.usefixtures("float64_default")


def official_pair():
    fx = load_fixture()["layer"]
    bid = BidLatteMix(fx["D"], fx["H"], fx["L"]).double()
    load_latte(bid, fx["D"], fx["L"])  # same parameter names as the causal layer
    causal = LatteMix(LatteConfig(vocab_size=4, d_model=fx["D"], n_heads=fx["H"],
                                  n_latents=fx["L"], n_layers=1)).double()
    load_latte(causal, fx["D"], fx["L"])
    return fx, bid, causal


def test_bidirectional_layer_matches_official_fixture():
    fx, bid, causal = official_pair()
    x = layer_inputs(fx["T"], fx["D"])
    with torch.no_grad():
        y = bid(x[None])[0]
        yc = causal(x[None])[0]
    want = torch.tensor(fx["bidirectional_Y"])
    assert torch.allclose(y, want, atol=1e-10, rtol=0)
    # The two forms agree at the last position only.
    assert torch.allclose(y[-1], yc[-1], atol=1e-12, rtol=0)
    assert (y[0] - yc[0]).abs().max() > 1e-3


def definition(x, wq, wk, wv, wo, h, keep):
    """O(T^2) float64: y_t = Wo concat_h sum_s p(s|t) v_s,
    p(s|t) = sum_l softmax_l(q_t)_l * exp(k_{s,l}) / sum_{s' kept} exp(k_{s',l})."""
    t_len, d = x.shape
    q, k, v = x @ wq.T, x @ wk.T, x @ wv.T
    lh, dh = q.shape[1] // h, d // h
    y = np.zeros((t_len, d))
    for head in range(h):
        for t in range(t_len):
            qt = q[t, head * lh:(head + 1) * lh]
            p = np.exp(qt - qt.max())
            p /= p.sum()
            for s in range(t_len):
                if not keep[s]:
                    continue
                w = 0.0
                for li in range(lh):
                    col = k[:, head * lh + li]
                    num = math.exp(col[s])
                    den = sum(math.exp(col[r]) for r in range(t_len) if keep[r])
                    w += p[li] * num / den
                y[t, head * dh:(head + 1) * dh] += w * v[s, head * dh:(head + 1) * dh]
    return y @ wo.T


def test_bidirectional_layer_matches_the_quadratic_definition_with_padding():
    torch.manual_seed(3)
    d, h, l, t = 8, 2, 6, 7
    bid = BidLatteMix(d, h, l).double()
    x = torch.randn(2, t, d) * 2.0
    mask = torch.tensor([[True] * t, [True] * 4 + [False] * 3])
    with torch.no_grad():
        y = bid(x, mask)
    w = [m.weight.detach().numpy() for m in (bid.wq, bid.wk, bid.wv, bid.wo)]
    for b in range(2):
        want = definition(x[b].numpy(), *w, h, mask[b].numpy())
        got = y[b].numpy()
        # Pad rows still get outputs (from the real tokens); real rows must match.
        assert np.abs(got - want).max() < 1e-12
    # Padding changes nothing for the real tokens: the same sequence alone.
    with torch.no_grad():
        alone = bid(x[1:2, :4])
    assert torch.allclose(alone[0], y[1, :4], atol=1e-12, rtol=0)


def test_classifier_pools_over_real_tokens_only():
    torch.manual_seed(4)
    cfg = ClassifierConfig(d_model=16, n_layers=2, n_heads=2, n_latents=4, n_classes=3, max_seq_len=32)
    model = LatteClassifier(cfg).double().eval()
    a = torch.randint(0, 256, (1, 9))
    b = torch.randint(0, 256, (1, 5))
    batch = torch.zeros(2, 9, dtype=torch.long)
    batch[0], batch[1, :5] = a[0], b[0]
    mask = torch.zeros(2, 9, dtype=torch.bool)
    mask[0], mask[1, :5] = True, True
    with torch.no_grad():
        both = model(batch, mask)
        la, lb = model(a), model(b)
    assert both.shape == (2, 3)
    assert torch.allclose(both[0], la[0], atol=1e-12, rtol=0)
    assert torch.allclose(both[1], lb[0], atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="longer than max_seq_len"):
        model(torch.zeros(1, 33, dtype=torch.long))


def test_latent_means_are_convex_combinations_of_the_values():
    torch.manual_seed(5)
    bid = BidLatteMix(8, 2, 6).double()
    x = torch.randn(1, 11, 8) * 5.0
    with torch.no_grad():
        means = bid.latent_means(x)  # (1, H, Lh, Dh)
        v = bid.wv(x).view(1, 11, 2, 4).transpose(1, 2)  # (1, H, T, Dh)
    lo = v.amin(dim=2, keepdim=True)
    hi = v.amax(dim=2, keepdim=True)
    assert bool(((means >= lo - 1e-12) & (means <= hi + 1e-12)).all())


def test_attention_baseline_ignores_padding():
    from latte_train.bidir import AttentionMix
    torch.manual_seed(6)
    att = AttentionMix(8, 2).double()
    x = torch.randn(1, 6, 8)
    mask = torch.tensor([[True] * 4 + [False] * 2])
    with torch.no_grad():
        padded = att(x, mask)
        alone = att(x[:, :4])
        unmasked = att(x)
    assert torch.allclose(padded[0, :4], alone[0], atol=1e-12, rtol=0)
    assert (unmasked[0, :4] - alone[0]).abs().max() > 1e-6  # the mask did something


def test_classifier_training_smoke(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path
    from latte_train.spam import write_split
    rng = np.random.default_rng(0)
    def msgs(n):
        out = []
        for i in range(n):
            spam = i % 2
            body = bytes(rng.integers(97, 123, 40).tolist())
            out.append(((b"BUY NOW " if spam else b"hello ") + body, spam))
        return out
    for split, n in (("train", 64), ("val", 16), ("test", 16)):
        write_split(tmp_path / f"{split}.npz", msgs(n))
    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, "-m", "latte_train.train_classifier", "--data", str(tmp_path),
                          "--out", str(tmp_path / "run"), "--d-model", "16", "--layers", "1",
                          "--heads", "2", "--latents", "4", "--max-bytes", "32", "--batch", "8",
                          "--epochs", "2", "--threads", "1"],
                         cwd=root, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["test"]["n"] == 16 and sum(map(sum, result["test"]["confusion"])) == 16
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_ngram_stem_window_and_zero_start():
    from latte_train.bidir import ngram_window

    torch.manual_seed(3)
    e = torch.randn(2, 5, 4, dtype=torch.float64)
    w = ngram_window(e, 3)
    for t in range(5):
        for s in range(3):
            want = e[:, t - s] if t - s >= 0 else torch.zeros(2, 4, dtype=torch.float64)
            assert torch.equal(w[:, t, 4 * s:4 * (s + 1)], want)
    # At initialisation the stem adds nothing: the official model's outputs.
    cfg = ClassifierConfig(d_model=16, n_layers=1, n_heads=2, n_latents=4, max_seq_len=32)
    plain = LatteClassifier(cfg)
    stem = LatteClassifier(ClassifierConfig(**{**cfg.__dict__, "conv_width": 4}))
    missing, unexpected = stem.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing) == ["stem.bias", "stem.weight"] and not unexpected
    x = torch.randint(0, 256, (3, 20))
    assert torch.allclose(stem(x), plain(x))
    with torch.no_grad():
        stem.stem.weight.normal_()
    assert not torch.allclose(stem(x), plain(x))
