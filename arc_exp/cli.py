"""What every entry point (train, evaluate, solve, report, generate, run, stats) does around its recipe.

- ``@cli.main(__file__, "<config>")``: the one decorator of an entry point (Hydra's main, the schemas and presets
  registered, everything below).
- A quiet console (:mod:`arc_exp.console`): the known deprecation warnings of dependencies and Lightning's
  advertising tip are filtered; when a sweep's jobs run in parallel (the joblib launcher) and share the console, each
  job's log lines start with ``[job N]`` (sequential jobs, Hydra's basic launcher, print one after the other).
- The run folder and the MLflow run id are printed when the run starts and again when it ends.
- A user's mistake (a malformed task file, an unknown task id, a checkpoint or file that does not exist, a bad
  setting) prints one line, ``train.py: error: <message>``, and exits with status 1, without a traceback;
  ``HYDRA_FULL_ERROR=1`` shows the full traceback instead. A mistake is an exception of a class that ``arc_exp``
  defines (each names the file, task id or key it is about) or a ``FileNotFoundError``; any other exception is a bug
  and keeps Hydra's traceback. A mistake Hydra finds while composing the config (a value of the wrong type,
  ``learning_rate=fast``; an unknown key or option, ``model=qwen2-1.5``) is one line too, naming the key or the close
  options. In a sweep (``-m``) a job's mistake is the same one line, and the sweep stops there: the jobs after it
  would meet it again.
- A run that fails before it wrote anything leaves no run folder behind (only Hydra's ``.hydra/`` and log were in
  it), nor a sweep folder holding only ``multirun.yaml``, nor the empty date folder above them; a failed run with an
  MLflow run gets status FAILED.

This module is the entry points' glue: it reads Hydra's runtime config. The library (everything else in arc_exp)
never does.
"""
from __future__ import annotations

import difflib
import functools
import logging
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Callable, Optional

import hydra
from hydra._internal import utils as hydra_utils
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException
from hydra.experimental.callback import Callback
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from arc_exp import presets, schemas
from arc_exp.console import prefix_log_lines, quiet_warnings, runs_in_parallel

log = logging.getLogger("arc_exp")


def prepare() -> None:
    """What an entry point does on import, before Hydra composes its config: the console filters, the config
    schemas (:mod:`arc_exp.schemas`) and the presets' scales and arms (:mod:`arc_exp.presets`)."""
    quiet_warnings()
    schemas.register()
    try:
        presets.register(Path(__file__).resolve().parents[1] / "conf" / "experiment")
    except presets.PresetError as error:  # a preset's scales: or arms: malformed: one line, as a composition error
        print(f"{Path(sys.argv[0]).name}: error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


class UserError(Exception):
    """A user's mistake found by an entry point itself (not by the library), e.g. ``report.py runs=`` naming no
    run; printed as one line like the library's own errors."""


WRAPPERS = ("InstantiationException", "InterpolationResolutionError")  # exceptions whose cause is the error


def is_user_error(error: BaseException) -> bool:
    """An exception a user's input caused: a class defined in arc_exp, or a missing file; Hydra's instantiate and
    OmegaConf's resolvers (a preset's ``${required:...}``) wrap them (the cause is looked at)."""
    while error is not None:
        if isinstance(error, (UserError, FileNotFoundError)) or type(error).__module__.split(".")[0] == "arc_exp":
            return True
        if type(error).__name__ == "MissingMandatoryValue":  # a ??? key the command line did not give
            return True
        if type(error).__name__ not in WRAPPERS:
            return False
        error = error.__cause__ or error.__context__  # OmegaConf re-raises inside its except: the context
    return False


def user_message(error: BaseException) -> str:
    """The error's message on one line (the cause's, when Hydra's instantiate wrapped it)."""
    while type(error).__name__ in WRAPPERS and (error.__cause__ or error.__context__) is not None:
        error = error.__cause__ or error.__context__
    if type(error).__name__ == "MissingMandatoryValue" and getattr(error, "full_key", None):
        return f"{error.full_key} is required: give {error.full_key}=<value>"
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip())


class _Run:
    """The run being executed by this process: its folder and, once created, its MLflow run."""
    name: str = "app"  # the entry point (train.py), as its mistakes are printed
    folder: Optional[Path] = None
    sweep_folder: Optional[Path] = None  # set when a multirun starts (SweepFolder)
    run_id: Optional[str] = None
    tracking_uri: Optional[str] = None


def run_started(run_id: Optional[str], tracking_uri: Optional[str]) -> None:
    """Called by a recipe when its MLflow run exists (``run_id=None`` with ``logger=none``): print folder and run."""
    _Run.run_id, _Run.tracking_uri = run_id, tracking_uri
    log.info("run folder %s, %s", _Run.folder, _describe_run())


def _describe_run() -> str:
    if _Run.run_id is None:
        return "no MLflow run"
    return f"MLflow run {_Run.run_id} (mlflow ui --backend-store-uri {_Run.tracking_uri})"


def main(entry_file: str, config_name: str, config_dir: str = "conf") -> Callable:
    """The one decorator of an entry point's ``main(cfg)``: ``@cli.main(__file__, "train")``.

    It sets ``ARC_EXP_ROOT`` (the entry points' folder, where outputs and ``mlflow.db`` go unless the config says
    otherwise), registers the config schemas and the presets' options (:func:`prepare`), and wraps ``main`` in
    Hydra's ``@hydra.main`` on ``<config_dir>/<config_name>.yaml`` beside the entry point and in
    :func:`entry_point` (one-line mistakes, the run folder printed, a failed run cleaned up)."""
    root = Path(entry_file).resolve().parent
    os.environ.setdefault("ARC_EXP_ROOT", str(root))
    prepare()

    def decorate(function: Callable) -> Callable:
        return hydra.main(config_path=str(root / config_dir), config_name=config_name, version_base="1.3")(
            entry_point(Path(entry_file).name)(function))

    return decorate


def entry_point(name: str) -> Callable:
    """Decorate an entry point's ``main(cfg)`` (under ``@hydra.main``) with the behaviour of this module."""

    def decorate(main: Callable) -> Callable:
        report_composition_errors(name)

        @functools.wraps(main)
        def wrapped(cfg):
            quiet_warnings()
            folder, job, multirun, launcher = _hydra_runtime()
            _Run.folder, _Run.run_id, _Run.tracking_uri = folder, None, None
            if multirun and runs_in_parallel(launcher):
                prefix_log_lines(f"[job {job}] ")
            try:
                presets.drop_options(cfg)
                result = main(cfg)
            except BaseException as error:
                _after_failure(folder, multirun)
                if not is_user_error(error) or os.environ.get("HYDRA_FULL_ERROR") == "1":
                    try:  # not a composition error: Hydra reports it (report_composition_errors)
                        error._arc_exp_recipe = True
                    except AttributeError:  # an exception without attributes (a few C types): reported as it is
                        pass
                    raise
                print(f"{name}: error: {user_message(error)}", file=sys.stderr)
                raise SystemExit(1) from None  # a SystemExit is no Exception: a sweep's launcher stops here too
            if _Run.folder is not None and (_Run.folder.exists() or _Run.run_id):
                log.info("done: run folder %s, %s", _Run.folder, _describe_run())
            return result

        return wrapped

    return decorate


def _hydra_runtime() -> tuple[Optional[Path], Optional[int], bool, dict]:
    """The run folder, the job number, whether this is a sweep, the launcher's config."""
    if not HydraConfig.initialized():
        return None, None, False, {}
    hydra_cfg = HydraConfig.get()
    launcher = OmegaConf.to_container(hydra_cfg.launcher, resolve=False) if hydra_cfg.get("launcher") else {}
    return (Path(hydra_cfg.runtime.output_dir).resolve(), hydra_cfg.job.get("num"), hydra_cfg.mode.name == "MULTIRUN",
            launcher)


def report_composition_errors(name: str) -> None:
    """Print a mistake Hydra finds while composing the config as one line, ``train.py: error: <message>`` (exit 1),
    instead of Hydra's report of several lines; with ``HYDRA_FULL_ERROR=1``, or for an error of the recipe itself,
    Hydra reports as before. Idempotent; the last entry point named is the one printed.

    Hydra has no hook for how it reports errors: its ``run_and_report`` (which every ``@hydra.main`` calls around
    composing and running) is wrapped.
    """
    _Run.name, _Run.sweep_folder = name, None
    if getattr(hydra_utils.run_and_report, "_arc_exp", False):
        return
    original = hydra_utils.run_and_report

    def run_and_report(func: Callable):
        try:
            return func()
        except Exception as error:  # noqa: BLE001 - sorted below: a mistake is one line, anything else Hydra's
            if getattr(error, "_arc_exp_recipe", False) or os.environ.get("HYDRA_FULL_ERROR") == "1" \
                    or not is_composition_error(error):
                return original(functools.partial(_raise, error))
            _remove_empty_sweep()
            print(f"{_Run.name}: error: {composition_message(error)}", file=sys.stderr)
            sys.exit(1)

    run_and_report._arc_exp = True
    hydra_utils.run_and_report = run_and_report


def _raise(error: BaseException):
    raise error


def is_composition_error(error: BaseException) -> bool:
    """An error Hydra or OmegaConf raise while composing (the recipe's own errors are marked before they get here)."""
    return isinstance(error, (HydraException, OmegaConfBaseException))


def composition_message(error: BaseException) -> str:
    """Hydra's composition error on one line, naming the key (or the option and its close matches).

    ``Error merging override learning_rate=fast`` caused by ``Value 'fast' of type 'str' could not be converted to
    Float, full_key: learning_rate`` -> ``learning_rate: Value 'fast' of type 'str' could not be converted to Float
    (learning_rate=fast)``.
    """
    if isinstance(error, MissingConfigException) and error.options is not None and error.missing_cfg_file:
        return missing_option_message(error.missing_cfg_file, error.options)
    cause = error.__cause__ or error.__context__  # Hydra raises some inside its except: the context
    if not isinstance(cause, OmegaConfBaseException):
        cause = None
    text = str(error).split(str(cause))[0] if cause is not None and str(cause) else str(error)
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.startswith(("\t", "Config search path", "Available options"))]
    if cause is None or not lines:
        return " ".join(lines) or type(error).__name__
    key = cause.full_key  # the message's own lines, without OmegaConf's full_key/object_type lines
    reason = " ".join(line.strip() for line in str(cause.msg).splitlines()
                      if line.strip() and not line.strip().startswith(("full_key:", "object_type=", "reference_type=")))
    override = re.fullmatch(r"Error merging override (.*)", lines[0])
    if override:
        return f"{key}: {reason} ({override[1]})"
    where = re.fullmatch(r"In '(.*)': \w+ raised while composing config:", lines[0])
    if where:
        return f"in '{where[1]}': {key}: {reason}"
    return f"{' '.join(lines)} ({reason})"


def missing_option_message(missing: str, options: list) -> str:
    """``model/qwen2-1.5`` -> ``model=qwen2-1.5: no such option; did you mean qwen2-1.5b? (options: ...)``, without
    the schema options of arc_exp.schemas (no user picks them)."""
    group, _, option = missing.rpartition("/")
    hidden = {name for g, (name, _) in schemas.SCHEMAS.items() if g == group}
    options = [o for o in options if o not in hidden]
    close = difflib.get_close_matches(option, options, n=1, cutoff=0.6)
    guess = f"; did you mean {close[0]}?" if close else ""
    return f"{group}={option}: no such option{guess} (options: {', '.join(options)})" if group \
        else f"no config named '{option}'"


class SweepFolder(Callback):
    """Hydra callback (``hydra.callbacks.sweep_folder`` of each entry point): remembers the sweep's folder when a
    multirun starts, so a mistake found while composing a job's config can remove it (only ``multirun.yaml``)."""

    def on_multirun_start(self, config, **kwargs) -> None:
        _Run.sweep_folder = Path(config.hydra.sweep.dir)


def _remove_empty_sweep() -> None:
    """A sweep that stopped before any job wrote something: remove its folder (only ``multirun.yaml`` in it)."""
    if _Run.sweep_folder is not None:
        _remove_if_empty(_Run.sweep_folder, keep_only={"multirun.yaml"})


def _remove_if_empty(folder: Path, keep_only: set = frozenset()) -> None:
    """Remove ``folder`` when it holds nothing but files named in ``keep_only``, then its parents that became
    empty, two at most (``outputs/train/<date>/<time>``: the date and the entry point's folders)."""
    folder = folder.resolve()
    if not folder.is_dir() or any(p.name not in keep_only for p in folder.iterdir()):
        return
    shutil.rmtree(folder, ignore_errors=True)
    for parent in list(folder.parents)[:2]:
        if not parent.is_dir() or any(parent.iterdir()):
            return
        parent.rmdir()


def _after_failure(folder: Optional[Path], multirun: bool = False) -> None:
    """Mark the MLflow run FAILED (when the recipe did not), and remove a run folder that holds nothing of the run
    (and, in a sweep, the sweep folder when this job was all it held)."""
    if _Run.run_id is not None:
        try:
            import mlflow  # heavy (~2.5 s): only when a failed run must be marked

            client = mlflow.MlflowClient(tracking_uri=_Run.tracking_uri)
            if client.get_run(_Run.run_id).info.status == "RUNNING":
                client.set_terminated(_Run.run_id, "FAILED")
        except Exception as error:  # noqa: BLE001 - the original error matters more; say why marking failed
            log.warning("could not mark MLflow run %s failed: %s", _Run.run_id, error)
        return
    if folder is not None and folder.is_dir() and all(p.name == ".hydra" or p.suffix == ".log"
                                                      for p in folder.iterdir()):
        shutil.rmtree(folder, ignore_errors=True)
        _Run.folder = None
        if multirun:
            _remove_if_empty(folder.parent, keep_only={"multirun.yaml"})
        else:
            _remove_if_empty(folder.parent)  # the date folder, when this run was its only one


quiet_warnings()  # on import: an entry point imports this module before the library modules that warn on import
