"""The decay gate, the parallel form continuing from a state, stream-training lanes
and the corpus split rules."""
import math

import numpy as np
import pytest
import torch

from latte_train.data import hash_split, split_source
from latte_train.export import load_safetensors, save_safetensors
from latte_train.model import CHUNK, LatteConfig, LatteLM, LatteMix, LatteState
from latte_train.train import Lanes


pytestmark = pytest.mark.usefixtures("float64_default")


def gated_mix(seed, pos="none", d=16, h=2, l=8):
    torch.manual_seed(seed)
    cfg = LatteConfig(d_model=d, n_heads=h, n_latents=l, n_layers=1, pos_encoding=pos,
                      latent_decay=True)
    mix = LatteMix(cfg).double()
    with torch.no_grad():
        mix.decay_logit.normal_(0.0, 2.0)  # rates spread over (0, decay_max)
    return cfg, mix


def quadratic_gated(wq, wk, wv, wo, lam, heads, x):
    """The gate's definition, O(T^2) in numpy float64, written from the formula alone:
    y_t = sum_l p_tl sum_{s<=t} w_tls v_s / sum_{s<=t} w_tls, w_tls = exp(k_sl - lam_l (t-s))."""
    T, D = x.shape
    q, k, v = x @ wq.T, x @ wk.T, x @ wv.T
    lh, dh = q.shape[1] // heads, D // heads
    out = np.zeros((T, D))
    for t in range(T):
        for hd in range(heads):
            qh = q[t, hd * lh:(hd + 1) * lh]
            p = np.exp(qh - qh.max())
            p /= p.sum()
            for j in range(lh):
                li = hd * lh + j
                w = np.array([math.exp(k[s, li] - lam[li] * (t - s)) for s in range(t + 1)])
                out[t, hd * dh:(hd + 1) * dh] += p[j] * (w @ v[:t + 1, hd * dh:(hd + 1) * dh]) / w.sum()
    return out @ wo.T


def test_gate_parallel_and_recurrent_match_the_definition():
    cfg, mix = gated_mix(11)
    T = CHUNK + 23  # more than one chunk
    x = torch.randn(T, 16)
    lam = mix.decay().detach().reshape(-1).numpy()
    assert lam.min() > 0 and lam.max() < cfg.decay_max
    ref = quadratic_gated(*(m.weight.detach().numpy() for m in (mix.wq, mix.wk, mix.wv, mix.wo)),
                          lam, cfg.n_heads, x.numpy())
    with torch.no_grad():
        par = mix(x[None])[0].numpy()
        st = LatteState(1, cfg, torch.float64)
        rec = torch.stack([mix.step(x[t][None], st)[0] for t in range(T)]).numpy()
    assert np.abs(par - ref).max() < 1e-12
    assert np.abs(rec - ref).max() < 1e-12
    # The gate changes the output (rates are far from zero).
    with torch.no_grad():
        mix.decay_logit.fill_(-40.0)
        assert np.abs(mix(x[None])[0].numpy() - ref).max() > 1e-3


@pytest.mark.parametrize("pos", ["sinusoidal", "vapor", "none"])
@pytest.mark.parametrize("gate", [False, True])
def test_windows_with_carried_state_equal_the_recurrence(pos, gate):
    """A stream cut into windows, each continuing from the state the last one left,
    gives the recurrent form's logits and state (float64, across window and chunk
    boundaries)."""
    torch.manual_seed(3)
    cfg = LatteConfig(d_model=32, n_layers=2, n_heads=4, n_latents=16, pos_encoding=pos,
                      latent_decay=gate)
    model = LatteLM(cfg).double()
    if gate:
        with torch.no_grad():
            for b in model.blocks:
                b.latte.decay_logit.normal_(0.0, 2.0)
    x = torch.randint(0, 256, (3, 170))
    with torch.no_grad():
        st_rec = model.new_state(3, torch.float64)
        rec = torch.stack([model.step(x[:, t], t, st_rec) for t in range(x.shape[1])], 1)
        st_par = model.new_state(3, torch.float64)
        win = torch.cat([model(x[:, a:a + 71], st_par, a) for a in range(0, 170, 71)], 1)
    assert (win - rec).abs().max() < 1e-6
    assert (win - rec).abs().max() < 1e-12  # in fact exact to rounding
    for a, b in zip(st_rec, st_par):
        (la, ma), (lb, mb) = a.normalised(), b.normalised()
        assert (la - lb).abs().max() < 1e-12 and (ma - mb).abs().max() < 1e-12
    # Continuing matters: the second window from a fresh state differs.
    with torch.no_grad():
        fresh = model(x[:, 71:142])
    assert (fresh - rec[:, 71:142]).abs().max() > 1e-3


def test_parallel_state_continues_the_recurrence():
    """State handed over from the recurrent form (S, n, m with a running maximum)
    to the parallel form, and back."""
    cfg, mix = gated_mix(12, pos="vapor")
    x = torch.randn(1, 40, 16)
    with torch.no_grad():
        st = LatteState(1, cfg, torch.float64)
        full = torch.stack([mix.step(x[:, t], st) for t in range(40)], 1)
        st2 = LatteState(1, cfg, torch.float64)
        first = torch.stack([mix.step(x[:, t], st2) for t in range(15)], 1)
        second = mix(x[:, 15:30], st2)  # parallel, from the recurrent state
        third = torch.stack([mix.step(x[:, t], st2) for t in range(30, 40)], 1)  # and back
    assert (torch.cat([first, second, third], 1) - full).abs().max() < 1e-12


def test_state_reset_and_detach():
    cfg = LatteConfig(d_model=16, n_heads=2, n_latents=4, n_layers=1)
    st = LatteState(2, cfg, torch.float64)
    st.S, st.n, st.m = st.S + 1.0, st.n + 2.0, torch.zeros_like(st.m).requires_grad_()
    st.detach_().reset_(torch.tensor([True, False]))
    assert not st.m.requires_grad
    assert (st.S[0] == 0).all() and (st.n[0] == 0).all() and torch.isinf(st.m[0]).all()
    assert (st.S[1] == 1).all() and (st.n[1] == 2).all() and (st.m[1] == 0).all()


def test_gradients_flow_through_carried_state_and_gate():
    torch.manual_seed(4)
    cfg = LatteConfig(d_model=16, n_heads=2, n_latents=8, n_layers=1, pos_encoding="none",
                      latent_decay=True)
    model = LatteLM(cfg)
    st = model.new_state(2, torch.float64)
    x = torch.randint(0, 256, (2, 30))
    model(x[:, :15], st)
    for s in st:
        s.detach_()
    out = model(x[:, 15:], st)
    out.sum().backward()
    g = model.blocks[0].latte.decay_logit.grad
    assert g is not None and torch.isfinite(g).all() and g.abs().max() > 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_export_round_trip_keeps_the_gate(tmp_path):
    torch.manual_seed(5)
    cfg = LatteConfig(d_model=16, n_heads=2, n_latents=8, n_layers=2, pos_encoding="none",
                      latent_decay=True)
    model = LatteLM(cfg).float()
    with torch.no_grad():
        model.blocks[1].latte.decay_logit.normal_()
    save_safetensors(model, tmp_path / "m.safetensors")
    back, meta = load_safetensors(tmp_path / "m.safetensors")
    assert back.cfg.latent_decay and back.cfg.pos_encoding == "none"
    for a, b in zip(model.blocks, back.blocks):
        assert torch.equal(a.latte.decay_logit, b.latte.decay_logit)
    from safetensors.torch import load_file
    rates = load_file(str(tmp_path / "m.safetensors"))["blocks.1.latte.decay"]
    assert torch.allclose(rates.double(), model.blocks[1].latte.decay().reshape(-1).double(), atol=1e-7)


def test_lanes_stay_inside_documents_and_restart():
    torch.set_default_dtype(torch.float32)
    cfg = LatteConfig(d_model=16, n_heads=2, n_latents=4, n_layers=1, pos_encoding="none")
    model = LatteLM(cfg)
    doc_starts = np.array([0, 1000, 1100, 5000])  # one document shorter than a window
    gen = torch.Generator().manual_seed(1)
    lanes = Lanes(model, batch=4, seq=64, windows=3, n_bytes=6000, doc_starts=doc_starts, gen=gen)
    ends = np.append(doc_starts[1:], 6000)
    prev, restarts = None, 0
    for step in range(40):
        starts, states = lanes.next()
        fresh = torch.isinf(states[0].m).all(-1).all(-1)
        assert int(fresh.sum()) == lanes.restarts - restarts  # restarted lanes are empty
        restarts = lanes.restarts
        for s in starts.tolist():
            doc = np.searchsorted(ends, s, side="right")
            assert s + 65 <= ends[doc] and s >= (doc_starts[doc] if doc < len(doc_starts) else 0)
        if prev is not None:
            # a lane that kept its state reads the next window of its document
            assert (starts[~fresh] == prev[~fresh] + 64).all()
        model(torch.randint(0, 256, (4, 64)), states)
        prev = starts
    assert lanes.restarts >= 40 * 4 // 3  # at most 3 windows per lane


def test_hash_split_is_a_fixed_partition():
    docs = [f"message {i}".encode() for i in range(2000)]
    parts = [hash_split(d) for d in docs]
    assert parts == [hash_split(d) for d in docs]
    frac = {k: parts.count(k) / len(parts) for k in ("train", "val", "test")}
    assert 0.85 < frac["train"] < 0.95 and 0.02 < frac["val"] < 0.08 and 0.02 < frac["test"] < 0.08


def test_split_source_dedups_and_splits_tails():
    book = bytes(range(32, 127)) * 100
    docs = [(book, "tail", b""), (book, "tail", b"")] + [(b"x%d\n" % i, "hash", b"x%d" % i) for i in range(50)]
    parts = split_source("fortunes", docs)
    head = book[:int(len(book) * 0.9)] + b"\n"  # a piece ends with a newline
    assert parts["train"][0] == head
    assert sum(p == head for p in parts["train"]) == 1  # the copy is dropped
    hashed = [d for k in parts for d in parts[k] if d.startswith(b"x")]
    assert len(hashed) == 50
