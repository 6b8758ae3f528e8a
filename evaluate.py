"""Evaluate a checkpoint on ARC tasks: augmented predictions, votes, metrics, submission.json and plots in MLflow.

    python evaluate.py checkpoint=outputs/2026-01-01/12-00-00                  # a training run folder (last step)
    python evaluate.py checkpoint=<MLflow run id> data=arc1-evaluation predictions_per_task=8
    python evaluate.py checkpoint=<run id> all_checkpoints=true                # every step: metric curves
    python evaluate.py debug=smoke checkpoint=<smoke run folder>               # minutes on CPU
    python evaluate.py                                                         # the base model
"""
import logging
import os
from pathlib import Path

os.environ.setdefault("ARC_EXP_ROOT", str(Path(__file__).resolve().parent))

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from arc_exp.evaluation.checkpoints import load_model_for_evaluation  # noqa: E402
from arc_exp.evaluation.job import prepare_job, start_job_run  # noqa: E402
from arc_exp.evaluation.outputs import write_outputs  # noqa: E402
from arc_exp.evaluation.pipeline import evaluate_tasks, load_eval_tasks  # noqa: E402
from arc_exp.evaluation.settings import settings_from_config  # noqa: E402
from arc_exp.inference.config import create_generator  # noqa: E402

log = logging.getLogger("evaluate")


@hydra.main(config_path="conf", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    output_dir, overrides = Path(hydra_cfg.runtime.output_dir), list(hydra_cfg.overrides.task)
    resolved = OmegaConf.to_container(cfg, resolve=True)

    # every mistake a user can make fails here, before a model loads or a token is generated
    spec, adapter, inference = instantiate(cfg.model), instantiate(cfg.lora), instantiate(cfg.inference)
    settings = settings_from_config(instantiate(cfg.encoder), cfg.prompt.version, instantiate(cfg.augmentation),
                                    inference, cfg.predictions_per_task, cfg.seed,
                                    cfg.data.get("max_seq_len", 8192))
    tasks = load_eval_tasks(resolved["data"].get("eval"))
    job = prepare_job(spec, adapter, settings.encoder, cfg.checkpoint, cfg.logger.get("tracking_uri"),
                      [settings.prompt_version], settings.prompt_version, cfg.all_checkpoints)
    checkpoints = job.checkpoints
    log.info("evaluating %s on %d tasks, %d predictions per test input", ", ".join(c.label for c in checkpoints),
             len(tasks), settings.predictions_per_task)
    run = start_job_run(resolved["logger"], resolved, overrides, hydra_cfg.runtime.choices, "evaluation", "eval",
                        output_dir / "config.yaml", cfg.project_root, model=spec.name,
                        checkpoint=cfg.checkpoint or "base model", training_run_id=checkpoints[0].training_run_id,
                        output_dir=str(output_dir.resolve()))

    metrics, status = {}, "FAILED"
    try:
        for index, checkpoint in enumerate(checkpoints):
            tokenizer = job.tokenizer(index)
            model = load_model_for_evaluation(spec, adapter, checkpoint, cfg.seed, job.vocabularies[index])
            generator = create_generator(inference, model, tokenizer)
            result = evaluate_tasks(tasks, generator, tokenizer, settings, progress=cfg.progress)
            # several checkpoints share the run: one folder (and artifact folder) per step, metrics at step=N
            step_name = f"step-{checkpoint.step or 0:06d}" if len(checkpoints) > 1 else None
            paths = write_outputs(result, tasks, output_dir / (step_name or ""), cfg.plots.failures,
                                  cfg.plots.successes, cfg.seed)
            if run is not None:
                run.log_result(result, paths, step=checkpoint.step or 0, artifact_path=step_name)
            metrics = result.metrics
            log.info("%s: %s", checkpoint.label, {k: round(v, 4) for k, v in {**metrics, **result.summary()}.items()})
            del model, generator
        status = "FINISHED"
    finally:
        if run is not None:
            run.finish(status)
            log.info("see the run: mlflow ui --backend-store-uri %s  (run %s)", run.tracking_uri, run.run_id)
    return metrics.get("pass_2", float("nan"))


if __name__ == "__main__":
    main()
