"""The preamble every prediction job shares (``evaluate.py``, ``solve.py``, ``generate.py generator=new_inputs``):
the checkpoints a ``checkpoint=`` value means, checked against the config before any model loads; the base tokenizer
and each checkpoint's vocabulary; the resolved config written beside the outputs and the job's MLflow run started
with the same tags as every other run (``run_type``, ``choice/<group>``, git commit, overrides)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from omegaconf import OmegaConf

from arc_exp.evaluation.checkpoints import Checkpoint, check_checkpoint, check_trained_outputs, resolve_checkpoints
from arc_exp.model.loader import load_tokenizer
from arc_exp.model.tokenizer import wrap_tokenizer
from arc_exp.model.vocabulary import resolve_vocabulary
from arc_exp.tracking.runs import MLflowRun, choice_tags


@dataclass
class PredictionJob:
    """The checkpoints to predict with, the base tokenizer and each checkpoint's reduced vocabulary (or ``None``);
    ``tasks``: those to score (without the trained-on ones when they are skipped); ``tags``: what the run records of
    the scored tasks' trained outputs (``trained_on_evaluated_outputs=<n>``)."""

    checkpoints: list[Checkpoint]
    base_tokenizer: Any
    vocabularies: list
    tasks: Optional[list] = None
    tags: Optional[dict] = None

    def tokenizer(self, index: int = 0):
        """The tokenizer of checkpoint ``index``: the base one, or wrapped to speak its reduced vocabulary's ids."""
        return wrap_tokenizer(self.base_tokenizer, self.vocabularies[index])


def prepare_job(spec, adapter, encoder, checkpoint: Optional[str], tracking_uri: Optional[str],
                prompt_versions: Sequence[str], check_prompt: Optional[str] = None,
                all_checkpoints: bool = False, scored_tasks: Optional[Sequence] = None,
                allow_trained_outputs: bool = False, skip_trained_tasks: bool = False) -> PredictionJob:
    """Resolve and check ``checkpoint`` (every step folder of a run with ``all_checkpoints``): a model, encoder or
    adapter mismatch fails here, naming the override that fixes it (``check_prompt``: warn when the checkpoint was
    trained on another prompt), and so does scoring a test output of ``scored_tasks`` that a checkpoint trained on
    (unless ``allow_trained_outputs`` or ``skip_trained_tasks``;
    :func:`~arc_exp.evaluation.checkpoints.check_trained_outputs`). A
    checkpoint's ``vocabulary.json`` wins; without one, ``model.reduce_vocab=true`` builds a vocabulary for
    ``prompt_versions``."""
    adapter.check_device()  # lora=qlora without a GPU
    checkpoints = resolve_checkpoints(checkpoint, all_checkpoints, tracking_uri)
    for found in checkpoints:
        check_checkpoint(found, spec.name, encoder, adapter.method, check_prompt)
    scored_tasks, tags = check_trained_outputs(checkpoints, scored_tasks, allow_trained_outputs, skip_trained_tasks) \
        if scored_tasks else (scored_tasks, {})
    base_tokenizer = load_tokenizer(spec)
    vocabularies = [resolve_vocabulary(found.folder, spec.reduce_vocab, base_tokenizer, encoder, list(prompt_versions),
                                       spec.name) for found in checkpoints]
    return PredictionJob(checkpoints, base_tokenizer, vocabularies, scored_tasks, tags)


def start_job_run(logger_cfg: Optional[Mapping], resolved: Mapping, overrides: Sequence[str], *,
                  choices: Mapping[str, Any], run_type: str, name_prefix: str, config_file: str | Path,
                  project_root: str | Path, **tags: Any) -> Optional[MLflowRun]:
    """Write the resolved config to ``config_file`` and start the job's MLflow run (``None`` with ``logger=none``),
    tagged like a training run: ``run_type``, ``choice/<group>`` of Hydra's ``choices``, and ``tags``; named
    ``<name_prefix>:<overrides>``. All but the first three by keyword: most are strings, easily swapped."""
    Path(config_file).write_text(OmegaConf.to_yaml(OmegaConf.create(dict(resolved))))
    return MLflowRun.start(logger_cfg, resolved, overrides, run_type, [config_file], project_root, name_prefix,
                           **choice_tags(choices, resolved), **tags)
