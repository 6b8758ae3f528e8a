"""Run an iteration: every stage of a preset's ``stages:`` in order (generate, train, TTFT, evaluate, solve), each
finding its inputs in MLflow, then its tables; a stage that finished in this rerun is skipped.

    python run.py experiment=iter12_grid_representation               # scale=smoke: minutes on CPU
    python run.py experiment=iter12_grid_representation scale=gpu     # the journal's settings
    python run.py experiment=iter12_grid_representation plan=true     # the commands, nothing run
    python run.py experiment=iter12_grid_representation rerun=ttft    # that stage again, and the ones after it
    python run.py experiment=iter24_overfit scale=gpu \
        'overrides=["model.path=<folder>","++datasets.re_arc=<folder>","++datasets.mini_arc=<folder>"]'
"""
from pathlib import Path

from omegaconf import DictConfig

from arc_exp import cli

ROOT = Path(__file__).resolve().parent


@cli.main(__file__, "run", config_dir="conf/run")
def main(cfg: DictConfig) -> int:
    # imported here, not at the top: a stage's run reference reads checkpoints (torch, Lightning: seconds to import),
    # and a bad override or `--cfg job` should answer at once
    from arc_exp.tracking.iteration import Settings, run_iteration

    return run_iteration(Settings(experiment=cfg.experiment, scale=cfg.scale, tracking_uri=cfg.logger.tracking_uri,
                                  experiment_name=cfg.logger.experiment_name, root=ROOT,
                                  plan=cfg.plan, rerun=cfg.rerun, new=cfg.new, overrides=tuple(cfg.overrides),
                                  stages_file=Path(cfg.stages_file) if cfg.stages_file else None))


if __name__ == "__main__":
    main()
