"""An iteration preset is one file: its scales and its arms are data in it, registered as Hydra config options.

A preset (``experiments/<name>.yaml``, the ``experiment`` group) holds, beside its own settings:

- ``scales:`` the settings of each scale, ``smoke`` (CPU minutes) and ``gpu`` (the journal's). Each is registered as
  the option ``scales/<name>_<scale>``, which the preset's defaults list loads (``- /scales: <name>_${scale}``), so
  ``scale=gpu`` picks it. (A group of its own, not under ``experiment/``: run.py's config has ``experiment`` as a
  plain key.)
- ``arms:`` the one-factor arms of its sweep: arm name -> what the arm changes, written as a config file would be
  (keys, and a ``defaults:`` list for a group it overrides), with the parts that differ by scale under ``smoke:`` and
  ``gpu:``. Each is registered as the option ``arm/<name>_<scale>/<arm>`` (it sets ``arm: <arm>``, the key the
  report's tables select runs by):

      python train.py experiment=iter12_grid_representation arm=iter12_grid_representation_smoke/r16   # one run
      python train.py -m experiment=iter12_grid_representation                                         # the sweep

  The sweep of a scale (``hydra.sweeper.params.arm``) is every arm in the file's order but those marked
  ``sweep: false`` (an arm another stage runs, from an adapter the sweep trains) or swept at the other scale only
  (``sweep: gpu``); a scale that sets ``hydra.sweeper.params.arm`` itself keeps its own.

Registering them in Hydra's ConfigStore, rather than writing a file per arm and per scale, keeps an iteration's
one-factor design on one screen, while Hydra composes, sweeps and launches them as it did the files (any launcher:
the ConfigStore travels with a job to its process). The entry points drop ``scales`` and ``arms`` from the config
they run: they were composed already, and would only repeat the preset in every run's params.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterator, Mapping

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf, open_dict

SCALES = ("smoke", "gpu")
PRESET_KEYS = ("scales", "arms")  # the keys of a preset that are registered options, not settings


class PresetError(ValueError):
    """A preset whose ``scales:`` or ``arms:`` cannot be registered; names the file and the key."""


def register(experiment_dir: str | Path) -> None:
    """Store the scales and arms of every preset in ``experiment_dir`` in Hydra's ConfigStore (before ``@hydra.main``
    or ``compose`` composes a config)."""
    store = ConfigStore.instance()
    for path in sorted(Path(experiment_dir).glob("*.yaml")):
        for group, name, node in options(path):
            store.store(group=group, name=name, node=node, package="_global_", provider="arc_exp.presets")


def options(path: str | Path) -> Iterator[tuple[str, str, dict]]:
    """(group, name, config) of every option the preset at ``path`` defines: its scales, then its arms per scale.

    >>> import tempfile, textwrap
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "demo.yaml").write_text(textwrap.dedent('''
    ...     scales: {smoke: {trainer: {max_steps: 4}}, gpu: {trainer: {max_steps: 6000}}}
    ...     arms:
    ...       base: {}
    ...       r16: {lora: {r: 16}, gpu: {trainer: {max_steps: 12000}}}
    ...       small: {smoke: {defaults: [override /model: tiny-random]}, sweep: false}
    ... '''))
    >>> for group, name, node in options(folder / "demo.yaml"):
    ...     print(group, name, node)  # doctest: +NORMALIZE_WHITESPACE
    scales demo_smoke {'trainer': {'max_steps': 4}, 'hydra': {'sweeper': {'params': {'arm':
        'demo_smoke/base,demo_smoke/r16'}}}}
    scales demo_gpu {'trainer': {'max_steps': 6000}, 'hydra': {'sweeper': {'params': {'arm':
        'demo_gpu/base,demo_gpu/r16'}}}}
    arm/demo_smoke base {'arm': 'base'}
    arm/demo_smoke r16 {'arm': 'r16', 'lora': {'r': 16}}
    arm/demo_smoke small {'arm': 'small', 'defaults': [{'override /model': 'tiny-random'}]}
    arm/demo_gpu base {'arm': 'base'}
    arm/demo_gpu r16 {'arm': 'r16', 'lora': {'r': 16}, 'trainer': {'max_steps': 12000}}
    arm/demo_gpu small {'arm': 'small'}
    """
    path = Path(path)
    preset = OmegaConf.to_container(OmegaConf.load(path), resolve=False) or {}  # OmegaConf's YAML: 1e-4 is a float
    scales, arms = preset.get("scales") or {}, preset.get("arms") or {}
    for key, value in (("scales", scales), ("arms", arms)):
        if not isinstance(value, Mapping):
            raise PresetError(f"{path}: {key}: must be a mapping, got {type(value).__name__}")
    unknown = sorted(set(scales) - set(SCALES))
    if unknown:
        raise PresetError(f"{path}: scales: {', '.join(map(str, unknown))} is no scale (the scales: "
                          f"{', '.join(SCALES)})")
    for scale, settings in scales.items():
        if not isinstance(settings or {}, Mapping):
            raise PresetError(f"{path}: scales.{scale}: must be a mapping of settings, got {settings!r}")
    for name, arm in arms.items():
        if not isinstance(arm, Mapping):
            raise PresetError(f"{path}: arms.{name}: an arm is a mapping of what it changes, got {arm!r}")
        sweep = arm.get("sweep", True)
        if not (isinstance(sweep, bool) or set([sweep] if isinstance(sweep, str) else sweep) <= set(SCALES)):
            raise PresetError(f"{path}: arms.{name}.sweep: true, false or the scales it is swept at "
                              f"({', '.join(SCALES)}), got {sweep!r}")
        for scale in SCALES:
            if not isinstance(arm.get(scale) or {}, Mapping):
                raise PresetError(f"{path}: arms.{name}.{scale}: must be a mapping, got {arm[scale]!r}")
    for scale in SCALES:
        if scale in scales or arms:
            yield "scales", f"{path.stem}_{scale}", _scale_config(path.stem, scale, scales.get(scale), arms)
    for scale in SCALES:
        for name, arm in arms.items():
            yield f"arm/{path.stem}_{scale}", str(name), arm_config(str(name), arm, scale)


def drop_options(cfg) -> None:
    """A composed config without its preset's ``scales:`` and ``arms:``: registered and composed already, they would
    repeat the whole preset in every run's params (the entry points) and in every stage's hash (run.py)."""
    with open_dict(cfg):
        for key in PRESET_KEYS:
            cfg.pop(key, None)


def arm_config(name: str, arm: Mapping, scale: str) -> dict:
    """The config of arm ``name`` at ``scale``: its keys for both scales, then its ``<scale>:`` part merged on them
    (a ``defaults:`` list of the part is appended).

    >>> arm_config("r16", {"lora": {"r": 16, "alpha": 32}, "gpu": {"lora": {"r": 8}}, "sweep": True}, "gpu")
    {'arm': 'r16', 'lora': {'r': 8, 'alpha': 32}}
    """
    config: dict[str, Any] = {"arm": name}
    both = {k: v for k, v in arm.items() if k not in (*SCALES, "sweep")}
    part = dict(arm.get(scale) or {})
    defaults = [*(both.pop("defaults", None) or []), *(part.pop("defaults", None) or [])]
    if defaults:
        config["defaults"] = defaults
    return _merge(_merge(config, both), part)


def _scale_config(preset: str, scale: str, settings: Mapping | None, arms: Mapping) -> dict:
    config = copy.deepcopy(dict(settings or {}))
    swept = [f"{preset}_{scale}/{name}" for name, arm in arms.items() if swept_at(arm, scale)]
    if swept:
        params = config.setdefault("hydra", {}).setdefault("sweeper", {}).setdefault("params", {})
        params.setdefault("arm", ",".join(swept))
    return config


def swept_at(arm: Mapping, scale: str) -> bool:
    """Whether the sweep of ``scale`` runs the arm: ``sweep:`` true (the default) or false, or the scale or scales it
    is swept at (``sweep: gpu``: a rank the CPU scale leaves out).

    >>> [swept_at({}, "smoke"), swept_at({"sweep": False}, "gpu"), swept_at({"sweep": "gpu"}, "smoke")]
    [True, False, False]
    """
    sweep = arm.get("sweep", True)
    return sweep if isinstance(sweep, bool) else scale in ([sweep] if isinstance(sweep, str) else list(sweep))


def _merge(base: dict, other: Mapping) -> dict:
    merged = copy.deepcopy(base)
    for key, value in other.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
