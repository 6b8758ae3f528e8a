"""Generate synthetic training data: count grids with question/answer chats, as sharded JSONL.

    python generate.py generator=count n=1000000 out=data/count seed=0
    python generate.py generator=count n=20000 out=data/count-minimal encoder=minimal generator.grids.max_side=10

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
    generator = instantiate(cfg.generator, encoder=instantiate(cfg.encoder))  # checks every setting first
    summary = write_shards(generator, n=cfg.n, out=cfg.out, seed=cfg.seed, shard_size=cfg.shard_size,
                           workers=cfg.workers)
    log.info("%s: wrote %d of %d shards, %d samples in %.1f s (%.0f samples/s)", summary.out.resolve(),
             summary.written, summary.shards, summary.samples, summary.seconds, summary.samples_per_second)


if __name__ == "__main__":
    main()
