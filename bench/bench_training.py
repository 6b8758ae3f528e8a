"""Training throughput: the Lightning path vs a plain torch + PEFT loop on the same batches, and batch fill.

    .venv/bin/python bench/bench_training.py                      # SmolLM2-135M, 8 steps each, small ARC-1 tasks
    .venv/bin/python bench/bench_training.py --model tiny-random --steps 20

Prints tokens/s of both paths measured side by side in one run (goal: Lightning / plain >= 0.95) and the share of
real (non-padding) tokens in batches of ARC-1 training with the default encoder (goal >= 0.95).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ARC_EXP_ROOT", str(ROOT))

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
from hydra.utils import instantiate  # noqa: E402

from arc_exp import schemas  # noqa: E402
from arc_exp.model.adapters import AdapterConfig, apply_adapter  # noqa: E402
from arc_exp.data.augmentation_policy import AugmentationPolicy  # noqa: E402
from arc_exp.data.datamodule import TrainingDataset, TrainingStream  # noqa: E402
from arc_exp.data.selection import TaskSetSpec  # noqa: E402
from arc_exp.data.encoders import create_grid_encoder  # noqa: E402
from arc_exp.training.module import ARCLitModule, answer_loss  # noqa: E402
from arc_exp.model.loader import load_model, load_tokenizer  # noqa: E402


def stream(tasks, tokenizer, batch_size, max_seq_len, bucket_batches=64, seed=0):
    dataset = TrainingDataset("arc1-training", tasks, "output-from-examples-v0")
    return TrainingStream([dataset], create_grid_encoder("grid_shape_row_number"), tokenizer, AugmentationPolicy(),
                          max_seq_len, batch_size, seed=seed, bucket_batches=bucket_batches)


def fresh_model(spec, seed=0):
    torch.manual_seed(seed)
    return apply_adapter(load_model(spec, seed=seed), AdapterConfig(r=32))


def plain_tokens_per_s(model, batches) -> float:
    """Training tokens/s of a plain torch loop doing arc_exp.training.module's step: answer_loss, backward, clip, AdamW."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    tokens, start = 0, time.perf_counter()
    for batch in batches:
        loss, _ = answer_loss(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += int(batch["attention_mask"].sum())
    return tokens / (time.perf_counter() - start)


def plain_loop(spec, batches) -> float:
    return plain_tokens_per_s(fresh_model(spec), batches)


def lightning_loop(spec, batches) -> float:
    module = ARCLitModule(fresh_model(spec), learning_rate=1e-4, scheduler=None, total_steps=len(batches))
    trainer = pl.Trainer(accelerator="cpu", devices=1, precision="32-true", max_steps=len(batches), logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         gradient_clip_val=1.0, limit_val_batches=0, num_sanity_val_steps=0)
    loader = torch.utils.data.DataLoader(batches, batch_size=None)
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    start = time.perf_counter()
    trainer.fit(module, train_dataloaders=loader)
    return tokens / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="alternate the two paths this many times")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)

    spec = instantiate(schemas.load_option(ROOT / "conf" / "model" / f"{args.model}.yaml"))
    tokenizer = load_tokenizer(spec)

    small = TaskSetSpec("arc1-training", max_grid_side=10).load()
    batches = list(_take(iter(stream(small, tokenizer, args.batch_size, 2048)), args.steps + 1))
    plain_loop(spec, batches[:1])  # warm up allocator and kernels once
    plain, lightning = [], []
    for _ in range(args.rounds):  # alternate, so drifting machine load hits both paths alike
        plain.append(plain_loop(spec, batches[1:]))
        lightning.append(lightning_loop(spec, batches[1:]))
    best_plain, best_lightning = max(plain), max(lightning)
    print(f"model {args.model}, {args.steps} steps x batch {args.batch_size}, small ARC-1 training tasks")
    print(f"plain torch+PEFT loop : {best_plain:8.1f} tokens/s  (rounds: {', '.join(f'{v:.1f}' for v in plain)})")
    print(f"Lightning module      : {best_lightning:8.1f} tokens/s  (rounds: {', '.join(f'{v:.1f}' for v in lightning)})")
    print(f"ratio Lightning/plain : {best_lightning / best_plain:.3f}   (goal >= 0.95)")
    # each round's two paths ran back to back: on a shared machine whose load changes, a round's own ratio is the
    # fairer comparison (the best of each path may come from rounds of different load)
    print(f"ratio per round       : {', '.join(f'{l / p:.3f}' for p, l in zip(plain, lightning))}")

    every = TaskSetSpec("arc1-training").load()
    for batch_size in (1, 4, 8):
        real = total = 0
        for batch in _take(iter(stream(every, tokenizer, batch_size, 8192)), 64):
            real += int(batch["attention_mask"].sum())
            total += batch["attention_mask"].numel()
        print(f"real-token share, ARC-1 training, grid_shape_row_number, batch {batch_size}: {real / total:.3f}"
              f"   (goal >= 0.95)")


def _take(iterator, n):
    for _ in range(n):
        yield next(iterator)


if __name__ == "__main__":
    main()
