"""Training throughput of the reference model on this machine: tokens/s of
forward + backward + AdamW steps on random bytes (the default micro shape,
positions none and the decay gate, batch 32 x 256).

    python3 -m latte_train.bench [--threads 2] [--steps 5]
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from .model import LatteConfig, LatteLM


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5, help="timed steps (after 3 warm-up steps)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=256)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = LatteLM(LatteConfig(pos_encoding="none", latent_decay=True))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, 256, (args.batch, args.seq + 1))
    t0 = 0.0
    for i in range(3 + args.steps):
        if i == 3:
            t0 = time.perf_counter()
        loss = F.cross_entropy(model(x[:, :-1]).reshape(-1, 256), x[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    dt = (time.perf_counter() - t0) / args.steps
    print(f"{dt:.3f} s per step, {args.batch * args.seq / dt:,.0f} tokens/s "
          f"({args.threads} threads, batch {args.batch} x {args.seq})")


if __name__ == "__main__":
    main()
