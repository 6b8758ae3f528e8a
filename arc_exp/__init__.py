"""arc_exp: a Hydra-configured experiment framework for solving ARC tasks with fine-tuned language models.

One package per pipeline stage, in the order data flows:

- ``data``: tasks and grids, task sources and selection, augmentation, grid encoders, prompts, tokenized samples and
  the Lightning datamodule.
- ``model``: model specs and the one model loader, LoRA/full adapters, the reduced vocabulary, checkpoint folders.
- ``training``: the LightningModule (answer-only loss), learning-rate schedules, callbacks and the train.py recipe's
  builders.
- ``inference``: generation requests, the Hugging Face generator with its shared-prefix key/value cache, sampling,
  depth-first search and answer scoring.
- ``evaluation``: metrics, voting, the evaluation pipeline, product-of-experts selection, submissions and plots.
- ``ttft``: test-time fine-tuning and the solver (solve.py): time budget, TTFT dataset, fine-tuning, prediction.
- ``synthetic``: generated training data (count grids with question/answer chats, new task inputs).
- ``tracking``: MLflow runs, params, tags and artifacts; the iteration tables of report.py.
"""
from pathlib import Path

from omegaconf import OmegaConf

__version__ = "0.1.0"


class RequiredValueError(ValueError):
    """A value a preset requires (``${required:key,what}``) that the command line did not give."""


def _required(key: str, what: str = "value") -> None:
    """``checkpoint: ${required:checkpoint,training run id}`` in a preset: a value the user must give (a preset's
    ``???`` would not replace the entry config's ``null``)."""
    raise RequiredValueError(f"{key} is required by this preset: give {key}=<{what}>")


OmegaConf.register_new_resolver("required", _required, replace=True)
# ${code_root:}: the folder of the entry points and tests/ (files that ship with the code, whatever project_root is)
OmegaConf.register_new_resolver("code_root", lambda: str(Path(__file__).resolve().parents[1]), replace=True)
