"""Solve ARC tasks: test-time fine-tuning on each task's own examples, then predictions into submission.json.

    python solve.py                                                  # ARC-1 evaluation: SmolLM2 + n-1 TTFT
    python solve.py challenges=/kaggle/input/arc-prize-2025/arc-agi_test_challenges.json \
        checkpoint=outputs/2026-01-01/12-00-00 time_budget_minutes=600  # a Kaggle run from a trained adapter
    python solve.py checkpoint=<MLflow run id> ttft=n2 ttft.per_task=true ttft.steps=32
    python solve.py data.eval.max_grid_side=10 data.eval.first_n=4 ttft.holdout=true  # held-out loss before/after
    python solve.py resume=outputs/solve/2026-01-01/12-00-00           # continue: finished stages are skipped
    python solve.py ensemble=[model,/kaggle/working/solver2020.json]   # merge attempts, this run's first
"""
import logging
import os
from pathlib import Path

os.environ.setdefault("ARC_EXP_ROOT", str(Path(__file__).resolve().parent))

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

log = logging.getLogger("solve")


@hydra.main(config_path="conf", config_name="solve", version_base="1.3")
def main(cfg: DictConfig) -> float:
    # imported here, not at the top: Lightning takes ~10 s to import, and a bad override or `--cfg job` should
    # answer at once
    from arc_exp.evaluation.checkpoints import check_checkpoint, resolve_checkpoints
    from arc_exp.evaluation.settings import settings_from_config
    from arc_exp.inference.config import create_generator
    from arc_exp.model.loader import load_tokenizer
    from arc_exp.model.tokenizer import wrap_tokenizer
    from arc_exp.model.vocabulary import resolve_vocabulary
    from arc_exp.tracking.runs import EvaluationTracker
    from arc_exp.ttft.budget import Budget
    from arc_exp.ttft.dataset import load_tasks
    from arc_exp.ttft.ensemble import load_ensemble
    from arc_exp.ttft.settings import set_torch_threads
    from arc_exp.ttft.solver import Solver
    from arc_exp.ttft.stages import run_folder

    hydra_cfg = HydraConfig.get()
    output_dir, overrides = Path(hydra_cfg.runtime.output_dir), list(hydra_cfg.overrides.task)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    budget = Budget(cfg.time_budget_minutes, **resolved["budget"])  # the clock starts now
    set_torch_threads(cfg.torch_threads)

    # every mistake a user can make fails here, before a model loads
    spec, adapter, inference = instantiate(cfg.model), instantiate(cfg.lora), instantiate(cfg.inference)
    settings = settings_from_config(cfg, inference, cfg.predictions_per_task)
    ttft_settings = instantiate(cfg.ttft)
    ensemble = load_ensemble(resolved["ensemble"])
    tracking_uri = cfg.logger.get("tracking_uri")
    checkpoint = resolve_checkpoints(cfg.checkpoint, False, tracking_uri)[0]
    check_checkpoint(checkpoint, spec.name, settings.encoder, adapter.method, settings.prompt_version)
    tasks = load_tasks(cfg.challenges, resolved["data"].get("eval"))
    # a checkpoint's vocabulary.json wins; without one, model.reduce_vocab=true builds one from the config. The
    # solver's models follow its tokenizer's vocabulary, and its TTFT adapters save it (vocabulary.json)
    tokenizer = load_tokenizer(spec)
    tokenizer = wrap_tokenizer(tokenizer, resolve_vocabulary(checkpoint.folder, spec.reduce_vocab, tokenizer,
                                                             settings.encoder, [settings.prompt_version], spec.name))
    run_dir = run_folder(cfg.resume, output_dir)
    log.info("solving %d tasks from %s with ttft=%s into %s", len(tasks), checkpoint.label,
             hydra_cfg.runtime.choices.get("ttft"), run_dir)
    config_file = run_dir / ("config.resumed.yaml" if cfg.resume else "config.yaml")  # keep the first run's
    config_file.write_text(OmegaConf.to_yaml(OmegaConf.create(resolved)))

    choices = {f"choice/{group}": str(option) for group, option in hydra_cfg.runtime.choices.items()
               if not group.startswith("hydra")}
    tracker = EvaluationTracker.start(
        cfg, resolved, overrides, "solve", "solve", config_file, model=spec.name,
        checkpoint=cfg.checkpoint or "base model", training_run_id=checkpoint.training_run_id,
        ttft=hydra_cfg.runtime.choices.get("ttft"), output_dir=str(run_dir.resolve()), resumed=str(bool(cfg.resume)),
        **choices)

    solver = Solver(spec, adapter, tokenizer, checkpoint, ttft_settings, settings,
                         make_generator=lambda model: create_generator(inference, model, tokenizer),
                         trainer_options=resolved["trainer"], config=resolved,
                         plots=(cfg.plots.failures, cfg.plots.successes), progress=cfg.progress)
    status = "FAILED"
    try:
        result = solver.run(tasks, run_dir, budget, tracker, ensemble)
        status = "FINISHED"
    finally:
        if tracker is not None:
            tracker.finish(status)
            log.info("see the run: mlflow ui --backend-store-uri %s  (run %s)", tracking_uri, tracker.run_id)
    log.info("submission: %s%s", result.submission, "" if result.score is None else f", score {result.score:.4f}")
    return result.score if result.score is not None else float("nan")


if __name__ == "__main__":
    main()
