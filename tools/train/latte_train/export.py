"""Export helpers: safetensors with the configuration in its metadata, and golden
logits computed with the reference recurrence for the Rust tests."""
from __future__ import annotations

from pathlib import Path
from typing import Tuple

import torch
from safetensors.torch import load_file, save_file, safe_open

from .model import LatteConfig, LatteLM

# Tensor name (after ``blocks.N.latte.``) of a gated layer's exported rates.
DECAY_RATES = "decay"
# Tensor name (after ``blocks.N.local.``) of a Macchiato window's distance slopes.
WINDOW_SLOPES = "slope"


def save_safetensors(model: LatteLM, path: Path, name: str = "latte") -> None:
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    # A gated model also carries its rates themselves (float64 then rounded), so
    # that a converter needs no knowledge of their parametrisation.
    for i, blk in enumerate(model.blocks):
        lam = blk.latte.decay_logit if blk.latte is not None else None
        if lam is not None:
            rates = model.cfg.decay_max * torch.sigmoid(lam.detach().double())
            tensors[f"blocks.{i}.latte.{DECAY_RATES}"] = rates.float().cpu().contiguous()
        for part, mod in (("local", blk.local), ("attn", blk.attn)):
            if mod is not None:
                slopes = torch.exp(mod.slope_log.detach().double())
                tensors[f"blocks.{i}.{part}.{WINDOW_SLOPES}"] = slopes.float().cpu().contiguous()
    meta = {"format": "pt", "latte.config": model.cfg.to_json(), "latte.name": name}
    save_file(tensors, str(path), metadata=meta)


def load_safetensors(path: Path) -> Tuple[LatteLM, dict]:
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "latte.config" not in meta:
        raise ValueError(f"{path}: no 'latte.config' in the safetensors metadata")
    cfg = LatteConfig.from_json(meta["latte.config"])
    model = LatteLM(cfg)
    tensors = {k: v for k, v in load_file(str(path)).items()
               if not k.endswith(f".latte.{DECAY_RATES}") and not k.endswith(f".local.{WINDOW_SLOPES}")
               and not k.endswith(f".attn.{WINDOW_SLOPES}")}
    model.load_state_dict(tensors)
    model.eval()
    return model, meta
