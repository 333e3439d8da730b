"""Train a byte-level Causal Latte language model and export it as safetensors.

    python3 -m latte_train.train --data data --out runs/latte-micro --steps 2400

Prints progress (loss, validation bits/byte, tokens/s, time left), writes
``model.safetensors`` (tensor names of ``LatteLM.state_dict()``, the configuration
as JSON under the metadata key ``latte.config``) and ``train_log.json``.

With ``--minutes M`` training stops after M minutes of wall-clock time (or
``--steps``, whichever comes first) and the learning-rate schedule follows the
elapsed fraction of that budget, so a run on a machine of unknown speed still
warms up, decays and ends on time. ``--amp bf16`` trains the projections and the
MLP in bfloat16 (on a GPU, or on a CPU with bfloat16 units such as AMX: 1.17x the
tokens/s of float32 for the Macchiato micro model on two Xeon cores); the latent
mixing and the window's scores and softmax stay float32, and so does validation. The file written is
the checkpoint with the best validation score seen at the evaluations.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from .model import EXP_RANGE, LatteConfig, LatteLM
from .export import load_safetensors, save_safetensors

LN2 = math.log(2.0)


def load_bytes(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(path.read_bytes(), dtype=np.uint8).astype(np.int64))


@torch.no_grad()
def bits_per_byte(model: LatteLM, data: torch.Tensor, seq: int, batch: int,
                  max_windows: int = 0) -> float:
    """Mean bits/byte over non-overlapping windows of ``seq + 1`` bytes, each window
    starting from a fresh state (its first byte is context only). With
    ``max_windows``, that many windows spread evenly over the whole text (the
    validation text is several sources one after another)."""
    model.eval()
    n_all = (len(data) - 1) // seq
    n_win = min(n_all, max_windows) if max_windows else n_all
    starts = [(i * n_all // n_win) * seq for i in range(n_win)]
    total, count = 0.0, 0
    for i in range(0, n_win, batch):
        x = torch.stack([data[j:j + seq + 1] for j in starts[i:i + batch]])
        logits = model(x[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                               reduction="sum")
        total += loss.item()
        count += x[:, 1:].numel()
    model.train()
    return total / count / LN2


class Lanes:
    """Stream training: ``batch`` independent lanes, each reading consecutive windows
    of one document with every layer's state carried from one window to the next
    (detached). A lane restarts from a random position, with a fresh state, when its
    next window would cross the end of its document or after ``windows`` windows.

    The position passed to the model is 0 for every window: with positions "none"
    or VAPOR nothing depends on it, and sinusoidal positions have no meaning past
    the training length anyway."""

    def __init__(self, model: LatteLM, batch: int, seq: int, windows: int, n_bytes: int,
                 doc_starts: np.ndarray, gen: torch.Generator):
        self.model, self.batch, self.seq, self.windows = model, batch, seq, windows
        self.n_bytes, self.gen = n_bytes, gen
        self.doc_ends = np.append(np.asarray(doc_starts[1:], dtype=np.int64), n_bytes)
        self.pos = np.zeros(batch, dtype=np.int64)
        self.end = np.zeros(batch, dtype=np.int64)
        self.left = np.zeros(batch, dtype=np.int64)  # windows left; 0 = restart
        self.states = model.new_state(batch, torch.float32)
        self.restarts = 0

    def _restart(self, i: int) -> None:
        for _ in range(1000):
            p = int(torch.randint(0, self.n_bytes - self.seq - 1, (1,), generator=self.gen))
            end = int(self.doc_ends[np.searchsorted(self.doc_ends, p, side="right")])
            if p + self.seq + 1 <= end:
                break
        else:  # documents shorter than a window: read across their boundaries
            end = self.n_bytes
        self.pos[i], self.end[i], self.left[i] = p, end, self.windows
        self.restarts += 1

    def next(self):
        """Window starts (B,) and the states to continue from (reset where a lane restarts)."""
        fresh = np.zeros(self.batch, dtype=bool)
        for i in range(self.batch):
            if self.left[i] == 0 or self.pos[i] + self.seq + 1 > self.end[i]:
                self._restart(i)
                fresh[i] = True
        mask = torch.from_numpy(fresh)
        for st in self.states:
            st.detach_()
            st.reset_(mask)
        starts = torch.from_numpy(self.pos.copy())
        self.pos += self.seq
        self.left -= 1
        return starts, self.states


def distributed_setup(device: str):
    """``(rank, world)``. Under ``torchrun`` (``WORLD_SIZE`` > 1) joins the process
    group: gloo on CPU, NCCL on CUDA."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return dist.get_rank(), world


def sync_flag(flag: bool, world: int) -> bool:
    """True on every process if it is true on any (one collective call each)."""
    if world <= 1:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def param_checksums(model: torch.nn.Module) -> dict:
    """Per-tensor float64 sums and sums of squares, to compare processes' copies."""
    return {k: [float(v.double().sum()), float((v.double() ** 2).sum())]
            for k, v in model.state_dict().items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("data"), help="folder from latte_train.data")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--name", default="latte-micro")
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--latents", type=int, default=64)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--pos", choices=["sinusoidal", "vapor", "none"], default="sinusoidal")
    ap.add_argument("--gate", choices=["none", "decay"], default="none",
                    help="decay: a learned forgetting rate per latent (an extension of the paper's model)")
    ap.add_argument("--decay-max", type=float, default=0.25, help="upper bound of the decay rates")
    ap.add_argument("--stream-windows", type=int, default=0,
                    help="carry each layer's state across up to N consecutive windows of a lane "
                         "(truncated backpropagation through time; a lane restarts at a document "
                         "boundary or after N windows). 0 = every window starts fresh")
    ap.add_argument("--vapor-base", type=float, default=10000.0)
    ap.add_argument("--window", type=int, default=0,
                    help="Latte-Macchiato: also attend to the last WINDOW tokens (0: plain Latte)")
    ap.add_argument("--combine", choices=["sum", "joint"], default="sum",
                    help="how a Macchiato block combines the window with Latte")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=2400, help="number of steps (an upper bound with --minutes)")
    ap.add_argument("--minutes", type=float, default=0.0,
                    help="wall-clock budget; the schedule follows elapsed time (0 = off)")
    ap.add_argument("--amp", choices=["none", "bf16"], default="none",
                    help="mixed precision for the projections and MLP (a GPU, or a CPU with bf16 units)")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--patience", type=int, default=0,
                    help="stop after this many evaluations without a better validation score (0 = never)")
    ap.add_argument("--eval-windows", type=int, default=256, help="validation windows at each eval")
    ap.add_argument("--init", type=Path, default=None,
                    help="start from this model.safetensors (same configuration) instead of "
                         "random weights; the optimiser and the schedule start afresh")
    ap.add_argument("--train-only-new", action="store_true",
                    help="with --init growing a Latte model into a Macchiato one: train only the "
                         "window's parameters, the rest stays as loaded")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    if args.minutes < 0 or args.steps < 1:
        raise SystemExit("error: --steps must be at least 1 and --minutes not negative")

    if args.threads:
        torch.set_num_threads(args.threads)
    rank, world = distributed_setup(args.device)
    lead = rank == 0  # the process that prints, evaluates and writes
    if args.device.startswith("cuda") and world > 1:
        args.device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    torch.manual_seed(args.seed)  # the same initial weights everywhere
    gen = torch.Generator().manual_seed(args.seed + rank)  # each process its own batches
    for split in ("train", "val"):
        if not (args.data / f"{split}.txt").is_file():
            raise SystemExit(f"error: {args.data}/{split}.txt is missing; run "
                             f"`python3 -m latte_train.data --out {args.data}` first")
    train = load_bytes(args.data / "train.txt")
    val = load_bytes(args.data / "val.txt")
    if len(train) <= args.seq + 1:
        raise SystemExit("error: the training text is shorter than one sequence")

    cfg = LatteConfig(d_model=args.d_model, n_layers=args.layers, n_heads=args.heads,
                      n_latents=args.latents, max_seq_len=args.seq, pos_encoding=args.pos,
                      vapor_base=args.vapor_base, latent_decay=args.gate == "decay",
                      decay_max=args.decay_max, window=args.window, combine=args.combine)
    dev = torch.device(args.device)
    val_dev = val.to(dev)
    raw = LatteLM(cfg)
    if args.train_only_new and args.init is None:
        raise SystemExit("error: --train-only-new needs --init (a model without a window) and --window > 0")
    if args.init is not None:
        try:
            start, _ = load_safetensors(args.init)
        except (OSError, ValueError) as e:
            raise SystemExit(f"error: --init {args.init}: {e}")
        # A plain Latte model may start a Macchiato one: its Latte weights are
        # taken, the window starts fresh with Wv = 0 (so the window adds nothing
        # at first under "sum").
        grow = start.cfg.window == 0 and cfg.window > 0
        same = {k: v for k, v in asdict(start.cfg).items()
                if not (grow and k in ("window", "combine", "mixer"))}
        if any(getattr(cfg, k) != v for k, v in same.items()):
            diff = ", ".join(f"{k} {v!r} in the file, {getattr(cfg, k)!r} here"
                             for k, v in same.items() if getattr(cfg, k) != v)
            raise SystemExit(f"error: --init {args.init} has another configuration ({diff}); "
                             f"pass the same shape, --seq, --pos and --gate flags")
        missing, unexpected = raw.load_state_dict(start.state_dict(), strict=not grow)
        if unexpected or any(".local." not in k for k in missing):
            raise SystemExit(f"error: --init {args.init}: tensors do not match ({missing}, {unexpected})")
        if grow:
            with torch.no_grad():
                for blk in raw.blocks:
                    blk.local.wv.weight.zero_()
        if args.train_only_new:
            if not grow:
                raise SystemExit("error: --train-only-new needs --init with a model without a window "
                                 "and --window > 0")
            for n, prm in raw.named_parameters():
                prm.requires_grad_(".local." in n)
    raw = raw.to(dev)
    # Data parallel: every process trains on its own batches, gradients are
    # averaged, so the copies stay equal (the effective batch is world * --batch).
    model = DistributedDataParallel(raw) if world > 1 else raw
    decay = [p for n, p in raw.named_parameters() if p.dim() >= 2 and p.requires_grad]
    no_decay = [p for n, p in raw.named_parameters() if p.dim() < 2 and p.requires_grad]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.99))

    budget_s = args.minutes * 60.0

    def progress(step: int, elapsed: float) -> float:
        """Fraction of the run done: of the steps, or of the time budget if larger."""
        frac = step / args.steps
        if budget_s:
            frac = max(frac, elapsed / budget_s)
        return min(frac, 1.0)

    def lr_at(step: int, elapsed: float) -> float:
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        # The cosine runs over what is left after the warm-up steps.
        p = progress(step, elapsed)
        p0 = progress(args.warmup, 0.0) if not budget_s else 0.0
        frac = min(1.0, max(0.0, (p - p0) / max(1e-9, 1.0 - p0)))
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    amp = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.amp == "bf16")
    lanes = None
    if args.stream_windows:
        docs_path = args.data / "train-docs.npy"
        doc_starts = np.load(docs_path) if docs_path.is_file() else np.zeros(1, dtype=np.int64)
        lanes = Lanes(raw, args.batch, args.seq, args.stream_windows, len(train), doc_starts, gen)
    train_dev = train.to(dev)
    window = torch.arange(args.seq + 1, device=dev)

    args.out.mkdir(parents=True, exist_ok=True)
    say = (lambda *a, **k: print(*a, **k, flush=True)) if lead else (lambda *a, **k: None)
    say(f"{args.name}: {raw.num_params():,} parameters, config {cfg.to_json()}")
    if args.init is not None:
        say(f"weights from {args.init}")
    say(f"train {len(train):,} bytes, val {len(val):,} bytes, device {dev}"
        + (f", {world} processes (data parallel)" if world > 1 else ""))
    log = {"args": {k: str(v) for k, v in vars(args).items()}, "config": asdict(cfg),
           "params": raw.num_params(), "processes": world, "evals": []}
    t0 = time.time()
    tokens = 0
    best = math.inf
    best_state = None
    since_best = 0
    stopped_early = False
    widest_keys = 0.0
    step = 0
    while True:
        el = time.time() - t0
        last = sync_flag(step == args.steps - 1 or bool(budget_s and step >= args.warmup and el >= budget_s),
                         world)
        lr = lr_at(step, el)
        for g in opt.param_groups:
            g["lr"] = lr
        if lanes is None:
            starts = torch.randint(0, len(train) - args.seq - 1, (args.batch,), generator=gen)
            x = train_dev[starts.to(dev)[:, None] + window]
            states = None
        else:
            starts, states = lanes.next()
            x = train_dev[starts.to(dev)[:, None] + window]
        with amp:
            logits = model(x[:, :-1], states, 0)
            loss = F.cross_entropy(logits.reshape(-1, cfg.vocab_size).float(), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        tokens += x[:, 1:].numel() * world
        if lead and (step % 20 == 0 or last):
            lv = loss.item()
            if not math.isfinite(lv):
                raise SystemExit(f"error: loss became {lv} at step {step}")
            keys = max((float(b.latte.key_range) for b in raw.blocks if b.latte is not None), default=0.0)
            widest_keys = max(widest_keys, keys)
            el = time.time() - t0
            frac = max(progress(step + 1, el), 1e-9)
            eta = el / frac - el
            print(f"step {step:5d}/{args.steps}  loss {lv:.4f} ({lv / LN2:.3f} bits/byte)"
                  f"  lr {lr:.2e}  {tokens / el:,.0f} tok/s  key range {keys:.1f}"
                  f"  elapsed {el / 60:.1f} min  left {eta / 60:.1f} min", flush=True)
        evaluate = (step + 1) % args.eval_every == 0 or last
        if evaluate and lead:
            bpb = bits_per_byte(raw, val_dev, args.seq, 64, args.eval_windows)
            log["evals"].append({"step": step + 1, "val_bpb_subset": bpb, "tokens": tokens,
                                 "seconds": time.time() - t0})
            mark = ""
            since_best += 1
            if bpb < best:
                best, mark, since_best = bpb, " (best so far, kept)", 0
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in raw.state_dict().items()}
                log["best_step"] = step + 1
                save_safetensors(raw, args.out / "model.safetensors", name=args.name)
            print(f"  eval step {step + 1}: validation {bpb:.4f} bits/byte "
                  f"(first {args.eval_windows} windows){mark}", flush=True)
            if args.patience and since_best >= args.patience and not last:
                print(f"  no better validation score in {since_best} evaluations: stopping", flush=True)
                stopped_early = last = True
        if evaluate and world > 1:
            stopped_early = sync_flag(stopped_early, world)
            last = last or stopped_early
        step += 1
        if last:
            break
    train_s = time.time() - t0
    if world > 1:
        # Every process's copy, to check that they agree (the smoke test does).
        (args.out / f"params-rank{rank}.json").write_text(json.dumps(param_checksums(raw)) + "\n")
        # Tear the group down while the interpreter is fully alive: the DDP
        # wrapper's reducer holds the process group, so drop it (and any cycle
        # through it) first; otherwise gloo's worker threads can be destroyed
        # during interpreter shutdown, which aborts the process. The barrier
        # lets no process close its connections while another still talks.
        dist.barrier()
        del model
        gc.collect()
        dist.destroy_process_group()
        if not lead:
            return
    if best_state is not None:
        raw.load_state_dict(best_state)
    full = bits_per_byte(raw, val_dev, args.seq, 64)
    log.update({"train_seconds": train_s, "steps": step, "tokens": tokens, "val_bpb": full,
                "widest_key_range": widest_keys, "stopped_early": stopped_early})
    if widest_keys > EXP_RANGE:
        print(f"warning: a key range of {widest_keys:.1f} within a sequence passed {EXP_RANGE:.0f}; "
              f"the parallel form clamps such exponentials, so training saw an approximation there",
              flush=True)
    print(f"done in {train_s / 60:.1f} min, {step:,} steps, {tokens:,} tokens; validation {full:.4f} "
          f"bits/byte (all {(len(val) - 1) // args.seq} windows of {args.seq}, step {log.get('best_step')})",
          flush=True)
    save_safetensors(raw, args.out / "model.safetensors", name=args.name)
    (args.out / "train_log.json").write_text(json.dumps(log, indent=2) + "\n")


if __name__ == "__main__":
    main()
