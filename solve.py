"""Solve ARC tasks: test-time fine-tuning on each task's own examples, then predictions into submission.json.

    python solve.py                                                  # ARC-1 evaluation: SmolLM2 + n-1 TTFT
    python solve.py challenges=/kaggle/input/arc-prize-2025/arc-agi_test_challenges.json \
        checkpoint=outputs/2026-01-01/12-00-00 time_budget_minutes=600  # a Kaggle run from a trained adapter
    python solve.py checkpoint=<MLflow run id> ttft=n2 ttft.per_task=true ttft.steps=32
    python solve.py data.eval.max_grid_side=10 data.eval.first_n=4 ttft.holdout=true  # held-out loss before/after
    python solve.py resume=outputs/solve/2026-01-01/12-00-00           # continue: finished stages are skipped
    python solve.py ensemble=[model,/kaggle/working/solver2020.json]   # merge attempts, this run's first
    python solve.py checkpoint=<run> shards=2                          # tasks split over 2 processes (GPUs, cores)
    python solve.py -m checkpoint=<run> shard=0/2,1/2 && python solve.py checkpoint=<run> merge=<sweep dir>
"""
import functools
import logging
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from arc_exp import cli

log = logging.getLogger("solve")


@cli.main(__file__, "solve")
def main(cfg: DictConfig) -> float:
    # imported here, not at the top: Lightning takes ~10 s to import, and a bad override or `--cfg job` should
    # answer at once
    from arc_exp.evaluation import shards as sharding
    from arc_exp.evaluation.job import prepare_job, start_job_run
    from arc_exp.evaluation.settings import settings_from_config
    from arc_exp.inference.generator import create_generator
    from arc_exp.tracking import references
    from arc_exp.training.distributed import check_processes
    from arc_exp.ttft.budget import Budget
    from arc_exp.ttft.dataset import load_tasks
    from arc_exp.ttft.ensemble import load_ensemble
    from arc_exp.ttft.finetune import AdapterTraining
    from arc_exp.ttft.parts import load_solve_parts
    from arc_exp.ttft.settings import set_torch_threads
    from arc_exp.ttft.solver import Solver
    from arc_exp.ttft.stages import run_folder

    hydra_cfg = HydraConfig.get()
    output_dir, overrides = Path(hydra_cfg.runtime.output_dir), list(hydra_cfg.overrides.task)
    # checkpoint=run:<key>:<value>/... (run.py's references): the run folder of the one run it names
    cfg.checkpoint = references.resolve(cfg.checkpoint, cfg.logger.get("tracking_uri"), "checkpoint")
    resolved = OmegaConf.to_container(cfg, resolve=True)
    budget = Budget(cfg.time_budget_minutes, **resolved["budget"])  # the clock starts now
    set_torch_threads(cfg.torch_threads)

    # every mistake a user can make fails here, before a model loads
    # the run's seed moves the sampler's too (inference.seed is an offset): -m seed=0,1,2 gives three draws
    spec, adapter = instantiate(cfg.model), instantiate(cfg.lora)
    inference = instantiate(cfg.inference, seed=cfg.inference.seed + cfg.seed)
    settings = settings_from_config(instantiate(cfg.encoder), cfg.prompt.version, instantiate(cfg.augmentation),
                                    inference, cfg.predictions_per_task, cfg.seed,
                                    cfg.data.max_seq_len)
    ttft_settings = instantiate(cfg.ttft)
    if ttft_settings.enabled:  # TTFT trains with conf/trainer: trainer=gpu on a machine without one fails here
        check_processes(resolved["trainer"])
    ensemble = load_ensemble(resolved["ensemble"])
    tasks = load_tasks(cfg.challenges, resolved["data"].get("eval"))
    # the solver's models follow its tokenizer's vocabulary, and its TTFT adapters save it (vocabulary.json)
    job = prepare_job(spec, adapter, settings.encoder, cfg.checkpoint, cfg.logger.get("tracking_uri"),
                      [settings.prompt_version], settings.prompt_version, scored_tasks=tasks,
                      allow_trained_outputs=cfg.evaluation.allow_trained_outputs,
                      skip_trained_tasks=cfg.evaluation.skip_trained_tasks)
    tasks = job.tasks  # without those whose test outputs the checkpoint trained on, when they are skipped
    shard = sharding.check_sharding(cfg.shards, cfg.shard, cfg.merge, len(tasks),
                                    "challenges" if cfg.challenges else "data.eval")  # shard=i/N: this job's
    merged = load_solve_parts(cfg.merge, tasks) if cfg.merge else None  # merge=: the jobs' parts, checked
    checkpoint, tokenizer = job.checkpoints[0], job.tokenizer()
    run_dir = run_folder(cfg.resume, output_dir)
    log.info("solving %d tasks from %s with ttft=%s into %s", len(tasks), checkpoint.label,
             hydra_cfg.runtime.choices.get("ttft"), run_dir)
    # a job of an array (shard=i/N) logs no run: the merge logs the whole solve as one
    tracker = start_job_run(None if shard else resolved["logger"], resolved, overrides,
                            choices=hydra_cfg.runtime.choices, run_type="solve", name_prefix="solve",
                            # a resumed run keeps the first run's config.yaml
                            config_file=run_dir / ("config.resumed.yaml" if cfg.resume else "config.yaml"),
                            project_root=cfg.project_root, model=spec.name, checkpoint=cfg.checkpoint or "base model",
                            training_run_id=checkpoint.training_run_id, ttft=hydra_cfg.runtime.choices.get("ttft"),
                            output_dir=str(run_dir.resolve()), resumed=str(bool(cfg.resume)), **job.tags)
    cli.run_started(tracker and tracker.run_id, cfg.logger.get("tracking_uri"))

    training = AdapterTraining(spec, adapter, tokenizer, checkpoint, ttft_settings, settings,
                               trainer_options=resolved["trainer"], config=resolved, progress=cfg.progress)
    solver = Solver(training, make_generator=functools.partial(create_generator, inference, tokenizer=tokenizer),
                    plots=(cfg.plots.failures, cfg.plots.successes))
    status = "FAILED"
    try:
        result = solver.run(tasks, run_dir, budget, tracker=tracker, ensemble=ensemble, shards=cfg.shards,
                            shard=shard, merge=merged)
        status = result.status  # FAILED when errors left nothing predicted; the submission is written all the same
    finally:
        if tracker is not None:
            tracker.finish(status)
    log.info("submission: %s%s", result.submission, "" if result.score is None else f", score {result.score:.4f}")
    return result.score if result.score is not None else float("nan")


if __name__ == "__main__":
    main()
