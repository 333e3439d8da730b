"""A small random bidirectional-Latte classifier and its golden logits, for the
runtime's tests (``tools/latte-cli/tests/data/classifier``).

    python3 -m latte_train.classifier_golden --out ../latte-cli/tests/data/classifier

Writes ``classifier.safetensors`` (the trainer's export, what ``latte convert``
reads) and ``golden.json``, and the same with the byte n-gram stem of width 3 (an
extension; random, not zero, stem weights) as ``classifier-stem.safetensors`` and
``golden-stem.json``: for each input (bytes), the class logits computed
by ``LatteClassifier`` in float64, whose key softmax over the whole input is
``torch.softmax`` over time (not the runtime's one-pass running maximum).
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch

from .bidir import ClassifierConfig, LatteClassifier, save_classifier


def inputs(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    text = (b"From: alice@example.com\nSubject: meeting notes\n\nThe quarterly figures are in; "
            b"see the attached sheet before Thursday. Regards, Alice\n")
    return [
        b"x",
        b"Hello, world!",
        text,
        (text * 4)[:300],  # crosses chunk boundaries
        bytes(range(256)),  # every byte value
        bytes(rng.randrange(256) for _ in range(700)),
    ]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for stem, suffix in ((0, ""), (3, "-stem")):
        torch.manual_seed(args.seed + stem)
        cfg = ClassifierConfig(d_model=32, n_layers=2, n_heads=2, n_latents=8, d_ff=64, n_classes=3,
                               max_seq_len=1024, conv_width=stem)
        model = LatteClassifier(cfg)
        # Spread the key and query logits so the softmaxes are far from uniform.
        with torch.no_grad():
            for blk in model.blocks:
                blk.latte.wk.weight.mul_(3.0)
                blk.latte.wq.weight.mul_(3.0)
            if model.stem is not None:  # zero at initialisation: make it count
                model.stem.weight.normal_(0.0, 1.0 / (stem * cfg.d_model) ** 0.5)
                model.stem.bias.normal_(0.0, 0.1)
        save_classifier(model, args.out / f"classifier{suffix}.safetensors", name=f"classifier{suffix}-fixture",
                        labels=["alpha", "beta", "gamma"])
        model = model.double().eval()
        cases = []
        with torch.no_grad():
            for x in inputs(args.seed):
                t = torch.tensor([list(x)], dtype=torch.long)
                logits = model(t)[0]
                cases.append({"input": list(x), "logits": [float(v) for v in logits]})
        (args.out / f"golden{suffix}.json").write_text(json.dumps({
            "config": json.loads(cfg.to_json()),
            "labels": ["alpha", "beta", "gamma"],
            "note": "LatteClassifier in float64 (latte_train.classifier_golden)",
            "cases": cases,
        }, indent=1) + "\n")
        cases_n = len(cases)
    print(f"wrote {args.out}: {cases_n} cases per model")


if __name__ == "__main__":
    main()
