#!/usr/bin/env python3
"""Flash and RAM of a board's firmware against the budget in its Cargo.toml.

    budget.py BOARD_DIR ELF [RUN_LOG]

Flash = every allocated section outside RAM (code, read-only data, the model,
the vector table) plus the load image of .data. RAM = the statics (.data,
.bss, .uninit: state and scratch included) plus the stack high-water mark
from the run log (`stack: N bytes used`), or the board's stack reserve when
there is no log (real boards). Budgets: `[package.metadata.latte-board]`
`flash` and `ram` (bytes). Exits 1 when either is exceeded.
"""
import re
import struct
import sys
import tomllib
from pathlib import Path


def sections(elf: bytes):
    if elf[:4] != b"\x7fELF" or elf[4] != 1:
        sys.exit("budget.py: not a 32-bit ELF file")
    shoff, = struct.unpack_from("<I", elf, 0x20)
    shentsize, shnum = struct.unpack_from("<HH", elf, 0x2E)
    for i in range(shnum):
        name, typ, flags, addr, off, size = struct.unpack_from("<IIIIII", elf, shoff + i * shentsize)
        yield typ, flags, addr, size


def regions(memory_x: str):
    text = re.sub(r"/\*.*?\*/", "", memory_x, flags=re.S)
    out = {}
    for m in re.finditer(r"(\w+)\s*(?:\([^)]*\))?\s*:\s*ORIGIN\s*=\s*([0-9A-Fa-fx_]+)\s*,\s*LENGTH\s*=\s*([0-9A-Fa-fx_]+)([KM]?)", text):
        name, origin, length, unit = m.groups()
        out[name] = (int(origin.replace("_", ""), 0), int(length.replace("_", ""), 0) * {"": 1, "K": 1024, "M": 1 << 20}[unit])
    return out


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    board = Path(sys.argv[1]).resolve()
    elf = Path(sys.argv[2]).read_bytes()
    meta = tomllib.loads((board / "Cargo.toml").read_text())["package"]["metadata"]["latte-board"]
    ram_lo, ram_len = regions((board / "memory.x").read_text())["RAM"]
    flash = ram_static = 0
    for typ, flags, addr, size in sections(elf):
        if not flags & 0x2 or size == 0:  # SHF_ALLOC
            continue
        in_ram = ram_lo <= addr < ram_lo + ram_len
        if in_ram:
            ram_static += size
            if typ != 8:  # not NOBITS: .data also has a load image in flash
                flash += size
        else:
            flash += size
    if len(sys.argv) == 4:
        log = Path(sys.argv[3]).read_text()
        m = re.search(r"stack: (\d+) bytes used", log)
        if not m:
            sys.exit("budget.py: the run log has no `stack:` line")
        stack, how = int(m.group(1)), "measured"
    else:
        stack, how = meta["stack"], "reserved"
    ram = ram_static + stack
    print(f"{board.name}: flash {flash} of {meta['flash']} budget; "
          f"RAM {ram} = statics {ram_static} + stack {stack} ({how}) of {meta['ram']} budget")
    bad = []
    if flash > meta["flash"]:
        bad.append(f"flash {flash} > {meta['flash']}")
    if ram > meta["ram"]:
        bad.append(f"RAM {ram} > {meta['ram']}")
    if bad:
        sys.exit(f"{board.name}: over budget: {', '.join(bad)}")


main()
