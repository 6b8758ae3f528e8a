"""Data-parallel training on this CPU machine: samples/s of 1 process vs 2 (gloo) on the same global batches, and the
share of a step spent communicating (the gradient all-reduce).

    .venv/bin/python bench/bench_distributed.py                          # SmolLM2-135M + LoRA r=32, global batch 2
    .venv/bin/python bench/bench_distributed.py --model tiny-random --steps 20

Each configuration runs arc_exp.training.module's step (answer_loss, backward, gradient all-reduce, clip, AdamW) on
the training stream split as trainer=ddp_cpu splits it (process r of w: positions r, r+w, ... of each global batch).
The all-reduce runs after the backward pass here, not overlapped with it as Lightning's DDP does, so its share is an
upper bound. 1 process runs with every core as threads and with 1 thread; 2 processes get one core each (what
Lightning sets). The machine may be shared: run it when it is idle (see `uptime`) and compare rows of one run only.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ARC_EXP_ROOT", str(ROOT))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from arc_exp.data.selection import TaskSetSpec  # noqa: E402
from arc_exp.model.loader import load_tokenizer  # noqa: E402
from bench_training import fresh_model, stream  # noqa: E402

from arc_exp.training.module import answer_loss  # noqa: E402


def worker(rank: int, world: int, args, port: int, results, threads: int) -> None:
    torch.set_num_threads(threads)
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    spec = instantiate(OmegaConf.load(ROOT / "conf" / "model" / f"{args.model}.yaml"))
    tokenizer = load_tokenizer(spec)
    tasks = TaskSetSpec(source="arc1-training", max_grid_side=args.max_grid_side, first_n=64).load()
    data = stream(tasks, tokenizer, args.batch_size * 2 // world, max_seq_len=2048, bucket_batches=8)
    data.set_rank(rank, world)
    batches = iter(data)
    model = fresh_model(spec)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    communication, elapsed, tokens = 0.0, 0.0, 0
    for step in range(args.steps + 1):  # step 0 warms up
        batch = next(batches)
        began = time.perf_counter()
        loss, _ = answer_loss(model, batch)
        loss.backward()
        if world > 1:
            flat = torch.cat([p.grad.reshape(-1) for p in params])
            reduced = time.perf_counter()
            dist.all_reduce(flat)
            spent = time.perf_counter() - reduced
            flat /= world
            offset = 0
            for p in params:
                p.grad.copy_(flat[offset: offset + p.numel()].view_as(p))
                offset += p.numel()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step > 0:
            elapsed += time.perf_counter() - began
            communication += spent if world > 1 else 0.0
            tokens += int(batch["attention_mask"].sum())
    results[rank] = (elapsed, communication, tokens, threads)
    if world > 1:
        dist.destroy_process_group()


def run(world: int, args, threads: int) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(worker, args=(world, args, port, results, threads), nprocs=world, join=True)
    elapsed = max(r[0] for r in results.values())  # the step ends when the slowest process ends it
    samples = args.steps * args.batch_size * 2
    return {"processes": world, "threads": results[0][3], "samples_per_s": samples / elapsed,
            "tokens_per_s": sum(r[2] for r in results.values()) / elapsed,
            "communication_share": max(r[1] / r[0] for r in results.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m", help="a conf/model option")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=1, help="samples per process at 2 processes (the global "
                                                                    "batch is twice this in both configurations)")
    parser.add_argument("--max-grid-side", type=int, default=4,
                        help="tasks whose grids fit (4: ~330-580 tokens a sample; longer ones take GBs of "
                             "attention activations)")
    args = parser.parse_args()
    print(f"{args.model}, LoRA r=32, global batch {2 * args.batch_size}, {args.steps} steps, "
          f"{os.cpu_count()} cores (shared with whatever else runs)")
    cores = os.cpu_count() or 1
    # 1 process x 1 thread too: on a loaded machine threads that wait for each other can cost more than they bring
    rows = [run(1, args, cores), run(1, args, 1), run(2, args, max(1, cores // 2))]
    for row in rows:
        print(f"{row['processes']} process(es) x {row['threads']} thread(s): {row['samples_per_s']:.3f} samples/s, "
              f"{row['tokens_per_s']:.0f} tokens/s, communication {100 * row['communication_share']:.1f}% of a step")
    print(f"speed-up of 2 processes: x{rows[2]['samples_per_s'] / rows[0]['samples_per_s']:.2f} over 1 process x "
          f"{cores} threads, x{rows[2]['samples_per_s'] / rows[1]['samples_per_s']:.2f} over 1 process x 1 thread")


if __name__ == "__main__":
    main()
