"""Export helpers: safetensors with the configuration in its metadata, and golden
logits computed with the reference recurrence for the Rust tests."""
from __future__ import annotations

from pathlib import Path
from typing import Tuple

import torch
from safetensors.torch import load_file, save_file, safe_open

from .model import LatteConfig, LatteLM


def save_safetensors(model: LatteLM, path: Path, name: str = "latte") -> None:
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"format": "pt", "latte.config": model.cfg.to_json(), "latte.name": name}
    save_file(tensors, str(path), metadata=meta)


def load_safetensors(path: Path) -> Tuple[LatteLM, dict]:
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "latte.config" not in meta:
        raise ValueError(f"{path}: no 'latte.config' in the safetensors metadata")
    cfg = LatteConfig.from_json(meta["latte.config"])
    model = LatteLM(cfg)
    model.load_state_dict(load_file(str(path)))
    model.eval()
    return model, meta
