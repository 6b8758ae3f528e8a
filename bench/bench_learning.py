"""Does it learn? Three learning benchmarks on CPU, each run through the project's own entry points.

    .venv/bin/python bench/bench_learning.py count      # SmolLM2-135M + LoRA on count chats: held-out count accuracy
    .venv/bin/python bench/bench_learning.py overfit    # 10 small ARC-1 training tasks: their test outputs, per step
    .venv/bin/python bench/bench_learning.py ttft       # the overfit checkpoint on 5 held-out tasks, without/with TTFT
    .venv/bin/python bench/bench_learning.py count --dry-run      # print the commands only
    .venv/bin/python bench/bench_learning.py count --steps 100 --set learning_rate=1e-3   # another setting

Each mode prints the commands it runs (generate.py, train.py, evaluate.py, solve.py with their overrides), so any
figure can be reproduced without this script, then the figures: accuracies before and after, the steps trained, the
wall time and the CPU time of the runs (user + system of the child processes) and the load average, because the CPU
of these machines is shared and wall time alone says little. Outputs go to outputs/bench_learning/<mode>/ with an
MLflow store of their own (mlflow.db inside).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "outputs" / "bench_learning"

# count: object count questions about single grids up to 8x8, both connectivities asked of every grid, in the short
# chat style (grid + question; the full style's introduction and definition of objects double the tokens)
COUNT_GENERATOR = ["generator=count", "generator.grids.max_side=8", "generator.questions.types=[count]",
                   "generator.questions.min_questions=2", "generator.questions.max_questions=2",
                   "generator.questions.multi_grid_prob=0", "generator.style=short"]
COUNT_TRAIN_CHATS, COUNT_HELDOUT_CHATS = 20000, 60
COUNT_TRAINING = ["encoder=minimal", "data.val=null", "trainer.limit_val_batches=0", "data.batch_size=8",
                  "data.max_seq_len=1024", "lora.r=32", "learning_rate=1e-3", "scheduler=linear",
                  "callbacks.checkpoint_every_n_steps=0", "trainer.enable_progress_bar=false"]
COUNT_STEPS, COUNT_EVERY = 100, 25

# overfit: 10 small ARC-1 training tasks (grids up to 6x6), trained with augmentation, scored on their own test outputs
SMALL_TASKS = "{source: arc1-training, max_grid_side: 6, first_n: 10}"
SMALL_EVAL = ["data.eval.source=arc1-training", "++data.eval.max_grid_side=6", "++data.eval.first_n=10"]
OVERFIT_TRAINING = [f"data.train=[{SMALL_TASKS[:-1]}, prompt: output-from-examples-v0, weight: 1.0, "
                    "loss_weight: 1.0, swap_train_test: true}]",
                    "data.val=null", "trainer.limit_val_batches=0", "data.max_seq_len=2048", "data.batch_size=2",
                    "data.bucket_batches=4", "learning_rate=4e-4", "trainer.enable_progress_bar=false"]
OVERFIT_STEPS, OVERFIT_EVERY = 150, 50
OVERFIT_EVALUATION = [*SMALL_EVAL, "data.max_seq_len=2048", "predictions_per_task=8", "progress=false"]

# ttft: 5 small held-out tasks (ARC-1 evaluation, grids up to 6x6), never trained on by the overfit run
HELDOUT_EVAL = ["data.eval.source=arc1-evaluation", "data.eval.max_grid_side=6", "data.eval.first_n=5"]
TTFT = ["ttft=n1", "ttft.steps=40", "ttft.learning_rate=2e-4", "predictions_per_task=8", "progress=false"]


class Runner:
    """Runs entry points from the project root, prints each command, keeps wall and CPU time."""

    def __init__(self, dry_run: bool, threads: int | None):
        self.dry_run, self.wall, self.cpu = dry_run, 0.0, 0.0
        self.env = dict(os.environ, ARC_EXP_ROOT=str(ROOT), HYDRA_FULL_ERROR="1")
        if threads:
            self.env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))

    def __call__(self, script: str, overrides: list[str], log: Path) -> None:
        command = [sys.executable, script, *overrides]
        print("$ " + " ".join(shlex.quote(c) for c in [".venv/bin/python", script, *overrides]), flush=True)
        if self.dry_run:
            return
        log.parent.mkdir(parents=True, exist_ok=True)
        before, start = _children_cpu(), time.perf_counter()
        with log.open("w") as out:
            done = subprocess.run(command, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        self.wall += time.perf_counter() - start
        self.cpu += _children_cpu() - before
        if done.returncode != 0:
            tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
            sys.exit(f"{script} failed (exit {done.returncode}); its log: {log}\n{tail}")

    def times(self) -> str:
        return f"wall {self.wall / 60:.1f} min, CPU {self.cpu / 60:.1f} min, load average {os.getloadavg()[0]:.1f}"


def _stamp() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"  # two benches started at once get their own folders


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _mlflow(folder: Path) -> list[str]:
    return [f"logger.tracking_uri=sqlite:///{folder / 'mlflow.db'}", "logger.experiment_name=bench_learning"]


def _run_metrics(folder: Path, run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every metric's history (step, value) of the training run whose output_dir is ``run_dir``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("bench_learning")
    [run] = client.search_runs([experiment.experiment_id], f"tags.output_dir = '{run_dir.resolve()}'")
    return {key: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
            for key in run.data.metrics}


def count_tokens(chats: Path, overrides: list[str]) -> tuple[float, float]:
    """Mean tokens and answer tokens per chat of the first 200 records, as train.py with ``overrides`` tokenizes
    them (its composed model and encoder)."""
    sys.path.insert(0, str(ROOT))
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from arc_exp import cli
    from arc_exp.data.samples import chat_sample
    from arc_exp.model.loader import load_tokenizer
    from arc_exp.synthetic import load_chats

    cli.prepare()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", [o for o in overrides if not o.startswith("hydra.")])
    tokenizer = load_tokenizer(instantiate(cfg.model))
    chats_of_run = load_chats(chats, encoder=instantiate(cfg.encoder))
    samples = [chat_sample(chat, tokenizer) for _, chat in zip(range(200), chats_of_run)]
    return (statistics.mean(len(s) for s in samples),
            statistics.mean(sum(label != -100 for label in s.labels) for s in samples))


def count(args, run: Runner) -> None:
    folder = OUT / "count"
    # the held-out chats are always the default generator's (count questions, both connectivities); --generate
    # changes the training chats only, which then go to a folder of their own
    suffix = "-" + hashlib.sha1(" ".join(args.generate).encode()).hexdigest()[:8] if args.generate else ""
    train_chats, heldout = ROOT / "data" / f"bench-count-train{suffix}", ROOT / "data" / "bench-count-heldout"
    run("generate.py", [*COUNT_GENERATOR, *args.generate, f"n={COUNT_TRAIN_CHATS}", f"out={train_chats}", "seed=0"],
        folder / f"generate-train{suffix}.log")
    # generate.py continues (or keeps) an earlier identical output, so a second bench run reuses the chats
    run("generate.py", [*COUNT_GENERATOR, f"n={COUNT_HELDOUT_CHATS}", f"out={heldout}", "seed=1"],
        folder / "generate-heldout.log")
    run_dir = folder / _stamp()
    overrides = [f"data.train=[{{chats: {train_chats}, weight: 1.0, loss_weight: 1.0}}]", *COUNT_TRAINING,
                 f"evaluation.count_qa={{chats: {heldout}, n_chats: {COUNT_HELDOUT_CHATS}, before: true, "
                 f"max_new_tokens: 4, every_n_steps: {args.every or COUNT_EVERY}}}",
                 f"trainer.max_steps={args.steps or COUNT_STEPS}", *_mlflow(folder), *args.set,
                 f"hydra.run.dir={run_dir}"]
    if not args.dry_run:
        tokens, answers = count_tokens(train_chats, overrides)
        print(f"tokens per training chat: {tokens:.1f} ({answers:.1f} of them answer tokens, which carry the loss)")
    run("train.py", overrides, run_dir / "train.log")
    if args.dry_run:
        return
    metrics = _run_metrics(folder, run_dir)
    after = metrics["qa/count"][-1]
    steps = after[0]
    # evaluation.count_qa.before=false skips the (deterministic, greedy) base model's answers: no step-0 point
    before = f"{metrics['qa/count'][0][1]:.3f}" if metrics["qa/count"][0][0] == 0 else "not asked"
    tokens_per_s = statistics.mean(v for _, v in metrics.get("train/tokens_per_s", [(0, float("nan"))]))
    print(f"held-out count accuracy ({COUNT_HELDOUT_CHATS} grids, {int(metrics['qa/n_questions'][-1][1])} "
          f"questions): before {before} -> after {after[1]:.3f} (step {steps})")
    print("accuracy curve: " + ", ".join(f"step {step} {value:.3f}" for step, value in metrics["qa/count"]))
    print(f"{steps} steps, {run.times()}, {tokens_per_s:.0f} training tokens/s; final train loss "
          f"{metrics['train/loss'][-1][1]:.4f}; run folder {run_dir}")


def overfit(args, run: Runner) -> Path:
    folder = OUT / "overfit"
    run_dir = folder / _stamp()
    steps = args.steps or OVERFIT_STEPS
    run("train.py", [*OVERFIT_TRAINING, f"trainer.max_steps={steps}",
                     f"callbacks.checkpoint_every_n_steps={args.every or OVERFIT_EVERY}", *_mlflow(folder), *args.set,
                     f"hydra.run.dir={run_dir}"], run_dir / "train.log")
    train_wall, train_cpu = run.wall, run.cpu
    eval_dir = run_dir / "evaluation"
    run("evaluate.py", [f"checkpoint={run_dir}", "all_checkpoints=true", *OVERFIT_EVALUATION, *_mlflow(folder),
                        *_evaluation_overrides(args.set), f"hydra.run.dir={eval_dir}"], run_dir / "evaluate.log")
    if args.dry_run:
        return run_dir
    print(f"training: {steps} steps, wall {train_wall / 60:.1f} min, CPU {train_cpu / 60:.1f} min")
    print_curve(eval_dir)
    print(f"training + evaluation: {run.times()}; run folder {run_dir}")
    return run_dir


def print_curve(eval_dir: Path) -> None:
    """The metrics of every evaluated step of an overfit run (``--report <run folder>`` prints them again)."""
    print(f"{'step':>6} {'vote_2':>7} {'pass_2':>7} {'accuracy':>9} {'correct_pixels':>15} {'correct_size':>13}")
    for step_folder in sorted(eval_dir.glob("step-*")):
        m = json.loads((step_folder / "metrics.json").read_text())["metrics"]
        print(f"{int(step_folder.name[5:]):>6} {m['vote_2']:>7.3f} {m['pass_2']:>7.3f} {m['accuracy']:>9.3f} "
              f"{m['correct_pixels']:>15.3f} {m['correct_size']:>13.3f}")


def _evaluation_overrides(overrides: list[str]) -> list[str]:
    """The --set overrides evaluate.py and solve.py also know (the encoder and model a checkpoint was trained with)."""
    return [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in ("encoder", "model", "model.reduce_vocab",
                                                                        "prompt")]


def ttft(args, run: Runner) -> None:
    folder = OUT / "ttft"
    checkpoint = args.checkpoint
    if checkpoint is None:
        runs = sorted(p for p in (OUT / "overfit").glob("*/checkpoints") if any(p.glob("step-*")))
        if not runs:
            sys.exit("no overfit run under outputs/bench_learning/overfit/: run `bench_learning.py overfit` first, "
                     "or give --checkpoint")
        checkpoint = str(runs[-1].parent)
    stamp = _stamp()
    without, with_ttft = folder / f"{stamp}-without", folder / f"{stamp}-with"
    shared = [f"checkpoint={checkpoint}", *HELDOUT_EVAL, "data.max_seq_len=2048", *_mlflow(folder),
              *_evaluation_overrides(args.set)]
    run("solve.py", [*shared, "ttft=none", "predictions_per_task=8", "progress=false", f"hydra.run.dir={without}"],
        folder / f"{stamp}-without.log")
    run("solve.py", [*shared, *TTFT, *[o for o in args.set if o.startswith("ttft.")], f"hydra.run.dir={with_ttft}"],
        folder / f"{stamp}-with.log")
    if args.dry_run:
        return
    print(f"checkpoint {checkpoint}, 5 held-out tasks: {' '.join(HELDOUT_EVAL)}")
    print(f"{'':>14} {'score':>6} {'vote_2':>7} {'accuracy':>9} {'correct_pixels':>15}")
    for name, run_dir in (("without TTFT", without), ("with TTFT", with_ttft)):
        m = json.loads((run_dir / "predict" / "metrics.json").read_text())["metrics"]
        score = json.loads((run_dir / "score.json").read_text()) if (run_dir / "score.json").exists() else {}
        print(f"{name:>14} {score.get('score', float('nan')):>6.3f} {m['vote_2']:>7.3f} {m['accuracy']:>9.3f} "
              f"{m['correct_pixels']:>15.3f}")
    print(f"{run.times()}; run folders {without}, {with_ttft}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["count", "overfit", "ttft"])
    parser.add_argument("--steps", type=int, help="training steps (count: 100, overfit: 150)")
    parser.add_argument("--every", type=int, help="overfit: checkpoint (and evaluate) every N steps (50); count: held-out accuracy every N steps (25)")
    parser.add_argument("--checkpoint", help="ttft: the checkpoint to start from (default: the last overfit run)")
    parser.add_argument("--generate", nargs="*", default=[],
                        help="count: generate.py overrides of the training chats (the held-out ones stay the default "
                             "count questions), e.g. 'generator.questions.types=[count,count_color]'")
    parser.add_argument("--set", nargs="*", default=[], help="more train.py overrides, e.g. learning_rate=1e-3")
    parser.add_argument("--threads", type=int, default=1,
                        help="OMP threads of each run (default 1: on a CPU shared with other jobs one thread trained "
                             "3.6x faster than two that wait for each other; 0: torch's default)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--report", type=Path, help="overfit: print the curve of this run folder's evaluation/ again")
    args = parser.parse_args()
    if args.report is not None:
        return print_curve(args.report / "evaluation")
    run = Runner(args.dry_run, args.threads)
    print(f"bench_learning {args.mode}, {time.strftime('%Y-%m-%d %H:%M')} UTC, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    {"count": count, "overfit": overfit, "ttft": ttft}[args.mode](args, run)


if __name__ == "__main__":
    main()
