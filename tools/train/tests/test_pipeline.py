import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
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


def test_debian_version_reads_dpkg_and_says_none_where_it_cannot(monkeypatch):
    from latte_train import data
    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        if cmd[-1] == "installed-pkg":
            return subprocess.CompletedProcess(cmd, 0, stdout="1:2.3-4+deb12u5\n", stderr="")
        raise subprocess.CalledProcessError(1, cmd)

    monkeypatch.setattr(data.subprocess, "run", fake_run)
    assert data.debian_version("installed-pkg") == "1:2.3-4+deb12u5"
    assert data.debian_version("missing-pkg") is None
    assert calls[0][:2] == ["dpkg-query", "-W"]

    def no_dpkg(cmd, **kw):
        raise FileNotFoundError(cmd[0])

    monkeypatch.setattr(data.subprocess, "run", no_dpkg)
    assert data.debian_version("installed-pkg") is None


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
    assert len(first["greedy"]) == 4 and len(first["greedy_margins"]) == 4
    assert all(m >= 0 for m in first["greedy_margins"])
    assert "q8_0" not in first  # D = 16: no Q8_0 file can exist


def test_training_refuses_missing_data(tmp_path):
    res = subprocess.run([sys.executable, "-m", "latte_train.train", "--data", str(tmp_path),
                          "--out", str(tmp_path / "o")], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode != 0
    assert "latte_train.data" in res.stderr


def test_shards_round_trip_and_refusals(tmp_path):
    from latte_train.shards import join, split
    torch.manual_seed(1)
    cfg = LatteConfig(d_model=32, n_layers=2, n_heads=2, n_latents=4)
    model = LatteLM(cfg)
    path = tmp_path / "model.safetensors"
    save_safetensors(model, path, name="sharded")
    parts = split(path, tmp_path / "shards", max_bytes=40_000)
    assert len(parts) > 2
    assert all(p.stat().st_size < 40_000 + 4096 for p in parts)
    joined = tmp_path / "joined.safetensors"
    join(parts, joined)
    loaded, meta = load_safetensors(joined)
    assert meta["latte.name"] == "sharded" and "latte.shard" not in meta
    for (ka, va), (kb, vb) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    with pytest.raises(SystemExit, match="missing or repeated"):
        join(parts[:-1], tmp_path / "short.safetensors")
    with pytest.raises(SystemExit, match="more than one shard"):
        join(parts + parts[:1], tmp_path / "twice.safetensors")


def _train_tiny(tmp_path, text: bytes, *flags: str) -> dict:
    """Trains a one-layer model of width 16 on `text` with `flags`; returns the log."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.txt").write_bytes(text)
    (data / "val.txt").write_bytes(text[:1500])
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "latte_train.train", "--data", str(data), "--out", str(out),
           "--d-model", "16", "--layers", "1", "--heads", "2", "--latents", "4",
           "--eval-windows", "8", "--threads", "1", *flags]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return json.loads((out / "train_log.json").read_text())


def test_time_budget_ends_training_and_keeps_the_best(tmp_path):
    log = _train_tiny(tmp_path, b"a budget of time, not of steps. " * 300,
                      "--steps", "1000000", "--minutes", "0.05", "--batch", "4", "--seq", "32",
                      "--eval-every", "25", "--warmup", "5")
    # Three seconds of budget end the run long before the step count.
    assert 5 < log["steps"] < 1000000
    assert log["train_seconds"] < 60
    best = min(e["val_bpb_subset"] for e in log["evals"])
    kept = [e for e in log["evals"] if e["step"] == log["best_step"]]
    assert kept and kept[0]["val_bpb_subset"] == best
    assert log["widest_key_range"] > 0


def test_init_continues_from_a_model_and_refuses_another_shape(tmp_path):
    torch.manual_seed(5)
    cfg = LatteConfig(d_model=16, n_layers=1, n_heads=2, n_latents=4, max_seq_len=32,
                      pos_encoding="none", latent_decay=True)
    start = LatteLM(cfg)
    with torch.no_grad():
        for prm in start.parameters():
            prm.add_(0.5)  # far from any fresh initialisation
    save_safetensors(start, tmp_path / "start.safetensors")
    text = b"continue from where the last run stopped. " * 200
    # With a learning rate of zero the written model is the one it started from.
    _train_tiny(tmp_path, text, "--init", str(tmp_path / "start.safetensors"), "--pos", "none",
                "--gate", "decay", "--seq", "32", "--batch", "2", "--steps", "2", "--lr", "0",
                "--eval-every", "1")
    out, _ = load_safetensors(tmp_path / "run" / "model.safetensors")
    for (ka, va), (kb, vb) in zip(start.state_dict().items(), out.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka
    res = subprocess.run([sys.executable, "-m", "latte_train.train", "--data", str(tmp_path / "data"),
                          "--out", str(tmp_path / "other"), "--d-model", "16", "--layers", "1",
                          "--heads", "2", "--latents", "4", "--seq", "32", "--pos", "vapor",
                          "--init", str(tmp_path / "start.safetensors"), "--steps", "1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode != 0 and "another configuration" in res.stderr
    assert "pos_encoding" in res.stderr and "Traceback" not in res.stderr


def test_init_grows_a_latte_model_into_a_macchiato_one(tmp_path):
    torch.manual_seed(6)
    cfg = LatteConfig(d_model=16, n_layers=1, n_heads=2, n_latents=4, max_seq_len=32,
                      pos_encoding="none", latent_decay=True)
    start = LatteLM(cfg)
    save_safetensors(start, tmp_path / "start.safetensors")
    text = b"a window on top of the latents. " * 200
    # With a learning rate of zero: Latte's weights as they were, the window's
    # Wv zero, so under "sum" the model computes what the Latte model did.
    _train_tiny(tmp_path, text, "--init", str(tmp_path / "start.safetensors"), "--pos", "none",
                "--gate", "decay", "--seq", "32", "--batch", "2", "--steps", "2", "--lr", "0",
                "--eval-every", "1", "--window", "4", "--combine", "sum")
    out, _ = load_safetensors(tmp_path / "run" / "model.safetensors")
    assert out.cfg.mixer == "macchiato" and out.cfg.window == 4
    grown = out.state_dict()
    for k, v in start.state_dict().items():
        assert torch.equal(grown[k], v), k
    assert torch.count_nonzero(out.blocks[0].local.wv.weight) == 0
    toks = torch.arange(20)[None] % 256
    with torch.no_grad():
        assert torch.allclose(out(toks), start(toks), atol=1e-6)


def test_train_only_new_moves_only_the_window(tmp_path):
    torch.manual_seed(7)
    cfg = LatteConfig(d_model=16, n_layers=1, n_heads=2, n_latents=4, max_seq_len=32,
                      pos_encoding="none", latent_decay=True)
    start = LatteLM(cfg)
    save_safetensors(start, tmp_path / "start.safetensors")
    text = b"only the window learns here. " * 200
    _train_tiny(tmp_path, text, "--init", str(tmp_path / "start.safetensors"), "--pos", "none",
                "--gate", "decay", "--seq", "32", "--batch", "2", "--steps", "3", "--lr", "1e-2",
                "--warmup", "1", "--eval-every", "1", "--window", "4", "--train-only-new")
    out, _ = load_safetensors(tmp_path / "run" / "model.safetensors")
    for k, v in start.state_dict().items():
        assert torch.equal(out.state_dict()[k], v), k
    assert torch.count_nonzero(out.blocks[0].local.wv.weight) > 0
    res = subprocess.run([sys.executable, "-m", "latte_train.train", "--data", str(tmp_path / "data"),
                          "--out", str(tmp_path / "other"), "--train-only-new", "--steps", "1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode != 0 and "--train-only-new needs --init" in res.stderr


def test_bf16_autocast_keeps_the_mixing_in_float32():
    torch.manual_seed(2)
    cfg = LatteConfig(d_model=32, n_layers=2, n_heads=2, n_latents=8)
    model = LatteLM(cfg).eval()
    x = torch.randint(0, 256, (2, 48))
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = model(x)
    assert mixed.dtype == torch.bfloat16
    assert torch.isfinite(mixed.float()).all()
    # bf16 keeps 8 significant bits: the logits agree to a few hundredths.
    assert (mixed.float() - ref).abs().max() < 0.25


def _corpus(tmp_path, text: bytes) -> Path:
    """A corpus folder as latte_train.data writes it: every split is `text`."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for split in ("train", "val", "test"):
        (corpus / f"{split}.txt").write_bytes(text)
    (corpus / "manifest.json").write_text("{}")
    return corpus


def _device_dry_run(tmp_path, corpus: Path) -> Path:
    """The device script on a width-32 model for about two seconds; returns $OUT."""
    out = tmp_path / "out"
    env = dict(os.environ, OUT=str(out), RUN_DIR=str(tmp_path / "run"), MINUTES="0.03",
               SIZE="--d-model 32 --layers 1 --heads 2 --latents 4",
               BATCH="--seq 32 --batch 4", DEVICE_ARGS="--threads 1", DATA_DIR=str(corpus))
    res = subprocess.run(["bash", str(ROOT / "device" / "latte-small.sh")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return out


def test_device_script_dry_run_on_cpu(tmp_path):
    out = _device_dry_run(tmp_path, _corpus(tmp_path, b"a dry run of the device script. " * 400))
    names = sorted(p.name for p in out.iterdir())
    assert "golden.json" in names and "train_log.json" in names and "console.log" in names
    shards = [n for n in names if n.startswith("model-") and n.endswith(".safetensors")]
    assert shards and len(names) <= 8
    assert all((out / n).stat().st_size <= 16 * 1024 * 1024 for n in names)


def test_shape_model_has_the_shape_asked_for(tmp_path):
    out = tmp_path / "shape.safetensors"
    res = subprocess.run([sys.executable, "-m", "latte_train.shape_model", "-o", str(out),
                          "--d-model", "64", "--layers", "2", "--heads", "2", "--latents", "8",
                          "--seq", "64"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    model, meta = load_safetensors(out)
    assert (model.cfg.d_model, model.cfg.n_layers, model.cfg.n_heads, model.cfg.n_latents) == (64, 2, 2, 8)
    # Norms and biases moved off their initial ones and zeros.
    assert not torch.equal(model.blocks[0].ln1.weight, torch.ones(64))
    assert model.head.bias.abs().max() > 0
    bad = subprocess.run([sys.executable, "-m", "latte_train.shape_model", "-o", str(out),
                          "--d-model", "64", "--heads", "3"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode != 0 and "divisible" in bad.stderr


def test_patience_stops_a_run_that_stopped_improving(tmp_path):
    log = _train_tiny(tmp_path, b"nothing is learnt at a learning rate of zero. " * 100,
                      "--steps", "1000", "--lr", "0", "--patience", "2", "--eval-every", "5",
                      "--batch", "2", "--seq", "16", "--warmup", "1")
    # The first evaluation is the best (nothing changes); two more end the run.
    assert log["stopped_early"] and log["steps"] == 15 and log["best_step"] == 5


def _latte_binary() -> Path:
    for kind in ("debug", "release"):
        exe = ROOT.parents[1] / "target" / kind / "latte"
        if exe.is_file():
            return exe
    raise AssertionError("no target/{debug,release}/latte: run `cargo build -p latte-cli` first "
                         "(tools/test-all.sh does)")


def test_check_logits_accepts_the_runtime_and_rejects_a_wrong_golden(tmp_path):
    latte = _latte_binary()
    model_st = tmp_path / "m.safetensors"
    res = subprocess.run([sys.executable, "-m", "latte_train.shape_model", "-o", str(model_st),
                          "--d-model", "32", "--layers", "2", "--heads", "2", "--latents", "8",
                          "--seq", "64"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    gold = tmp_path / "golden.json"
    res = subprocess.run([sys.executable, "-m", "latte_train.golden", str(model_st), "-o", str(gold),
                          "--greedy", "2"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    gguf = tmp_path / "m.gguf"
    res = subprocess.run([str(latte), "convert", str(model_st), "-o", str(gguf)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    check = [sys.executable, "-m", "latte_train.check_logits", str(latte), str(gguf)]
    res = subprocess.run(check + [str(gold)], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "ok: worst" in res.stdout
    g = json.loads(gold.read_text())
    g["prompts"][1]["logits"][3][7] += 0.01
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(g))
    res = subprocess.run(check + [str(bad)], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 1 and "FAILED" in res.stdout


def test_finishing_script_turns_the_device_output_into_model_files(tmp_path):
    latte = _latte_binary()
    corpus = _corpus(tmp_path, b"the finishing script converts and measures a model. " * 300)
    out = _device_dry_run(tmp_path, corpus)
    models = tmp_path / "models" / "tiny-small"
    env = dict(os.environ, LATTE_BIN=str(latte), TEST_TEXT=str(corpus / "test.txt"),
               RUNS_DIR=str(tmp_path / "runs"))
    res = subprocess.run(["bash", str(ROOT / "device" / "finish-latte-small.sh"), str(out), str(models)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "ok: worst" in res.stdout
    for f in ("tiny-small-q8_0.gguf", "tiny-small-q4_0.gguf", "golden.json", "train_log.json"):
        assert (models / f).is_file(), f
    ppl = json.loads((tmp_path / "runs" / "ppl-q8_0.json").read_text())
    assert 0 < ppl["bits_per_byte"] < 8 and ppl["same_top_rate"] > 0.5
    # Missing shards are refused with a message.
    for p in out.glob("model-*.safetensors"):
        p.unlink()
    res = subprocess.run(["bash", str(ROOT / "device" / "finish-latte-small.sh"), str(out), str(models)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "no model-*-of-*.safetensors shards" in res.stderr


def test_data_parallel_under_torchrun_keeps_the_copies_equal(tmp_path):
    """Two processes (gloo on CPU) for a few steps: every parameter of the two
    copies agrees at the end, and the lead process writes the model."""
    data = _corpus(tmp_path, (b"It was the best of times, it was the worst of times. " * 400))
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "latte_train.train", "--data", str(data), "--out", str(out), "--steps", "4",
           "--batch", "2", "--seq", "32", "--d-model", "32", "--layers", "1", "--heads", "2",
           "--latents", "8", "--pos", "none", "--gate", "decay", "--eval-every", "2",
           "--eval-windows", "4", "--threads", "1", "--warmup", "1", "--device", "cpu"]
    res = subprocess.run(cmd, cwd=Path(__file__).resolve().parents[1], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "2 processes (data parallel)" in res.stdout
    a = json.loads((out / "params-rank0.json").read_text())
    b = json.loads((out / "params-rank1.json").read_text())
    assert a.keys() == b.keys() and len(a) > 10
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=1e-6, abs=1e-9), k
    log = json.loads((out / "train_log.json").read_text())
    assert log["processes"] == 2 and log["tokens"] == 4 * 2 * 2 * 32
    # The copies compared are trained ones: they moved away from the initial weights.
    from latte_train.train import param_checksums
    torch.manual_seed(1234)
    init = param_checksums(LatteLM(LatteConfig(**log["config"])))
    assert any(init[k] != pytest.approx(a[k], rel=1e-6) for k in a)
    assert (out / "model.safetensors").is_file()
