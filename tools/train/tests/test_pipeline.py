import json
import subprocess
import sys
from pathlib import Path

import torch

from latte_train.data import normalise, split_book
from latte_train.export import load_safetensors, save_safetensors
from latte_train.model import LatteConfig, LatteLM

ROOT = Path(__file__).resolve().parents[1]


def test_normalise_crlf_and_footer():
    body = b"line one\r\nline two\r\n" * 50
    text = normalise("x.txt", body + b"End of Project Gutenberg's book\r\nlicence text\r\n")
    assert b"\r" not in text
    assert b"licence" not in text and b"End of Project" not in text
    assert text.startswith(b"line one\nline two\n")


def test_split_is_a_partition_in_order():
    text = bytes(range(256)) * 40
    a, b, c = split_book(text)
    assert a + b + c == text
    assert len(a) == int(len(text) * 0.9)
    assert abs(len(b) - len(c)) <= 1


def test_safetensors_round_trip_keeps_config_and_outputs(tmp_path):
    torch.manual_seed(0)
    cfg = LatteConfig(d_model=16, n_layers=2, n_heads=2, n_latents=4, pos_encoding="vapor")
    model = LatteLM(cfg).eval()
    path = tmp_path / "m.safetensors"
    save_safetensors(model, path, name="tiny")
    loaded, meta = load_safetensors(path)
    assert loaded.cfg == cfg
    assert meta["latte.name"] == "tiny"
    for (ka, va), (kb, vb) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    x = torch.randint(0, 256, (1, 10))
    with torch.no_grad():
        assert torch.allclose(model(x), loaded(x), atol=1e-6)


def test_training_smoke_and_golden(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    text = (b"the quick brown fox jumps over the lazy dog. " * 200)
    (data / "train.txt").write_bytes(text)
    (data / "val.txt").write_bytes(text[:2000])
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "latte_train.train", "--data", str(data), "--out", str(out),
           "--steps", "30", "--batch", "8", "--seq", "32", "--d-model", "16", "--layers", "1",
           "--heads", "2", "--latents", "4", "--eval-every", "30", "--eval-windows", "8",
           "--lr", "1e-2", "--warmup", "5"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    log = json.loads((out / "train_log.json").read_text())
    # 30 steps on a repeated sentence must beat the 8 bits/byte of a uniform guess.
    assert log["val_bpb"] < 5.0
    gold = tmp_path / "golden.json"
    res = subprocess.run([sys.executable, "-m", "latte_train.golden", str(out / "model.safetensors"),
                          "-o", str(gold), "--greedy", "4"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    g = json.loads(gold.read_text())
    first = g["prompts"][0]
    assert len(first["logits"]) == len(first["tokens"]) and len(first["logits"][0]) == 256
    assert len(first["greedy"]) == 4


def test_training_refuses_missing_data(tmp_path):
    res = subprocess.run([sys.executable, "-m", "latte_train.train", "--data", str(tmp_path),
                          "--out", str(tmp_path / "o")], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode != 0
    assert "latte_train.data" in res.stderr
