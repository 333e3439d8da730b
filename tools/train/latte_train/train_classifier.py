"""Train the byte-level sequence classifier (bidirectional Latte, or the
standard-attention baseline of the same shape) on the splits of
``latte_train.spam``, and score it on the test split.

    python3 -m latte_train.train_classifier --data data-spam --out runs/latte-spam-micro
    python3 -m latte_train.train_classifier --data data-spam --out runs/attn-spam-micro --mixer attention

Each message is its first ``--max-bytes`` bytes (headers first, as in the file).
Batches are padded with a mask; the pooled mean ignores the padding. The model
kept is the one with the best validation accuracy at the end of an epoch (or of
the time budget); the test split is scored once, with it. Writes
``model.safetensors`` (the configuration as JSON under ``latte.classifier``) and
``result.json`` (accuracy, spam F1, confusion matrix for val and test).
"""
from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .bidir import ClassifierConfig, LatteClassifier, save_classifier
from .spam import load_split
from .spam_baseline import scores


def batches(msgs, labels, max_bytes, batch, gen=None):
    order = torch.randperm(len(msgs), generator=gen).tolist() if gen is not None else list(range(len(msgs)))
    for i in range(0, len(order), batch):
        idx = order[i:i + batch]
        cut = [msgs[j][:max_bytes] for j in idx]
        t = max(1, max(len(c) for c in cut))
        x = torch.zeros(len(idx), t, dtype=torch.long)
        m = torch.zeros(len(idx), t, dtype=torch.bool)
        for r, c in enumerate(cut):
            x[r, :len(c)] = torch.tensor(list(c), dtype=torch.long)
            m[r, :len(c)] = True
        yield x, m, torch.tensor([int(labels[j]) for j in idx])


@torch.no_grad()
def predict(model, msgs, labels, max_bytes, batch=32):
    model.eval()
    out = []
    for x, m, _ in batches(msgs, labels, max_bytes, batch):
        out.append(model(x, m).argmax(-1))
    model.train()
    return torch.cat(out).numpy()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("data-spam"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--mixer", choices=["bid_latte", "attention"], default="bid_latte")
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--latents", type=int, default=40)
    ap.add_argument("--conv-width", type=int, default=0,
                    help="the byte n-gram stem of width K (an extension; 0: the official model)")
    ap.add_argument("--max-bytes", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=0.0, help="stop after this much time (0: no limit)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--labels", default=None,
                    help="class names, comma-separated (default: the data's manifest.json labels, else ham,spam)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for split in ("train", "val", "test"):
        if not (args.data / f"{split}.npz").is_file():
            raise SystemExit(f"error: {args.data}/{split}.npz is missing: run python3 -m latte_train.spam --out {args.data}")
    labels = args.labels.split(",") if args.labels else None
    if labels is None and (args.data / "manifest.json").is_file():
        labels = json.loads((args.data / "manifest.json").read_text()).get("labels")
        labels = labels if isinstance(labels, list) else None  # the spam manifest describes, not lists
    labels = labels or ["ham", "spam"]
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    (tr, ytr), (va, yva), (te, yte) = (load_split(args.data / f"{s}.npz") for s in ("train", "val", "test"))
    cfg = ClassifierConfig(d_model=args.d_model, n_layers=args.layers, n_heads=args.heads,
                           n_latents=args.latents, n_classes=len(labels), max_seq_len=args.max_bytes, mixer=args.mixer,
                           conv_width=args.conv_width)
    model = LatteClassifier(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    steps = args.epochs * math.ceil(len(tr) / args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.1)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{args.mixer}: {model.num_params():,} parameters; train {len(tr)} messages "
          f"(first {args.max_bytes} bytes), val {len(va)}, test {len(te)}", flush=True)
    t0, step, best, stop = time.time(), 0, None, False
    log = {"args": {k: str(v) for k, v in vars(args).items()}, "config": asdict(cfg), "epochs": []}
    for epoch in range(args.epochs):
        for x, m, y in batches(tr, ytr, args.max_bytes, args.batch, gen):
            loss = F.cross_entropy(model(x, m), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            if step % 50 == 0:
                print(f"epoch {epoch} step {step}/{steps} loss {loss.item():.4f} "
                      f"elapsed {(time.time() - t0) / 60:.1f} min", flush=True)
            if args.minutes and time.time() - t0 > args.minutes * 60:
                stop = True
                break
        val = scores(yva, predict(model, va, yva, args.max_bytes), len(labels))
        log["epochs"].append({"epoch": epoch, "step": step, "val": val, "seconds": time.time() - t0})
        f1 = f", spam F1 {val['spam_f1']:.4f}" if "spam_f1" in val else ""
        print(f"epoch {epoch}: validation accuracy {val['accuracy']:.4f}{f1}", flush=True)
        if best is None or val["accuracy"] > best[0]:
            best = (val["accuracy"], {k: v.detach().clone() for k, v in model.state_dict().items()})
        if stop:
            break
    model.load_state_dict(best[1])
    test = scores(yte, predict(model, te, yte, args.max_bytes), len(labels))
    result = {"mixer": args.mixer, "params": model.num_params(), "max_bytes": args.max_bytes,
              "val_accuracy": best[0], "test": test, "train_seconds": time.time() - t0}
    print(json.dumps(result, indent=2), flush=True)
    save_classifier(model, args.out / "model.safetensors", name=args.out.name, labels=labels)
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "train_log.json").write_text(json.dumps(log, indent=2) + "\n")


if __name__ == "__main__":
    main()
