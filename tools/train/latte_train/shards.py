"""Split a safetensors checkpoint into files below a size limit, and join them again.

    python3 -m latte_train.shards split model.safetensors --max-mib 15 -o OUTDIR
    python3 -m latte_train.shards join OUTDIR/model-*-of-*.safetensors -o model.safetensors

A machine that can only hand back small files (the GPU machine returns at most
16 MiB per file) sends the shards; ``join`` checks that every tensor arrived
exactly once and that all shards carry the same metadata, then writes one file
with that metadata. Tensors are stored unchanged (same dtype and bytes).
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Dict, List

import torch
from safetensors import safe_open
from safetensors.torch import save_file

SHARD_KEY = "latte.shard"


def _read(path: Path):
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata() or {})
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return tensors, meta


def _digest(tensors: Dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(json.dumps(list(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def split(path: Path, out: Path, max_bytes: int) -> List[Path]:
    tensors, meta = _read(path)
    groups: List[List[str]] = [[]]
    size = 0
    for name in sorted(tensors):
        n = tensors[name].numel() * tensors[name].element_size()
        if n > max_bytes:
            raise SystemExit(f"error: tensor {name} has {n:,} bytes, more than the limit "
                             f"{max_bytes:,}; raise --max-mib")
        if size + n > max_bytes and groups[-1]:
            groups.append([])
            size = 0
        groups[-1].append(name)
        size += n
    out.mkdir(parents=True, exist_ok=True)
    digest = _digest(tensors)
    stem = path.stem
    paths = []
    for i, names in enumerate(groups):
        info = {"index": i, "count": len(groups), "tensors": len(tensors), "sha256": digest}
        p = out / f"{stem}-{i + 1:02d}-of-{len(groups):02d}.safetensors"
        save_file({k: tensors[k] for k in names}, str(p), metadata={**meta, SHARD_KEY: json.dumps(info)})
        paths.append(p)
    return paths


def join(paths: List[Path], out: Path) -> None:
    merged: Dict[str, torch.Tensor] = {}
    base_meta = None
    infos = []
    for p in paths:
        tensors, meta = _read(p)
        if SHARD_KEY not in meta:
            raise SystemExit(f"error: {p} is not a shard made by `latte_train.shards split`")
        infos.append(json.loads(meta.pop(SHARD_KEY)))
        if base_meta is None:
            base_meta = meta
        elif meta != base_meta:
            raise SystemExit(f"error: {p} carries other metadata than {paths[0]}; shards of two checkpoints?")
        for k, v in tensors.items():
            if k in merged:
                raise SystemExit(f"error: tensor {k} is in more than one shard")
            merged[k] = v
    count = {i["count"] for i in infos}
    digest = {i["sha256"] for i in infos}
    if len(count) != 1 or len(digest) != 1:
        raise SystemExit("error: the shards come from different checkpoints")
    if sorted(i["index"] for i in infos) != list(range(count.pop())):
        raise SystemExit(f"error: shards missing or repeated: got indices {sorted(i['index'] for i in infos)}")
    if _digest(merged) != digest.pop():
        raise SystemExit("error: the joined tensors do not match the checksum the shards carry")
    save_file(merged, str(out), metadata=base_meta)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("split", help="split one checkpoint into shards")
    s.add_argument("model", type=Path)
    s.add_argument("-o", "--out", type=Path, required=True, help="folder for the shards")
    s.add_argument("--max-mib", type=float, default=15.0, help="largest shard, MiB")
    j = sub.add_parser("join", help="join shards into one checkpoint")
    j.add_argument("shards", type=Path, nargs="+")
    j.add_argument("-o", "--out", type=Path, required=True)
    args = ap.parse_args()
    if args.cmd == "split":
        paths = split(args.model, args.out, int(args.max_mib * 1024 * 1024))
        print(f"wrote {len(paths)} shards to {args.out}")
    else:
        join(args.shards, args.out)
        print(f"wrote {args.out} from {len(args.shards)} shards")


if __name__ == "__main__":
    main()
