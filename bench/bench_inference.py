"""Inference throughput: predictions/s batched vs one at a time (greedy), on the same prompts in one run.

    .venv/bin/python bench/bench_inference.py                   # SmolLM2-135M, 2 small ARC-1 eval tasks x 8 views
    .venv/bin/python bench/bench_inference.py --views 4 --batch-size 8 --plain --threads 2
    .venv/bin/python bench/bench_inference.py --model tiny-random    # a quick check of the script itself

The prompts are those evaluate.py builds (default encoder and prompt, D8 views of the test inputs, each with its
answer-length bound). Modes, all greedy, same prompts:

- ``one at a time``: :class:`~arc_exp.inference.generator.HFGenerator` with batch_size=1 and no prefix reuse;
- ``batched``: batch_size=16, prompts grouped by length, shared-prefix reuse (the evaluation defaults);
- ``batched, no prefix reuse``: the same without reusing the shared prefix, to see whether reuse pays;
- ``plain generate`` (``--plain``): ``model.generate`` one prompt at a time, for reference.

One torch thread by default: on this shared 2-core machine two threads waiting for each other made the
one-at-a-time run 3x slower under load, which would inflate the ratio.

Prints predictions per CPU-second (and per wall second), the batched / one-at-a-time ratio (goal >= 3x), the
prefill tokens saved by prefix reuse, where the time goes (prefill / decode) and whether the batched answers equal
the one-at-a-time ones. The CPU may be shared: the load average is printed too.

Measured here (2 shared cores, load 3-6, SmolLM2-135M, 1 thread, the default 16 prompts of 344-438 tokens with
answers bounded at 77 tokens): batched 0.31-0.33 predictions/CPU-s vs one at a time 0.095-0.116, i.e. 2.8-3.2x;
prefix reuse saves 30% of the prompt tokens and ~6-20% of the batched CPU time.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ARC_EXP_ROOT", str(ROOT))

import torch  # noqa: E402
from hydra.utils import instantiate  # noqa: E402

from arc_exp import schemas  # noqa: E402
from arc_exp.data.augmentation_policy import AugmentationPolicy  # noqa: E402
from arc_exp.data.selection import select_tasks  # noqa: E402
from arc_exp.data.sources import load_source  # noqa: E402
from arc_exp.data.encoders import create_grid_encoder  # noqa: E402
from arc_exp.evaluation.views import answer_token_cap, inference_views, view_prompt  # noqa: E402
from arc_exp.inference.generator import HFGenerator, greedy_reference  # noqa: E402
from arc_exp.inference.config import InferenceConfig  # noqa: E402
from arc_exp.model.loader import load_model, load_tokenizer  # noqa: E402

GOAL_RATIO = 3.0


def build_requests(tokenizer, n_tasks: int, views: int, max_grid_side: int):
    encoder = create_grid_encoder("grid_shape_row_number")
    tasks = select_tasks(load_source("arc1-evaluation"), max_grid_side=max_grid_side, first_n=n_tasks)
    cap = answer_token_cap(encoder, tokenizer)
    policy = AugmentationPolicy(color_permutation=False)
    requests = []
    for task in tasks:
        for test_index in range(len(task.test)):
            for view, augmentation in enumerate(inference_views(policy, views, False, random.Random(0))):
                prompt = view_prompt(task, test_index, augmentation, view, encoder, "output-from-examples-v0",
                                     tokenizer, cap, max_seq_len=8192)
                requests.append(prompt.request)
    return tasks, requests


def run(name, generate, requests):
    """Answer texts and predictions per CPU-second of this process (wall time is printed too: on a shared CPU it
    depends on the other jobs of the moment, CPU time much less)."""
    wall, cpu = time.perf_counter(), time.process_time()
    texts = generate(requests)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"  {name:<30} {len(requests) / cpu:6.3f} predictions/CPU-s  ({cpu:6.1f} CPU-s, {wall:6.1f} s wall, "
          f"{len(requests) / wall:6.3f} predictions/s)", flush=True)
    return texts, len(requests) / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m", help="a conf/model option")
    parser.add_argument("--tasks", type=int, default=2, help="small ARC-1 evaluation tasks")
    parser.add_argument("--views", type=int, default=8, help="augmented views (predictions) per test input")
    parser.add_argument("--max-grid-side", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--plain", action="store_true", help="also time model.generate one prompt at a time")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    spec = instantiate(schemas.load_option(ROOT / "conf" / "model" / f"{args.model}.yaml"))
    tokenizer, model = load_tokenizer(spec), load_model(spec).eval()
    tasks, requests = build_requests(tokenizer, args.tasks, args.views, args.max_grid_side)
    lengths = [len(r.prompt_ids) for r in requests]
    print(f"model {spec.name}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}; "
          f"{len(tasks)} tasks ({', '.join(t.task_id for t in tasks)}), {len(requests)} prompts of "
          f"{min(lengths)}-{max(lengths)} tokens, answer bounds {sorted({r.max_new_tokens for r in requests})}")

    single = HFGenerator(model, tokenizer, InferenceConfig(batch_size=1, reuse_prefix=False))
    batched = HFGenerator(model, tokenizer, InferenceConfig(batch_size=args.batch_size))
    no_reuse = HFGenerator(model, tokenizer, InferenceConfig(batch_size=args.batch_size, reuse_prefix=False))
    texts = lambda generator: lambda rs: [g.text for g in generator.generate(rs)]  # noqa: E731
    one, one_rate = run("one at a time", texts(single), requests)
    many, many_rate = run("batched", texts(batched), requests)
    no_reuse_texts, no_reuse_rate = run("batched, no prefix reuse", texts(no_reuse), requests)
    if args.plain:
        plain_generate = lambda rs: [tokenizer.decode(greedy_reference(model, tokenizer, r.prompt,  # noqa: E731
                                                                       r.max_new_tokens)) for r in rs]
        _, generate_rate = run("plain generate, one at a time", plain_generate, requests)

    stats = batched.stats
    print(f"batched / one at a time: {many_rate / one_rate:.2f}x (goal >= {GOAL_RATIO:.0f}x); "
          f"batched without prefix reuse: {no_reuse_rate / one_rate:.2f}x")
    if args.plain:
        print(f"batched / plain generate one at a time: {many_rate / generate_rate:.2f}x")
    print(f"prefill: {stats.prompt_tokens} prompt tokens, {stats.prefill_tokens} run through the model "
          f"({stats.padding_tokens} padding), prefix reuse saved {stats.prefill_tokens_saved} "
          f"({stats.prefill_tokens_saved / stats.prompt_tokens:.1%}); without reuse "
          f"{no_reuse.stats.prefill_tokens} ({no_reuse.stats.padding_tokens} padding)")
    for name, generator in (("one at a time", single), ("batched", batched)):
        print(f"{name}: prefill {generator.stats.prefill_seconds:.1f} s, decode {generator.stats.decode_seconds:.1f} s "
              f"({generator.stats.decode_steps} steps for {generator.stats.generated_tokens} tokens)")
    same = sum(a == b for a, b in zip(one, many))
    print(f"batched answers equal to one-at-a-time: {same}/{len(requests)} (no reuse: "
          f"{sum(a == b for a, b in zip(one, no_reuse_texts))}/{len(requests)}); load average now "
          f"{os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
