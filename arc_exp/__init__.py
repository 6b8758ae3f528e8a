"""arc_exp: a Hydra-configured experiment framework for solving ARC tasks with fine-tuned language models.

One package per pipeline stage. Imports flow one way, as data does: a module imports only modules of its own layer
or of the layers below it, never one above, and no modules import each other in a circle. Bottom to top
(:data:`LAYERS`, kept by ``tests/test_import_direction.py``):

- ``arc_exp`` itself, ``files``, ``console``, ``presets`` and ``tracking.runs``: plumbing every stage uses: the
  ``${required:}`` resolver, atomic file writes, the console's filters, the presets' scales and arms registered as
  Hydra options, and the one MLflow run
  constructor (params, tags, metrics, artifacts) through which training, evaluation, solve and generate log. It
  knows no stage (an evaluation result is logged by its fields).
- ``data``: tasks and grids, task sources and selection, augmentation, grid encoders, prompts, chats read back from
  files, tokenized samples and the Lightning datamodule.
- ``model``: model specs and the one model loader, LoRA/full adapters, the reduced vocabulary, checkpoint folders.
- ``inference``: generation requests, the Hugging Face generator with its shared-prefix key/value cache, sampling,
  depth-first search and answer scoring.
- ``training``: the LightningModule (answer-only loss), learning-rate schedules, callbacks, the Trainer builder.
- ``evaluation``: metrics, voting, the evaluation pipeline, product-of-experts selection, checkpoints as evaluated,
  submissions, plots, the split of predictions over processes (shards).
- ``ttft``: test-time fine-tuning and the solver (solve.py): time budget, TTFT dataset, fine-tuning, prediction, and
  the merge of a solve's parts. It fine-tunes (training) and predicts (evaluation), so it sits above both.
- ``synthetic``: generated training data (count grids with question/answer chats, new task inputs written by a
  model). It sits above the stages whose code it reuses (prompts, generation, checkpoints as evaluated) and below
  nothing of them: a stage that trains on its chats reads them as ``data`` does.
- ``training.recipe``: train.py's recipe, the one library module besides ``schemas`` and ``cli`` that reads the Hydra
  config. It evaluates during and after training and counts synthetic answers, so it sits above ``synthetic``,
  not with the rest of ``training`` (whose Trainer builder ``ttft`` uses).
- ``tracking``: the iteration tables of report.py, run comparisons, run.py's stages and references between runs.
- ``schemas`` and ``root_schemas``: the typed configs of the entry points (the groups' and the top-level
  keys'), built from the stages' settings classes.
- ``cli``: what every entry point does around its recipe (the console, one-line mistakes, the run folder).

The entry points (train.py, evaluate.py, solve.py, report.py, generate.py, run.py, stats.py) sit above all of it.
An import inside a function is only for a dependency that is optional or takes seconds to import (torch, mlflow,
bitsandbytes, ...), with a comment saying so: the order of the rest can be read from the top of each module.
"""
from pathlib import Path

from omegaconf import OmegaConf

__version__ = "0.1.0"

# the import order of the docstring, bottom to top: each entry lists module prefixes; a module belongs to the entry of
# its longest prefix (``arc_exp`` alone is the package's own __init__)
LAYERS = (
    ("arc_exp", "arc_exp.files", "arc_exp.console", "arc_exp.presets", "arc_exp.tracking.runs"),
    ("arc_exp.data",),
    ("arc_exp.model",),
    ("arc_exp.inference",),
    ("arc_exp.training",),
    ("arc_exp.evaluation",),
    ("arc_exp.ttft",),
    ("arc_exp.synthetic",),
    ("arc_exp.training.recipe",),
    ("arc_exp.tracking",),
    ("arc_exp.schemas", "arc_exp.root_schemas"),
    ("arc_exp.cli",),
)


class RequiredValueError(ValueError):
    """A value a preset requires (``${required:key,what}``) that the command line did not give."""


def _required(key: str, what: str = "value") -> None:
    """``checkpoint: ${required:checkpoint,training run id}`` in a preset: a value the user must give (a preset's
    ``???`` would not replace the entry config's ``null``)."""
    raise RequiredValueError(f"{key} is required by this preset: give {key}=<{what}>")


OmegaConf.register_new_resolver("required", _required, replace=True)
# ${code_root:}: the folder of the entry points and tests/ (files that ship with the code, whatever project_root is)
OmegaConf.register_new_resolver("code_root", lambda: str(Path(__file__).resolve().parents[1]), replace=True)
