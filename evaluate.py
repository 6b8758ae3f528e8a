"""Evaluate a checkpoint on ARC tasks: augmented predictions, votes, metrics, submission.json and plots in MLflow.

    python evaluate.py checkpoint=outputs/2026-01-01/12-00-00                  # a training run folder (last step)
    python evaluate.py checkpoint=<MLflow run id> data=arc1-evaluation predictions_per_task=8
    python evaluate.py checkpoint=<run id> all_checkpoints=true                # every step: metric curves
    python evaluate.py debug=smoke checkpoint=<smoke run folder>               # minutes on CPU
    python evaluate.py                                                         # the base model
    python evaluate.py checkpoint=<run> shards=2                               # tasks split over 2 processes
    python evaluate.py -m checkpoint=<run> shard=0/2,1/2 && python evaluate.py checkpoint=<run> merge=<sweep dir>
"""
import logging
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from arc_exp import cli, console

log = logging.getLogger("evaluate")


@cli.main(__file__, "evaluate")
def main(cfg: DictConfig) -> float:
    # imported here, not at the top: torch and transformers take seconds to import, and a bad override or
    # `--cfg job` should answer at once
    from arc_exp.evaluation import shards as sharding
    from arc_exp.evaluation.job import prepare_job, start_job_run
    from arc_exp.evaluation.outputs import write_outputs
    from arc_exp.evaluation.pipeline import load_eval_tasks
    from arc_exp.evaluation.settings import settings_from_config
    from arc_exp.evaluation.unanswered import unanswered_reason
    from arc_exp.tracking import references

    hydra_cfg = HydraConfig.get()
    output_dir, overrides = Path(hydra_cfg.runtime.output_dir), list(hydra_cfg.overrides.task)
    # checkpoint=run:<key>:<value>/... (run.py's references): the run folder of the one run it names
    cfg.checkpoint = references.resolve(cfg.checkpoint, cfg.logger.get("tracking_uri"), "checkpoint")
    resolved = OmegaConf.to_container(cfg, resolve=True)

    # every mistake a user can make fails here, before a model loads or a token is generated
    # the run's seed moves the sampler's too (inference.seed is an offset): -m seed=0,1,2 gives three draws
    spec, adapter = instantiate(cfg.model), instantiate(cfg.lora)
    inference = instantiate(cfg.inference, seed=cfg.inference.seed + cfg.seed)
    settings = settings_from_config(instantiate(cfg.encoder), cfg.prompt.version, instantiate(cfg.augmentation),
                                    inference, cfg.predictions_per_task, cfg.seed,
                                    cfg.data.max_seq_len)
    # the checkpoints, checked; the tasks they did not train on the test outputs of (or a refusal)
    job = prepare_job(spec, adapter, settings.encoder, cfg.checkpoint, cfg.logger.get("tracking_uri"),
                      [settings.prompt_version], settings.prompt_version, cfg.all_checkpoints,
                      scored_tasks=load_eval_tasks(resolved["data"].get("eval")),
                      allow_trained_outputs=cfg.evaluation.allow_trained_outputs,
                      skip_trained_tasks=cfg.evaluation.skip_trained_tasks)
    checkpoints, tasks = job.checkpoints, job.tasks
    shard = sharding.check_sharding(cfg.shards, cfg.shard, cfg.merge, len(tasks))  # shard=i/N: this job's, else None
    # several checkpoints share the run: one folder (and artifact folder) per step, metrics at step=N
    steps = [f"step-{c.step or 0:06d}" if len(checkpoints) > 1 else None for c in checkpoints]
    merged = sharding.load_shards(cfg.merge, tasks, steps) if cfg.merge else None
    log.info("evaluating %s on %d tasks, %d predictions per test input", ", ".join(c.label for c in checkpoints),
             len(tasks), settings.predictions_per_task)
    # a job of an array (shard=i/N) logs no run: the merge logs the whole evaluation as one
    run = start_job_run(None if shard else resolved["logger"], resolved, overrides,
                        choices=hydra_cfg.runtime.choices, run_type="evaluation", name_prefix="eval",
                        config_file=output_dir / "config.yaml", project_root=cfg.project_root, model=spec.name,
                        checkpoint=cfg.checkpoint or "base model", training_run_id=checkpoints[0].training_run_id,
                        output_dir=str(output_dir.resolve()), **job.tags)
    cli.run_started(run and run.run_id, cfg.logger.get("tracking_uri"))

    metrics, status, results, all_unanswered = {}, "FAILED", {}, []
    try:
        for index, (checkpoint, step_name) in enumerate(zip(checkpoints, steps)):
            args = (tasks, spec, adapter, checkpoint, job.vocabularies[index], job.tokenizer(index), inference,
                    settings, cfg.seed)
            if merged is not None:
                result = merged[step_name]
            elif cfg.shards:
                result = sharding.predict_in_processes(cfg.shards, *args)
            else:
                result = sharding.predict_shard(shard, *args, progress=cfg.progress)
            results[step_name] = result
            paths = write_outputs(result, shard.tasks(tasks) if shard else tasks, output_dir / (step_name or ""),
                                  cfg.plots.failures, cfg.plots.successes, cfg.seed)
            if run is not None:
                run.log_result(result, paths, step=checkpoint.step or 0, artifact_path=step_name)
            metrics = result.metrics
            log.info("%s:\n%s", checkpoint.label, console.metrics_table({**metrics, **result.summary()}))
            if metrics.get("unanswered") == 1.0:
                all_unanswered.append(checkpoint)
        if shard:
            log.info("shard %d of %d written: %s", shard.index, shard.count,
                     sharding.save_shard(output_dir, shard, tasks, results))
        status = "FINISHED"
        if all_unanswered:  # once, at the end: the probable cause, not a wall of unparsed answers
            log.warning("every prediction of %s is unanswered (no grid): probably %s",
                        ", ".join(c.label for c in all_unanswered),
                        unanswered_reason(all_unanswered[-1].config, settings.prompt_version, inference.sampler,
                                          inference.dfs_threshold, is_base_model=all_unanswered[-1].folder is None))
    finally:
        if run is not None:
            run.finish(status)
    return metrics.get("pass_2", float("nan"))


if __name__ == "__main__":
    main()
