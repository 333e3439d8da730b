#!/usr/bin/env python3
"""Cross-check `latte` with the `gguf` Python package (pip install gguf numpy).

Not part of `cargo test`. Usage, from the workspace root after `cargo build -p latte-cli`:

    python3 tools/latte-cli/tests/gguf_compat.py target/debug/latte

1. A file written by gguf.GGUFWriter (every scalar type, arrays, F32/F16/Q8_0
   tensors, custom alignment) must pass `latte inspect`.
2. A model written by `latte convert` must read back with gguf.GGUFReader
   with the expected metadata, shapes and (transposed) values.
3. `latte convert --dtype q8_0` and `--dtype q4_0`: GGUFReader reports the
   tensor types (Q8_0 / Q4_0, token_embd and output Q8_0 under q4_0, norms
   and biases F32), the blocks are byte for byte what gguf.quants.quantize
   makes of the weights, and gguf.quants.dequantize gives back values within
   a quantization step of them.
"""
import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import gguf


def write_python_file(path: Path) -> None:
    w = gguf.GGUFWriter(str(path), arch="latte")
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -2000000000)
    w.add_float32("t.f32", 0.25)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo")
    w.add_uint64("t.u64", 2**63)
    w.add_int64("t.i64", -(2**62))
    w.add_float64("t.f64", -0.125)
    w.add_array("t.strs", ["a", "bc", ""])
    w.add_array("t.ints", [1, 2, 3])
    w.add_custom_alignment(64)
    w.add_tensor("m32", np.arange(12, dtype=np.float32).reshape(3, 4))
    w.add_tensor("v16", np.arange(5, dtype=np.float16))
    q8 = np.zeros((1, 2 * 34), dtype=np.uint8)  # byte shape: two Q8_0 blocks = one row of 64
    w.add_tensor("q8", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def safetensors_bytes(tensors: dict) -> bytes:
    header, data = {}, b""
    for name, arr in tensors.items():
        raw = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def flax_model(rng, V=7, D=8, L=4, F=32) -> dict:
    t = {"Encoder_0/Embed_0/embedding": rng.standard_normal((V, D))}
    for i in range(2):
        p = f"Encoder_0/TransBlock_{i}"
        for n in ("LayerNorm_0", "LayerNorm_1"):
            t[f"{p}/{n}/scale"] = rng.standard_normal(D)
            t[f"{p}/{n}/bias"] = rng.standard_normal(D)
        t[f"{p}/StableScanLatte_0/Wq"] = rng.standard_normal((D, L))
        t[f"{p}/StableScanLatte_0/Wk"] = rng.standard_normal((D, L))
        t[f"{p}/StableScanLatte_0/Wv"] = rng.standard_normal((D, D))
        t[f"{p}/StableScanLatte_0/o_proj"] = rng.standard_normal((D, D))
        t[f"{p}/Dense_0/kernel"] = rng.standard_normal((D, F))
        t[f"{p}/Dense_0/bias"] = rng.standard_normal(F)
        t[f"{p}/Dense_1/kernel"] = rng.standard_normal((F, D))
        t[f"{p}/Dense_1/bias"] = rng.standard_normal(D)
    t["LayerNorm_0/scale"] = rng.standard_normal(D)
    t["LayerNorm_0/bias"] = rng.standard_normal(D)
    t["Dense_0/kernel"] = rng.standard_normal((D, V))
    t["Dense_0/bias"] = rng.standard_normal(V)
    return {k: v.astype(np.float32) for k, v in t.items()}


def check_quantized(latte: Path, tmp: Path) -> None:
    V, D, L, F = 40, 64, 32, 128  # every row a whole number of 32-value blocks
    weights = flax_model(np.random.default_rng(2), V=V, D=D, L=L, F=F)
    st = tmp / "wide.safetensors"
    st.write_bytes(safetensors_bytes(weights))
    Q8, Q4, F32 = (gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.Q4_0,
                   gguf.GGMLQuantizationType.F32)
    # GGUF name -> (Flax name, transposed)
    names = {"token_embd.weight": ("Encoder_0/Embed_0/embedding", False),
             "output.weight": ("Dense_0/kernel", True)}
    for i in range(2):
        p = f"Encoder_0/TransBlock_{i}"
        names.update({
            f"blk.{i}.attn_q.weight": (f"{p}/StableScanLatte_0/Wq", True),
            f"blk.{i}.attn_k.weight": (f"{p}/StableScanLatte_0/Wk", True),
            f"blk.{i}.attn_v.weight": (f"{p}/StableScanLatte_0/Wv", True),
            f"blk.{i}.attn_output.weight": (f"{p}/StableScanLatte_0/o_proj", True),
            f"blk.{i}.ffn_up.weight": (f"{p}/Dense_0/kernel", True),
            f"blk.{i}.ffn_down.weight": (f"{p}/Dense_1/kernel", True),
        })
    for dtype, body in (("q8_0", Q8), ("q4_0", Q4)):
        model = tmp / f"wide-{dtype}.gguf"
        out = subprocess.run([latte, "convert", st, "-o", model, "--heads", "2", "--dtype", dtype],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        r = gguf.GGUFReader(str(model))
        tensors = {t.name: t for t in r.tensors}
        assert len(tensors) == 5 + 2 * 12
        for name, t in tensors.items():
            if name not in names:
                assert t.tensor_type == F32, (dtype, name, t.tensor_type)
                continue
            want_type = Q8 if name in ("token_embd.weight", "output.weight") else body
            assert t.tensor_type == want_type, (dtype, name, t.tensor_type)
            src, transposed = names[name]
            w = weights[src].T if transposed else weights[src]
            w = np.ascontiguousarray(w, dtype=np.float32)
            rows, cols = w.shape
            assert [int(x) for x in t.shape] == [cols, rows], (name, t.shape)
            raw = np.asarray(t.data).reshape(-1).view(np.uint8)
            ref = np.asarray(gguf.quants.quantize(w, want_type)).reshape(-1).view(np.uint8)
            assert raw.tobytes() == ref.tobytes(), f"{dtype} {name}: blocks differ from gguf.quants.quantize"
            deq = np.asarray(gguf.quants.dequantize(np.asarray(t.data), want_type)).reshape(rows, cols)
            blocks = np.abs(w).reshape(rows, cols // 32, 32).max(axis=2)
            tol = np.repeat(blocks, 32, axis=1) * (1 / 127 if want_type == Q8 else 1 / 8) * 1.05 + 1e-7
            assert np.all(np.abs(deq - w) <= tol), f"{dtype} {name}: dequantized values too far"


def main() -> int:
    latte = Path(sys.argv[1]).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        py_file = tmp / "python.gguf"
        write_python_file(py_file)
        out = subprocess.run([latte, "inspect", py_file], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        for needle in ("alignment 64", "t.strs", '"héllo"', "m32", "[4, 3]", "Q8_0", "[64, 1]", "v16"):
            assert needle in out.stdout, (needle, out.stdout)

        rng = np.random.default_rng(1)
        weights = flax_model(rng)
        st = tmp / "flax.safetensors"
        st.write_bytes(safetensors_bytes(weights))
        model = tmp / "flax.gguf"
        out = subprocess.run([latte, "convert", st, "-o", model, "--heads", "2"], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        r = gguf.GGUFReader(str(model))
        fields = {k: f.contents() for k, f in r.fields.items()}
        assert fields["general.architecture"] == "latte"
        assert fields["latte.attention.head_count"] == 2
        assert fields["latte.latent_count"] == 4
        assert fields["latte.feed_forward_length"] == 32
        tensors = {t.name: t for t in r.tensors}
        assert len(tensors) == 5 + 2 * 12
        q = tensors["blk.1.attn_q.weight"]
        assert [int(x) for x in q.shape] == [8, 4]
        got = np.asarray(q.data).reshape(4, 8)
        assert np.array_equal(got, weights["Encoder_0/TransBlock_1/StableScanLatte_0/Wq"].T)
        emb = np.asarray(tensors["token_embd.weight"].data).reshape(7, 8)
        assert np.array_equal(emb, weights["Encoder_0/Embed_0/embedding"])
        for t in r.tensors:
            assert t.data_offset % 32 == 0, t.name
        check_quantized(latte, tmp)
    print("gguf compatibility: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
