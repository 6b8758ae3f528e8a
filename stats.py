"""Token statistics: how long each task's prompt + answer is, per grid encoder, for the model's tokenizer.

    python stats.py                                                  # ARC-1 training, every encoder option
    python stats.py data=arc1-evaluation 'encoders=[minimal,grid_shape_row_number]' max_seq_len=4096

Prints, per encoder: median, p90 and max tokens per task, and the share of tasks over ``max_seq_len``.
"""
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from arc_exp import cli

ROOT = Path(__file__).resolve().parent


@cli.main(__file__, "stats")
def main(cfg: DictConfig) -> None:
    # imported here, not at the top: torch and transformers take seconds to import, and a bad override or
    # `--cfg job` should answer at once
    from arc_exp.data.entries import TrainEntry, TrainEntryError
    from arc_exp.data.encoders import ENCODER_COMPOSITIONS, create_grid_encoder
    from arc_exp.data.stats import format_table, task_token_counts, token_stats
    from arc_exp.model.loader import load_tokenizer

    entry = TrainEntry.from_config(cfg.data.train[0], "data.train[0]")
    if entry.is_chats:
        raise TrainEntryError(f"data.train[0] is a chats entry ({entry.chats}); the statistics are of ARC tasks: "
                              f"choose a data option whose first entry is a task source")
    prompt, tasks = entry.prompt, entry.task_set().load()
    tokenizer = load_tokenizer(instantiate(cfg.model))
    stats = []
    yaml_options = {path.stem: path for path in (ROOT / "conf" / "encoder").glob("*.yaml")}  # a project's own
    for name in cfg.encoders or sorted({*ENCODER_COMPOSITIONS, *yaml_options}):  # every option, a new one included
        encoder = (instantiate(OmegaConf.load(yaml_options[name])) if name in yaml_options
                   else create_grid_encoder(name))  # a composition's name, or the seed's string form
        stats.append(token_stats(name, task_token_counts(tasks, encoder, prompt, tokenizer), cfg.max_seq_len))
    print(f"{len(tasks)} tasks of {entry.source}, prompt {prompt}, tokenizer of {cfg.model.name}")
    print(format_table(stats, cfg.max_seq_len))


if __name__ == "__main__":
    main()
