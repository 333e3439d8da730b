import io
import json
import tarfile

import numpy as np

from latte_train.data import hash_split
from latte_train.spam import load_split, read_messages, split_messages, write_split


def make_tgz(path, files):
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            blob = json.dumps({"id": "x", "group": name.split("/")[2], "text": text}).encode()
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


def test_labels_dedup_and_split_follow_the_rules(tmp_path):
    files = {
        "package/data/easy-ham-1/00001.a.json": "From: a\n\nhello there",
        "package/data/hard-ham-1/00002.b.json": "From: b\n\nmeeting notes",
        "package/data/spam-1/00003.c.json": "From: c\n\nBUY NOW",
        "package/data/spam-2/00004.d.json": "From: c\n\nBUY NOW",  # duplicate, same label: kept once
        "package/data/spam-2/00005.e.json": "From: a\n\nhello there",  # also ham: dropped
        "package/data/spam-1/00006.f.txt": "not a message file",
        "package/data/other/00007.g.json": "From: z\n\nnot a labelled folder",
    }
    tgz = tmp_path / "p.tgz"
    make_tgz(tgz, files)
    msgs = read_messages(tgz)
    assert sorted((r.decode(), y) for r, y, _ in msgs) == sorted([
        ("From: a\n\nhello there", 0), ("From: b\n\nmeeting notes", 0), ("From: c\n\nBUY NOW", 1),
        ("From: c\n\nBUY NOW", 1), ("From: a\n\nhello there", 1)])
    parts = split_messages(msgs)
    kept = [(r, y) for items in parts.values() for r, y in items]
    assert sorted(kept) == sorted([(b"From: b\n\nmeeting notes", 0), (b"From: c\n\nBUY NOW", 1)])
    for split, items in parts.items():
        for raw, _ in items:
            assert hash_split(raw) == split  # the language-model corpus's rule
    write_split(tmp_path / "s.npz", kept)
    back, labels = load_split(tmp_path / "s.npz")
    assert back == [r for r, _ in kept] and list(labels) == [y for _, y in kept]
    assert np.load(tmp_path / "s.npz")["data"].dtype == np.uint8
