"""ListOps, the Long Range Arena task, generated anew at lengths 2 cores can train.

    python3 -m latte_train.listops --out data-listops

Nested expressions of MAX, MIN, MED (median, rounded down) and SM (sum modulo
10) over the digits 0-9; the label is the expression's value (10 classes). The
rules are the LRA generator's, written here from its description: a node is a
digit with probability 0.75 (always at the maximum depth), otherwise an
operator over 2 to ``max_args`` children; trees are drawn until their length
falls in ``[min_len, max_len]``.

Each LRA token is one byte, so a sequence's length in bytes is its length in
LRA tokens: ``X`` = ``[MAX``, ``N`` = ``[MIN``, ``D`` = ``[MED``, ``S`` = ``[SM``,
``]`` closes, and the digits are themselves. ``[MAX 2 9 [MIN 4 7 ] 0 ]`` is
``X29N47]0]``. LRA uses lengths 500 to 2,000; the default here is 64 to 512,
a reduced-length replication. Writes ``train.npz``, ``val.npz``, ``test.npz``
in the format of ``latte_train.spam`` (``load_split`` reads them), from
disjoint seeds.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import List, Tuple, Union

from .spam import write_split

OPS = {"MAX": "X", "MIN": "N", "MED": "D", "SM": "S"}
VALUE_P = 0.25  # probability that a node below the maximum depth is an operator

Tree = Union[int, Tuple[str, list]]


def tree(rng: random.Random, depth: int, max_depth: int, max_args: int) -> Tree:
    if depth < max_depth and rng.random() < VALUE_P:
        n = rng.randint(2, max_args)
        return (rng.choice(sorted(OPS)), [tree(rng, depth + 1, max_depth, max_args) for _ in range(n)])
    return rng.randrange(10)


def evaluate(t: Tree) -> int:
    if isinstance(t, int):
        return t
    op, args = t
    v = [evaluate(a) for a in args]
    if op == "MAX":
        return max(v)
    if op == "MIN":
        return min(v)
    if op == "MED":
        s = sorted(v)
        n = len(s)
        return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) // 2
    return sum(v) % 10


def encode(t: Tree) -> str:
    if isinstance(t, int):
        return str(t)
    op, args = t
    return OPS[op] + "".join(encode(a) for a in args) + "]"


def sample(rng: random.Random, min_len: int, max_len: int, max_depth: int, max_args: int) -> Tuple[bytes, int]:
    while True:
        t = tree(rng, 1, max_depth, max_args)
        if isinstance(t, int):
            continue
        s = encode(t)
        if min_len <= len(s) <= max_len:
            return s.encode(), evaluate(t)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--train", type=int, default=20000)
    ap.add_argument("--val", type=int, default=2000)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--min-len", type=int, default=64)
    ap.add_argument("--max-len", type=int, default=512)
    ap.add_argument("--max-depth", type=int, default=10)
    ap.add_argument("--max-args", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = {"task": "listops", "labels": [str(i) for i in range(10)], **{k: v for k, v in vars(args).items() if k != "out"}}
    seen = set()
    for i, (split, n) in enumerate((("train", args.train), ("val", args.val), ("test", args.test))):
        rng = random.Random(args.seed * 1000 + i)
        items: List[Tuple[bytes, int]] = []
        while len(items) < n:
            x, y = sample(rng, args.min_len, args.max_len, args.max_depth, args.max_args)
            if x in seen:  # no sequence in two splits (or twice in one)
                continue
            seen.add(x)
            items.append((x, y))
        write_split(args.out / f"{split}.npz", items)
        counts = [0] * 10
        for _, y in items:
            counts[y] += 1
        lens = sorted(len(x) for x, _ in items)
        manifest[split] = {"n": n, "label_counts": counts, "median_len": lens[len(lens) // 2]}
        print(f"{split}: {n} sequences, median length {lens[len(lens) // 2]}, labels {counts}", file=sys.stderr)
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
