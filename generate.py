"""Generate synthetic training data: count grids with question/answer chats (sharded JSONL), or new task inputs.

    python generate.py generator=count n=1000000 out=data/count seed=0
    python generate.py generator=count n=20000 out=data/count-minimal encoder=minimal generator.grids.max_side=10
    python generate.py generator=new_inputs checkpoint=<model trained on input-from-inputs-v0> [data=arc1-training]

The same command again continues an interrupted run. Read the chats back with
``arc_exp.synthetic.load_chats("data/count")``.
"""
import logging
import os
from pathlib import Path

os.environ.setdefault("ARC_EXP_ROOT", str(Path(__file__).resolve().parent))

import hydra  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from arc_exp.synthetic import write_shards  # noqa: E402

log = logging.getLogger("generate")


@hydra.main(config_path="conf", config_name="generate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if cfg.generator.get("_target_", "").endswith("NewInputsGenerator"):
        from hydra.core.hydra_config import HydraConfig

        from arc_exp.synthetic import new_inputs

        runtime = HydraConfig.get()
        new_inputs.run(cfg, Path(runtime.runtime.output_dir), list(runtime.overrides.task))
        return
    generator = instantiate(cfg.generator, encoder=instantiate(cfg.encoder))  # checks every setting first
    summary = write_shards(generator, n=cfg.n, out=cfg.out, seed=cfg.seed, shard_size=cfg.shard_size,
                           workers=cfg.workers)
    log.info("%s: wrote %d of %d shards, %d samples in %.1f s (%.0f samples/s)", summary.out.resolve(),
             summary.written, summary.shards, summary.samples, summary.seconds, summary.samples_per_second)


if __name__ == "__main__":
    main()
