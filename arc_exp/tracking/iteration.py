"""An iteration as one command: the stages a preset lists, run in order, their inputs found in MLflow.

A preset's ``stages:`` (in ``experiments/<name>.yaml``) is data::

    stages:
      - {name: train, entry: train, sweep: true}      # python train.py -m experiment=<name> scale=<scale>
      - name: ttft
        entry: train
        preset: iter12_grid_representation_ttft               # experiment=<preset> (default: the iteration's)
        sweep: true
        overrides: [trainer.max_steps=2]                       # more overrides; ${scale} is the iteration's scale
        inputs: {adapter_path: "run:stage:train/arm:size_small"}   # a key filled from an earlier stage's run
        scales: [smoke, gpu]                                   # where the stage runs (default: both)
      - {name: report, entry: report}                          # python report.py experiment=<name> ... iteration=<id>

``python run.py experiment=<name> [scale=smoke|gpu]`` runs each stage as the command a researcher would type (each
sweep with ``-m``, so any Hydra launcher runs its jobs), in a subprocess. MLflow is the record of what ran: the
iteration is one parent run (``run_type=iteration``, tag ``iteration=<id>``), each execution of a stage a child run
(``run_type=stage``, its ``stage_hash``), and every run a stage starts is tagged ``iteration``, ``stage`` and
``stage_run`` (the stage's child run) and nested under it. An input reference (:mod:`arc_exp.tracking.references`)
resolves within the iteration: the one FINISHED run of the referenced stage's last finished execution with the tags
and params it names. ``adapter_path`` takes the run's last checkpoint folder, any other key its run folder.

Resume: the iteration continues its latest rerun (``new=true`` starts another); a stage whose last execution in this
rerun FINISHED with the same ``stage_hash`` (its command, the folders its references resolved to and the config the
entry point composes from it) is skipped; a FAILED, missing or changed one runs again, and a stage downstream of one
that ran again sees other input folders, so it runs again too. ``rerun=<stage>`` forces that stage and everything after
it. The report always runs (it prints the tables). ``plan=true`` prints the commands and runs nothing. No scheduler,
queue or cache of its own: Hydra's launchers decide where a sweep's jobs run, MLflow says what ran.
"""
from __future__ import annotations

import copy
import hashlib
import logging
import shlex
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from arc_exp import RequiredValueError
from arc_exp.presets import drop_options
from arc_exp.tracking.references import (
    Reference,
    RunReferenceError,
    is_reference,
    last_checkpoint,
    run_folder,
    search_runs,
)
from arc_exp.tracking.runs import ensure_experiment

log = logging.getLogger(__name__)

ENTRIES = ("generate", "train", "evaluate", "solve", "report")
STAGE_KEYS = ("name", "entry", "preset", "sweep", "overrides", "inputs", "scales")
CHECKPOINT_KEYS = ("adapter_path",)  # inputs that take a run's last checkpoint folder; others take its run folder


class StageError(ValueError):
    """A ``stages:`` list that cannot run (unknown entry point, missing input, cycle), or a stage that failed."""


@dataclass(frozen=True)
class Stage:
    name: str
    entry: str
    preset: Optional[str] = None
    sweep: bool = False
    overrides: tuple = ()
    inputs: tuple = ()       # (key, reference text) pairs
    scales: tuple = ("smoke", "gpu")

    @property
    def upstream(self) -> list[str]:
        """The stages whose runs this one reads."""
        return [Reference.parse(ref).tags.get("stage", "") for _, ref in self.inputs]

    def arguments(self, iteration: str, scale: str, inputs: Mapping[str, str]) -> list[str]:
        """The entry point's command-line arguments (without the tags run.py adds)."""
        preset = self.preset or iteration
        args = ["-m"] if self.sweep else []
        if self.entry == "report":
            args += [f"experiment={iteration}", f"scale={scale}"]
        elif self.entry != "generate":
            args += [f"experiment={preset}", f"scale={scale}"]
        return [*args, *self.overrides, *(f"{key}={value}" for key, value in inputs.items())]


def parse_stages(stages: Sequence[Mapping], where: str, known_presets: Sequence[str] = ()) -> list[Stage]:
    """The checked stages of a preset: each a known entry point, unique names, inputs that name an earlier stage
    (a later one or itself would be a cycle), known presets; a :class:`StageError` naming the stage otherwise."""
    parsed: list[Stage] = []
    for i, item in enumerate(stages or []):
        at = f"{where} stages[{i}]"
        if not isinstance(item, Mapping):
            raise StageError(f"{at}: a stage is a mapping with name and entry, got {item!r}")
        unknown = sorted(set(item) - set(STAGE_KEYS))
        if unknown:
            raise StageError(f"{at}: unknown key {', '.join(unknown)} (a stage has {', '.join(STAGE_KEYS)})")
        name, entry = item.get("name"), item.get("entry")
        if not name:
            raise StageError(f"{at}: missing 'name'")
        if entry not in ENTRIES:
            raise StageError(f"{at} ({name}): unknown entry point {entry!r}; one of {', '.join(ENTRIES)}")
        scales = tuple(item.get("scales") or ("smoke", "gpu"))
        if any(s.name == name and set(s.scales) & set(scales) for s in parsed):
            raise StageError(f"{at}: a second stage named '{name}' at the same scale")
        preset = item.get("preset")
        if preset and known_presets and preset not in known_presets:
            raise StageError(f"{at} ({name}): unknown preset '{preset}' (experiments/{preset}.yaml)")
        inputs = tuple((str(k), str(v)) for k, v in (item.get("inputs") or {}).items())
        for key, ref in inputs:
            if not is_reference(ref):
                raise StageError(f"{at} ({name}): input {key} must be a reference run:stage:<stage>/..., got {ref!r}")
            upstream = Reference.parse(ref).tags.get("stage")
            if upstream is None:
                raise StageError(f"{at} ({name}): input {key}={ref} names no stage (run:stage:<stage>/...)")
            if upstream == name or upstream not in [s.name for s in parsed]:
                kind = "itself (a cycle)" if upstream == name else \
                    "a later stage (a cycle)" if upstream in [s.get("name") for s in stages[i + 1:]
                                                            if isinstance(s, Mapping)] else "no earlier stage"
                raise StageError(f"{at} ({name}): input {key}={ref} reads {kind}; stages run in order")
        parsed.append(Stage(str(name), str(entry), preset, bool(item.get("sweep", False)),
                            tuple(str(o) for o in item.get("overrides") or ()), inputs, scales))
    if not parsed:
        raise StageError(f"{where}: no stages: list (the iteration's stages, see arc_exp/tracking/iteration.py)")
    return parsed


def load_stages(experiments: Path, name: str, scale: str, path: Optional[Path] = None) -> list[Stage]:
    """The stages of ``experiments/<name>.yaml`` (or of the file ``path``: a reduced list) that run at ``scale``
    (``${scale}`` in them filled)."""
    if path is not None and not Path(path).is_file():
        raise StageError(f"stages_file={path}: no such file")
    path = Path(path) if path is not None else experiments / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in experiments.glob("*.yaml") if "stages:" in p.read_text()))
        raise StageError(f"experiment={name}: no experiments/{name}.yaml (presets with stages: {known})")
    raw = OmegaConf.load(path)
    if "stages" not in raw:
        raise StageError(f"experiments/{name}.yaml has no stages: list; run its entry point itself, or the "
                         f"iteration preset that lists it")
    node = OmegaConf.create({"scale": scale, "stages": raw.stages})
    stages = OmegaConf.to_container(node, resolve=True)["stages"]
    parsed = parse_stages(stages, str(path), [p.stem for p in experiments.glob("*.yaml")])
    return [s for s in parsed if scale in s.scales]


@dataclass
class Settings:
    """What ``run.py`` was given (conf/run.yaml)."""

    experiment: str
    scale: str
    tracking_uri: str
    experiment_name: str
    root: Path              # the code: experiments/, conf/ and the entry points (outputs follow ARC_EXP_ROOT)
    plan: bool = False
    rerun: Optional[str] = None
    new: bool = False
    overrides: tuple = ()   # appended to every stage's command (model.path=... at scale=gpu, model=tiny-random)
    stages_file: Optional[Path] = None  # another stages: list for this iteration (a reduced one)
    python: str = sys.executable


@dataclass
class Iteration:
    """One rerun of an iteration: its parent MLflow run and its stages' executions."""

    settings: Settings
    stages: list[Stage]
    client: object = None
    parent_id: Optional[str] = None
    iteration_id: Optional[str] = None
    composed: dict = field(default_factory=dict)  # (entry, arguments) -> the composed config's text

    # --- MLflow: the record of what ran -------------------------------------------------------------------------
    def _search(self, query: str, max_results: int = 1000) -> list:
        return search_runs(self.client, query, max_results)

    def open(self) -> None:
        """Find the rerun to continue (the latest of this iteration and scale, unless ``new``) or start one."""
        # mlflow takes seconds to import: only when a run is read or written
        import mlflow

        s = self.settings
        self.client = mlflow.MlflowClient(tracking_uri=s.tracking_uri)
        latest = [] if s.new else self._search(f"tags.run_type = 'iteration' and tags.experiment = '{s.experiment}' "
                                               f"and tags.scale = '{s.scale}'", 1)
        if latest:
            self.parent_id, self.iteration_id = latest[0].info.run_id, latest[0].data.tags["iteration"]
            if not s.plan:
                self.client.update_run(self.parent_id, status="RUNNING")
            return
        self.iteration_id = uuid.uuid4().hex[:8]
        if s.plan:
            return
        experiment_id = ensure_experiment(s.tracking_uri, s.experiment_name)
        self.parent_id = self.client.create_run(
            experiment_id, run_name=f"iteration:{s.experiment}:{s.scale}",
            tags={"run_type": "iteration", "experiment": s.experiment, "scale": s.scale,
                  "iteration": self.iteration_id, "stages": ",".join(st.name for st in self.stages)}).info.run_id

    def last_execution(self, stage: str):
        """The newest execution (child run) of ``stage`` in this rerun, or None."""
        if self.parent_id is None:
            return None
        found = self._search(f"tags.run_type = 'stage' and tags.iteration = '{self.iteration_id}' and "
                             f"tags.stage = '{stage}'", 1)
        return found[0] if found else None

    def finished_execution(self, stage: str):
        found = self._search(f"tags.run_type = 'stage' and tags.iteration = '{self.iteration_id}' and "
                             f"tags.stage = '{stage}' and attributes.status = 'FINISHED'", 1) \
            if self.parent_id is not None else []
        return found[0] if found else None

    # --- references --------------------------------------------------------------------------------------------
    def resolve_inputs(self, stage: Stage) -> tuple[dict, bool]:
        """``{key: folder}`` of the stage's inputs, and whether all resolved (in a plan, an upstream stage that has
        not run yet leaves its reference as it is)."""
        resolved, complete = {}, True
        for key, text in stage.inputs:
            reference = Reference.parse(text)
            upstream = self.finished_execution(reference.tags["stage"])
            if upstream is None:
                if self.settings.plan:
                    resolved[key], complete = f"<{text}>", False
                    continue
                raise StageError(f"stage {stage.name}: input {key}={text}: stage {reference.tags['stage']} has no "
                                 f"finished execution in iteration {self.iteration_id}")
            context = {"experiment": self.settings.experiment, "iteration": self.iteration_id,
                       "stage_run": upstream.info.run_id}
            found = self._search(reference.within(context).query(), 50)
            what = f"stage {stage.name}: input {key}={text}"
            if len(found) != 1:
                searched = ", ".join(f"{k}={v}" for k, v in reference.within(context).tags.items())
                raise RunReferenceError(f"{what}: {len(found)} finished runs with {searched} (one expected)")
            folder = run_folder(found[0], what)
            resolved[key] = str(last_checkpoint(folder, what) if key in CHECKPOINT_KEYS else folder)
        return resolved, complete

    # --- running -----------------------------------------------------------------------------------------------
    def command(self, stage: Stage, inputs: Mapping[str, str]) -> list[str]:
        """``python <entry>.py <arguments>``; the report reads this rerun's runs alone (``iteration=<id>``)."""
        rerun = [f"iteration={self.iteration_id}"] if stage.entry == "report" else []
        return [self.settings.python, f"{stage.entry}.py",
                *stage.arguments(self.settings.experiment, self.settings.scale, inputs), *self.settings.overrides,
                *rerun]

    def digest(self, stage: Stage, arguments: Sequence[str]) -> str:
        """The stage's hash: its arguments and the config its entry point composes from them (a sweep's values as
        given), so an edited preset or option reruns it."""
        key = (stage.entry, tuple(a for a in arguments if a != "-m"))
        if key not in self.composed:  # the check before running and the run itself compose the same stage
            self.composed[key] = compose_text(self.settings.root, stage.entry, list(key[1]))
        composed = self.composed[key]
        return hashlib.sha256("\n".join([*arguments, composed]).encode()).hexdigest()[:16]

    def run(self) -> int:
        s = self.settings
        self.open()
        forced = False
        say = print  # the progress lines go to the console, beside the stages' own output
        say(f"iteration {s.experiment} (scale={s.scale}): {len(self.stages)} stages, rerun {self.iteration_id}"
            f"{' (new)' if self.parent_id is None or s.new else ''}{', plan only' if s.plan else ''}")
        for stage in self.stages:  # every stage composes, with its required values, before any runs
            self.digest(stage, self.command(stage, dict(stage.inputs))[2:])
        try:
            for number, stage in enumerate(self.stages, start=1):
                forced = forced or stage.name == s.rerun
                inputs, complete = self.resolve_inputs(stage)
                command = self.command(stage, inputs)
                shown = " ".join(c if "=<run:" in c else shlex.quote(c) for c in command[1:])
                head = f"[{number}/{len(self.stages)}] {stage.name}"
                digest = self.digest(stage, command[2:]) if complete else None
                done = self.finished_execution(stage.name)
                same = done is not None and done.data.tags.get("stage_hash") == digest
                if s.plan:
                    state = "done, skipped" if same and not forced and stage.entry != "report" else "would run"
                    say(f"{head} ({state}): python {shown}")
                    continue
                if same and not forced and stage.entry != "report":  # the tables: always rebuilt and printed
                    say(f"{head}: done in this rerun (stage run {done.info.run_id[:8]}), skipped")
                    continue
                self.execute(stage, command, digest, head, shown)
        except BaseException:
            if self.parent_id is not None and not s.plan:
                self.client.set_terminated(self.parent_id, "FAILED")
            raise
        if s.plan:
            return 0
        self.client.set_terminated(self.parent_id, "FINISHED")
        say(f"iteration {s.experiment} (scale={s.scale}) done: MLflow run {self.parent_id} (rerun "
            f"{self.iteration_id})")
        return 0

    def execute(self, stage: Stage, command: list[str], digest: str, head: str, shown: str) -> None:
        s = self.settings
        execution = self.client.create_run(
            self.client.get_run(self.parent_id).info.experiment_id, run_name=f"stage:{stage.name}",
            tags={"run_type": "stage", "mlflow.parentRunId": self.parent_id, "experiment": s.experiment,
                  "scale": s.scale, "iteration": self.iteration_id, "stage": stage.name, "stage_hash": digest,
                  "command": f"python {shown}"}).info.run_id
        tagged = [*command, f"++logger.tags.iteration={self.iteration_id}", f"++logger.tags.stage={stage.name}",
                  f"++logger.tags.stage_run={execution}", f"++logger.parent_run_id={execution}",
                  f"++logger.experiment_name={s.experiment_name}", f"++logger.tracking_uri={s.tracking_uri}"]
        print(f"{head}: python {shown}", flush=True)
        start = time.monotonic()
        try:
            code = subprocess.run(tagged, cwd=s.root).returncode
        except BaseException:  # interrupted: the stage did not finish
            self.client.set_terminated(execution, "KILLED")
            raise
        seconds = time.monotonic() - start
        runs = [r.info.run_id for r in self._search(f"tags.stage_run = '{execution}'")]
        self.client.log_metric(execution, "seconds", seconds)
        self.client.set_tag(execution, "runs", ",".join(runs))
        if code != 0:
            self.client.set_terminated(execution, "FAILED")
            raise StageError(f"stage {stage.name} failed (exit {code}) after {seconds:.0f} s; its output is above. "
                             f"Run the same command again: finished stages are skipped")
        self.client.set_terminated(execution, "FINISHED")
        print(f"{head}: done in {seconds:.0f} s, {len(runs)} MLflow runs"
              f"{': ' + ', '.join(r[:8] for r in runs[:8]) if runs else ''}{' ...' if len(runs) > 8 else ''}",
              flush=True)


def compose_text(root: Path, entry: str, arguments: Sequence[str]) -> str:
    """The config ``<entry>.py <arguments>`` composes (Hydra's compose API, nothing resolved), as YAML: the sweep's
    values as given (a comma list is a sweep: left out of the composition, kept in the arguments)."""
    plain = [a for a in arguments if not _is_sweep(a)]
    outer = copy.deepcopy(GlobalHydra.instance())  # run.py's own Hydra: put back after composing the stage's
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(root / "conf"), version_base="1.3", job_name=entry):
            cfg = compose(entry, overrides=plain, return_hydra_config=True)
    except Exception as error:  # noqa: BLE001 - a stage that does not compose: named, one line
        message = " ".join(str(error).split())
        raise StageError(f"{entry}.py {' '.join(plain)}: does not compose: {message}") from None
    finally:
        GlobalHydra.set_instance(outer)
    drop_options(cfg)  # as the entry point drops them
    config = OmegaConf.to_container(cfg, resolve=False)
    sweeper = config.pop("hydra").get("sweeper") or {}
    if entry != "report":  # report.py reads report.tables alone, not the stages' required values
        _check_required(OmegaConf.create(config), f"{entry}.py {' '.join(arguments)}")
    return OmegaConf.to_yaml(OmegaConf.create({**config, "sweeper": sweeper}))


def _check_required(config, command: str) -> None:
    """A value the preset requires (``${required:...}``) and the command does not give: a :class:`StageError` now,
    before any stage runs (other interpolations resolve when the entry point runs)."""
    try:
        OmegaConf.to_container(config, resolve=True)
    except Exception as error:  # noqa: BLE001 - only a missing required value is this check's business
        while error is not None and not isinstance(error, RequiredValueError):
            error = error.__cause__ or error.__context__
        if error is not None:
            raise StageError(f"{command}: {error} (run.py 'overrides=[\"<key>=<value>\"]' gives it to every "
                             f"stage)") from None


def _is_sweep(argument: str) -> bool:
    """``lora.r=16,32`` (a sweep's values), not ``data.train=[{a: 1, b: 2}]`` (a list or dict value)."""
    _, _, value = argument.partition("=")
    depth = 0
    for char in value:
        if char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            return True
    return False


def run_iteration(settings: Settings) -> int:
    stages = load_stages(settings.root / "experiments", settings.experiment, settings.scale, settings.stages_file)
    if settings.rerun and settings.rerun not in [s.name for s in stages]:
        raise StageError(f"rerun={settings.rerun}: experiment {settings.experiment} has no stage of that name at "
                         f"scale={settings.scale} ({', '.join(s.name for s in stages)})")
    return Iteration(settings, stages).run()
