"""Generate synthetic training data: count grids with question/answer chats (sharded JSONL), or new task inputs.

    python generate.py generator=count n=1000000 out=data/count seed=0
    python generate.py generator=count n=20000 out=data/count-minimal encoder=minimal generator.grids.max_side=10
    python generate.py generator=new_inputs checkpoint=<model trained on input-from-inputs-v0> [tasks.source=...]

For count grids the same command again continues an interrupted run. Read the chats back with
``arc_exp.synthetic.load_chats("data/count")``. New inputs go to the run folder's ``new_inputs/`` and to MLflow.
"""
import logging
from pathlib import Path

from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from arc_exp import cli
from arc_exp.synthetic import NewInputsGenerator, write_shards

log = logging.getLogger("generate")


@cli.main(__file__, "generate")
def main(cfg: DictConfig) -> None:
    if get_class(cfg.generator._target_) is NewInputsGenerator:
        return new_inputs(cfg)
    generator = instantiate(cfg.generator, encoder=instantiate(cfg.encoder))  # checks every setting first
    cli.run_started(None, None)  # count grids go to `out`, not to MLflow
    n = cfg.n if cfg.max_n is None else min(cfg.n, cfg.max_n)
    if n < cfg.n:
        log.info("debug=smoke: %d samples instead of n=%d", n, cfg.n)
    summary = write_shards(generator, n=n, out=cfg.out, seed=cfg.seed, shard_size=cfg.shard_size,
                           workers=cfg.workers)
    log.info("%s: wrote %d of %d shards, %d samples in %.1f s (%.0f samples/s)", summary.out.resolve(),
             summary.written, summary.shards, summary.samples, summary.seconds, summary.samples_per_second)


def new_inputs(cfg: DictConfig) -> dict:
    """``generator=new_inputs``: new inputs of the selected tasks, written by the checkpoint's model."""
    from hydra.core.hydra_config import HydraConfig

    from arc_exp.evaluation.checkpoints import load_model_for_evaluation
    from arc_exp.evaluation.job import prepare_job, start_job_run
    from arc_exp.inference.generator import create_generator
    from arc_exp.synthetic import new_inputs as ni

    hydra_cfg = HydraConfig.get()
    output_dir, overrides = Path(hydra_cfg.runtime.output_dir), list(hydra_cfg.overrides.task)
    resolved = OmegaConf.to_container(cfg, resolve=True)

    # every mistake a user can make fails here, before a model loads or a token is generated
    settings = NewInputsGenerator(**{k: v for k, v in resolved["generator"].items() if k != "_target_"})
    spec, adapter, inference = instantiate(cfg.model), instantiate(cfg.lora), instantiate(cfg.inference)
    if inference.sampler == "dfs":
        raise ni.NewInputsError("inference.sampler=dfs is not supported for new inputs; use inference=sampling "
                                "(the default) or inference=greedy")
    encoder, policy = instantiate(cfg.encoder), instantiate(cfg.augmentation)
    tasks = ni.task_set(resolved["tasks"]).load()
    if not tasks:
        raise ni.NewInputsError(f"tasks selects no task: {resolved['tasks']}")
    job = prepare_job(spec, adapter, encoder, cfg.checkpoint, cfg.logger.get("tracking_uri"), [ni.PROMPT])
    checkpoint, tokenizer = job.checkpoints[0], job.tokenizer()
    if checkpoint.folder is None:
        log.warning("checkpoint=null: the base model writes the new inputs (it was never trained on %s)", ni.PROMPT)
    else:
        ni.check_checkpoint_prompt(checkpoint.config, f"checkpoint '{checkpoint.folder}'")
    log.info("new inputs of %d tasks, %d samples each, by %s", len(tasks), settings.samples_per_task,
             checkpoint.label)
    tracker = start_job_run(resolved["logger"], resolved, overrides, choices=hydra_cfg.runtime.choices,
                            run_type="generate", name_prefix="new_inputs", config_file=output_dir / "config.yaml",
                            project_root=cfg.project_root, generator="new_inputs",
                            model=spec.name, checkpoint=cfg.checkpoint or "base model",
                            training_run_id=checkpoint.training_run_id, output_dir=str(output_dir.resolve()))
    cli.run_started(tracker and tracker.run_id, cfg.logger.get("tracking_uri"))

    status = "FAILED"
    try:
        model = load_model_for_evaluation(spec, adapter, checkpoint, cfg.seed, job.vocabularies[0])
        results = ni.generate_new_inputs(tasks, create_generator(inference, model, tokenizer), tokenizer, encoder,
                                         policy, settings, cfg.seed)
        info = {"checkpoint": checkpoint.label, "model": spec.name, "samples_per_task": settings.samples_per_task,
                "sampler": inference.sampler, "temperature": inference.temperature, "seed": cfg.seed}
        paths = ni.write_new_inputs(results, cfg.out, info)
        summary = ni.summarize(results)
        if tracker is not None:
            tracker.log_metrics({k: v for k, v in summary.items() if isinstance(v, (int, float))})
            tracker.log_artifacts(paths["folder"], "new_inputs")
        status = "FINISHED"
    finally:
        if tracker is not None:
            tracker.finish(status)
    log.info("%s: %d new inputs kept of %d generated (%d unanswered, %d invalid, %d copies of an input, "
             "%d repeats, %d skipped)", paths["folder"], summary["kept"], summary["generated"], summary["unanswered"],
             summary["invalid"], summary["duplicate_of_existing"], summary["duplicate_of_new"], summary["skipped"])
    return summary


if __name__ == "__main__":
    main()
