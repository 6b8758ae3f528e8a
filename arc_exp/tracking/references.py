"""A run named by what it is, not by its id: ``run:<key>:<value>/<key>:<value>...``, resolved from MLflow.

``run:experiment:iter12_grid_representation/arm:size_small/scale:smoke`` is the one FINISHED run whose tags (for
the keys runs are tagged with: ``experiment``, ``iteration``, ``stage``, ``run_type``, ...) or params (every other key:
``arm``, ``scale``, ``lora.r``, ...) have these values. ``run.py`` writes such references in a preset's ``stages:``
(``adapter_path: run:stage:train/arm:size_small``) and adds the iteration's own tags; the single entry points take them
too (``evaluate.py checkpoint=run:experiment:iter24_overfit/arm:lora/scale:smoke``). ``=`` and ``,`` would be read by
Hydra's override parser, hence ``:`` and ``/``.

>>> Reference.parse("run:stage:train/arm:size_small")
Reference(tags={'stage': 'train', 'arm': 'size_small'})
>>> str(Reference.parse("run:stage:train/arm:size_small").within({"iteration": "ab12"}))
'run:stage:train/arm:size_small/iteration:ab12'
>>> Reference.parse("run:arm")
Traceback (most recent call last):
...
arc_exp.tracking.references.RunReferenceError: 'run:arm': a reference is run:<key>:<value>/<key>:<value>..., got 'arm'
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from arc_exp.evaluation.checkpoints import CheckpointError, resolve_checkpoints

PREFIX = "run:"
# the keys a run is tagged with (arc_exp.tracking.runs.MLflowRun.start and run.py); any other key is a param
TAG_KEYS = ("experiment", "iteration", "stage", "stage_run", "run_type", "model", "checkpoint", "sweep_id", "ttft")


class RunReferenceError(ValueError):
    """A reference that does not parse, or resolves to no run or to several."""


def is_reference(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


@dataclass(frozen=True)
class Reference:
    tags: dict

    @classmethod
    def parse(cls, text: str) -> "Reference":
        body = str(text)[len(PREFIX):] if str(text).startswith(PREFIX) else str(text)
        tags = {}
        for part in filter(None, body.split("/")):
            key, sep, value = part.partition(":")
            if not sep or not key or not value:
                raise RunReferenceError(f"'{text}': a reference is run:<key>:<value>/<key>:<value>..., got '{part}'")
            tags[key] = value
        if not tags:
            raise RunReferenceError(f"'{text}': a reference names at least one key (run:<key>:<value>)")
        return cls(tags)

    def within(self, context: Mapping[str, str]) -> "Reference":
        """This reference with ``context`` (an iteration's tags) for the keys it does not set."""
        return Reference({**self.tags, **{k: v for k, v in context.items() if k not in self.tags}})

    def __str__(self) -> str:
        return PREFIX + "/".join(f"{key}:{value}" for key, value in self.tags.items())

    def query(self) -> str:
        """The MLflow search filter: tags for the tagged keys, params for the others; finished runs only."""
        terms = [f"{'tags' if key in TAG_KEYS else 'params'}.`{key}` = '{value}'" for key, value in self.tags.items()]
        return " and ".join([*terms, "attributes.status = 'FINISHED'"])


def search_runs(client, query: str, max_results: int = 50) -> list:
    """The runs of every MLflow experiment of ``client``'s store that ``query`` matches, newest first."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    return client.search_runs(experiments, query, order_by=["attributes.start_time DESC"], max_results=max_results)


def find_runs(reference: Reference, tracking_uri: str) -> list:
    """The FINISHED MLflow runs that ``reference`` matches, newest first."""
    # mlflow takes seconds to import: only when a run is read or written
    import mlflow

    return search_runs(mlflow.MlflowClient(tracking_uri=tracking_uri), reference.query())


def resolve_run(reference: Reference, tracking_uri: Optional[str], what: str = "reference"):
    """The one FINISHED run ``reference`` names; a :class:`RunReferenceError` naming the reference, the tags it searched
    and what it found otherwise."""
    if not tracking_uri:
        raise RunReferenceError(f"{what} {reference}: without a tracking store (logger=none) a reference cannot be "
                             f"resolved")
    runs = find_runs(reference, tracking_uri)
    if len(runs) == 1:
        return runs[0]
    searched = ", ".join(f"{k}={v}" for k, v in reference.tags.items())
    if not runs:
        loose = Reference({k: v for k, v in reference.tags.items() if k in ("experiment", "stage", "arm")})
        near = find_runs(loose, tracking_uri) if loose.tags and loose.tags != reference.tags else []
        hint = "" if not near else "; finished runs with " + ", ".join(f"{k}={v}" for k, v in loose.tags.items()) \
            + " differ in " + _differences(reference, near)
        raise RunReferenceError(f"{what} {reference}: no finished run with {searched} in {tracking_uri}{hint}")
    ids = ", ".join(r.info.run_id[:8] for r in runs[:5])
    raise RunReferenceError(f"{what} {reference}: {len(runs)} finished runs with {searched} ({ids}); add a key that "
                         f"tells them apart (iteration:<id>, seed:<n>, ...)")


def _differences(reference: Reference, runs: list) -> str:
    out = []
    for key, wanted in reference.tags.items():
        found = sorted({(r.data.tags if key in TAG_KEYS else r.data.params).get(key, "(none)") for r in runs}
                       - {wanted})
        if found:
            out.append(f"{key} ({', '.join(found[:4])})")
    return ", ".join(out) or "nothing the search shows"


def run_folder(run, what: str = "reference") -> Path:
    """The run folder of a run (its ``output_dir`` tag), which must exist on this machine."""
    folder = run.data.tags.get("output_dir")
    if not folder or not Path(folder).exists():
        raise RunReferenceError(f"{what}: run {run.info.run_id} has no run folder on this machine "
                             f"(output_dir={folder or 'none'})")
    return Path(folder)


def last_checkpoint(folder: Path, what: str = "reference") -> Path:
    """The newest ``checkpoints/step-N`` folder of a run folder that holds a saved model (as ``checkpoint=<run
    folder>`` takes it: :func:`arc_exp.evaluation.checkpoints.resolve_checkpoints`)."""
    try:
        return resolve_checkpoints(str(folder))[-1].folder
    except CheckpointError as error:
        raise RunReferenceError(f"{what}: {error}") from None


def resolve(value: object, tracking_uri: Optional[str], key: str, checkpoint: bool = False) -> object:
    """``value`` itself, or the folder the reference it holds names: the run folder, or with ``checkpoint`` its last
    checkpoint folder (what ``adapter_path`` takes). ``key`` names the config key in errors."""
    if not is_reference(value):
        return value
    run = resolve_run(Reference.parse(str(value)), tracking_uri, key)
    folder = run_folder(run, f"{key} {value}")
    return str(last_checkpoint(folder, f"{key} {value}") if checkpoint else folder)
