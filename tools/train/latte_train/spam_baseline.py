"""The linear baseline for spam versus ham: logistic regression on hashed byte
n-grams (1 to 4 bytes) of the raw messages, on the splits of ``latte_train.spam``.

    pip install scikit-learn
    python3 -m latte_train.spam_baseline --data data-spam --out runs/spam-ngram.json

The regularisation strength is picked on the validation split; the test split is
scored once, with that choice. Prints and writes accuracy, spam F1 and the
confusion matrix (rows: true ham, spam; columns: predicted ham, spam).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .spam import load_split


def scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = 2) -> dict:
    """Accuracy and the confusion matrix (rows: true class); with two classes
    also the F1 of class 1 (spam)."""
    cm = np.zeros((n_classes, n_classes), dtype=int)
    for t, p in zip(y_true, y_pred):
        cm[int(t), int(p)] += 1
    out = {"accuracy": float(np.trace(cm) / max(1, cm.sum())), "confusion": cm.tolist(), "n": int(cm.sum())}
    if n_classes == 2:
        tp, fp, fn = cm[1, 1], cm[0, 1], cm[1, 0]
        out["spam_f1"] = float(2 * tp / max(1, 2 * tp + fp + fn))
    return out


def main(argv=None) -> None:
    try:
        from sklearn.feature_extraction.text import HashingVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        raise SystemExit("error: the baseline needs scikit-learn: pip install scikit-learn")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("data-spam"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--max-bytes", type=int, default=0,
                    help="use only each message's first N bytes, as the neural classifiers do (0: all)")
    args = ap.parse_args(argv)
    for split in ("train", "val", "test"):
        if not (args.data / f"{split}.npz").is_file():
            raise SystemExit(f"error: {args.data}/{split}.npz is missing: run python3 -m latte_train.spam --out {args.data}")
    vec = HashingVectorizer(analyzer="char", ngram_range=(1, 4), n_features=2 ** 20,
                            alternate_sign=False, norm="l2", lowercase=False)
    cut = (lambda m: m[:args.max_bytes]) if args.max_bytes > 0 else (lambda m: m)
    text = lambda msgs: [cut(m).decode("latin-1") for m in msgs]
    (tr, ytr), (va, yva), (te, yte) = (load_split(args.data / f"{s}.npz") for s in ("train", "val", "test"))
    xtr, xva, xte = vec.transform(text(tr)), vec.transform(text(va)), vec.transform(text(te))
    best = None
    for c in (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0):
        clf = LogisticRegression(C=c, max_iter=2000).fit(xtr, ytr)
        acc = scores(yva, clf.predict(xva))["accuracy"]
        print(f"C={c}: validation accuracy {acc:.4f}", flush=True)
        if best is None or acc > best[0]:
            best = (acc, c, clf)
    _, c, clf = best
    result = {"model": "logistic regression, hashed byte 1-4-grams (2^20 features, l2)", "C": c,
              "max_bytes": args.max_bytes,
              "val": scores(yva, clf.predict(xva)), "test": scores(yte, clf.predict(xte))}
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
