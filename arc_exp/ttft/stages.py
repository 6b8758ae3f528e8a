"""A solve run's folder and stages: stage markers (``stage.json``) that make a run resumable."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Mapping, Optional, Sequence

from arc_exp.files import write_json
from arc_exp.ttft.settings import TTFTConfigError, TTFTSettings

log = logging.getLogger(__name__)

MARKER = "stage.json"


def read_marker(folder: str | Path) -> Optional[dict]:
    """The ``stage.json`` of a finished stage (or task), ``None`` when it has not finished."""
    path = Path(folder) / MARKER
    return json.loads(path.read_text()) if path.exists() else None


def write_marker(folder: str | Path, info: Mapping) -> None:
    write_json(Path(folder) / MARKER, {**info, "finished_at": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=1)


def run_folder(resume: Optional[str], output_dir: str | Path) -> Path:
    """The run folder: ``resume`` (an earlier solve run folder, checked) or this run's ``output_dir``."""
    if not resume:
        return Path(output_dir)
    folder = Path(resume).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"resume: no such run folder '{resume}'")
    if not (folder / "submission.json").exists():
        raise TTFTConfigError(f"resume: '{resume}' is not a solve.py run folder (no submission.json)")
    return folder


def warn_if_changed(marker: Mapping, settings: TTFTSettings, stage: str, keys: Optional[Sequence[str]] = None) -> None:
    """On resume: warn when a finished stage ran with other ttft settings (``keys``: only those matter to it)."""
    saved, now = marker.get("ttft") or {}, settings.describe()
    changed = sorted(k for k in (keys or set(saved) | set(now)) if saved.get(k) != now.get(k))
    if changed:
        log.warning("resume: stage %s ran with other ttft settings (%s differ); its outputs are reused, start a "
                    "new run to apply the new settings", stage, ", ".join(f"ttft.{k}" for k in changed))
