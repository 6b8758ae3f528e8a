"""Reduced vocabulary (model.reduce_vocab=true): parameters, their memory and training tokens/s, full vs reduced.

    .venv/bin/python bench/bench_vocabulary.py                          # SmolLM2-135M, LoRA r=32, 4 steps x 2 rounds
    .venv/bin/python bench/bench_vocabulary.py --steps 2 --method full  # full fine-tuning (embedding gradients, Adam)
    .venv/bin/python bench/bench_vocabulary.py --steps 0 --generate 2    # generation tokens/s only
    .venv/bin/python bench/bench_vocabulary.py --model tiny-random --steps 8

Builds the vocabulary of the default encoder and prompt, then measures side by side in one run, on the same batches
(small ARC-1 training tasks tokenized once; the reduced model gets the same tokens as reduced ids): the parameters and
their fp32 memory before and after, and training tokens/s of a plain torch loop (the step of arc_exp.training.module:
answer_loss, backward, clip, AdamW) with a fresh model per round, the two models alternating so drifting machine load
hits both alike. With ``--generate N`` also greedy generation tokens/s on N prompts (the output layer runs on every
generated token). fp32 on CPU, ``--threads`` torch threads (1 by default: the CPU is shared).
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

import torch  # noqa: E402
from hydra.utils import instantiate  # noqa: E402

from arc_exp import schemas  # noqa: E402
from arc_exp.model.adapters import AdapterConfig, apply_adapter, trainable_parameters  # noqa: E402
from arc_exp.data.augmentation_policy import AugmentationPolicy  # noqa: E402
from arc_exp.data.datamodule import TrainingDataset, TrainingStream  # noqa: E402
from arc_exp.data.samples import IGNORE_INDEX  # noqa: E402
from arc_exp.data.selection import TaskSetSpec  # noqa: E402
from arc_exp.data.encoders import DEFAULT_ENCODER, create_grid_encoder  # noqa: E402
from arc_exp.inference.config import InferenceConfig  # noqa: E402
from arc_exp.inference.generator import create_generator  # noqa: E402
from arc_exp.inference.requests import GenerationRequest  # noqa: E402
from arc_exp.model.loader import load_model, load_tokenizer  # noqa: E402
from arc_exp.data.prompts import build_messages, render_prompt  # noqa: E402
from arc_exp.model.vocabulary import build_reduced_vocabulary
from arc_exp.model.surgery import parameter_summary, reduce_model_vocabulary
from arc_exp.model.tokenizer import ReducedTokenizer
from bench_training import plain_tokens_per_s  # noqa: E402 - this folder: the training loop timed the same way

PROMPT = "output-from-examples-v0"


def fresh_model(spec, vocabulary, method: str, seed: int = 0):
    torch.manual_seed(seed)
    model = load_model(spec, seed=seed)
    if vocabulary is not None:
        model = reduce_model_vocabulary(model, vocabulary)
    return apply_adapter(model, AdapterConfig(method=method, r=32))


def reduce_batch(batch: dict, vocabulary, pad_id: int) -> dict:
    """The same batch in reduced ids (padding becomes the reduced pad id, masked labels stay masked)."""
    table = torch.full((vocabulary.kept_ids[-1] + 1,), -1, dtype=torch.long)
    table[list(vocabulary.kept_ids)] = torch.arange(len(vocabulary))
    ids = torch.where(batch["attention_mask"].bool(), table[batch["input_ids"]], pad_id)
    labels = torch.where(batch["labels"] == IGNORE_INDEX, IGNORE_INDEX, table[batch["labels"].clamp_min(0)])
    assert (ids >= 0).all() and ((labels >= 0) | (labels == IGNORE_INDEX)).all(), "a token outside the vocabulary"
    return {**batch, "input_ids": ids, "labels": labels}


def train_tokens_per_s(spec, vocabulary, method: str, batches: list) -> float:
    return plain_tokens_per_s(fresh_model(spec, vocabulary, method), batches)


def generation_tokens_per_s(spec, vocabulary, tokenizer, prompts: list[str], max_new_tokens: int
                            ) -> tuple[float, float]:
    """Generated tokens per second of the whole generate() call (prefill included) and of the decoding steps."""
    model = load_model(spec, seed=0)
    if vocabulary is not None:
        model, tokenizer = reduce_model_vocabulary(model, vocabulary), ReducedTokenizer(tokenizer, vocabulary)
    generator = create_generator(InferenceConfig(batch_size=1), model, tokenizer)
    start = time.perf_counter()
    made = sum(g.n_tokens for g in generator.generate([GenerationRequest(p, max_new_tokens) for p in prompts]))
    seconds = time.perf_counter() - start
    stats = generator.stats
    return made / seconds, stats.generated_tokens / max(stats.decode_seconds, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--method", default="lora", choices=["lora", "full"], help="LoRA r=32 all-linear, or full")
    parser.add_argument("--steps", type=int, default=4, help="training steps per round (0: no training figures)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="alternate the two models this many times")
    parser.add_argument("--generate", type=int, default=0, help="also time greedy generation on this many prompts")
    parser.add_argument("--new-tokens", type=int, default=32, help="at most this many generated tokens per prompt")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a "Loading weights" bar per model otherwise

    spec = instantiate(schemas.load_option(ROOT / "conf" / "model" / f"{args.model}.yaml"))
    tokenizer = load_tokenizer(spec)
    encoder = create_grid_encoder(DEFAULT_ENCODER)
    began = time.perf_counter()
    vocabulary = build_reduced_vocabulary(tokenizer, encoder, [PROMPT], base_model=spec.name)
    built = time.perf_counter() - began

    full, small = parameter_summary(load_model(spec)), parameter_summary(reduce_model_vocabulary(load_model(spec),
                                                                                                 vocabulary))
    print(f"model {args.model}, encoder {DEFAULT_ENCODER}, prompt {PROMPT}: vocabulary {len(tokenizer)} -> "
          f"{len(vocabulary)} tokens (built in {built:.1f} s)")
    print(f"{'':26}{'full':>14}{'reduced':>14}{'ratio':>9}")
    rows = (("parameters", "parameters"), ("parameters_mb", "parameter memory (MB)"),
            ("vocab_parameters", "embedding + output layer"), ("vocab_parameters_mb", "  their memory (MB)"))
    for key, label in rows:
        fmt = "{:>14,.1f}" if key.endswith("mb") else "{:>14,}"
        print(f"{label:26}{fmt.format(full[key])}{fmt.format(small[key])}{small[key] / full[key]:>9.4f}")
    trainable = [trainable_parameters(fresh_model(spec, v, args.method))[0] for v in (None, vocabulary)]
    label = f"trainable ({args.method})"
    print(f"{label:26}{trainable[0]:>14,}{trainable[1]:>14,}{trainable[1] / trainable[0]:>9.4f}")
    # fp32 gradients and AdamW's two moments of every trainable parameter
    state = [3 * 4 * n / 2 ** 20 for n in trainable]
    print(f"{'gradients + AdamW (MB)':26}{state[0]:>14,.1f}{state[1]:>14,.1f}{state[1] / state[0]:>9.4f}")

    tasks = TaskSetSpec("arc1-training", max_grid_side=10).load()
    if args.steps:
        train_side_by_side(args, spec, tokenizer, encoder, vocabulary, tasks)
    if args.generate:
        prompts = [render_prompt(build_messages(task, encoder, PROMPT), tokenizer) for task in tasks[:args.generate]]
        gen = {name: generation_tokens_per_s(spec, v, tokenizer, prompts, args.new_tokens)
               for name, v in (("full", None), ("reduced", vocabulary))}
        print(f"\ngreedy generation, {len(prompts)} prompts, up to {args.new_tokens} new tokens each "
              f"(tokens/s of the whole call, of the decoding steps alone):")
        for name, (whole, decode) in gen.items():
            print(f"  {name:8} {whole:8.1f} tokens/s   decoding {decode:8.1f} tokens/s")
        print(f"  ratio reduced/full: {gen['reduced'][0] / gen['full'][0]:.3f}   decoding "
              f"{gen['reduced'][1] / gen['full'][1]:.3f}")


def train_side_by_side(args, spec, tokenizer, encoder, vocabulary, tasks) -> None:
    stream = TrainingStream([TrainingDataset("arc1-training", tasks, PROMPT)], encoder, tokenizer,
                            AugmentationPolicy(), 2048, args.batch_size, seed=0, bucket_batches=8)
    batches = [batch for batch, _ in zip(iter(stream), range(args.steps + 1))]
    reduced_pad = ReducedTokenizer(tokenizer, vocabulary).pad_token_id
    reduced_batches = [reduce_batch(b, vocabulary, reduced_pad) for b in batches]
    tokens = sum(int(b["attention_mask"].sum()) for b in batches[1:])
    print(f"\ntraining: {args.steps} steps x batch {args.batch_size} ({tokens} tokens, small ARC-1 training tasks), "
          f"fp32 CPU, {args.threads} thread(s), {args.method}")
    train_tokens_per_s(spec, None, args.method, batches[:1])  # warm up allocator and kernels once
    train_tokens_per_s(spec, vocabulary, args.method, reduced_batches[:1])
    rates = {"full": [], "reduced": []}
    for _ in range(args.rounds):
        rates["full"].append(train_tokens_per_s(spec, None, args.method, batches[1:]))
        rates["reduced"].append(train_tokens_per_s(spec, vocabulary, args.method, reduced_batches[1:]))
    for name, values in rates.items():
        print(f"  {name:8} {max(values):8.1f} tokens/s  (rounds: {', '.join(f'{v:.1f}' for v in values)})")
    print(f"  ratio reduced/full: {max(rates['reduced']) / max(rates['full']):.3f}")


if __name__ == "__main__":
    main()
