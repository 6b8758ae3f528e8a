"""Atomic file writes: a temporary file in the same folder, replaced in one ``os.replace``, so a killed run leaves the
previous file or the new one, never half of either. Submissions, stage markers and synthetic shards use these."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Optional


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (fsynced, mode 0644) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; these are ordinary shareable files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | os.PathLike, data: Any, indent: Optional[int] = None) -> Path:
    """Write ``data`` as JSON to ``path`` atomically and return the path.

    >>> import tempfile, json; folder = tempfile.mkdtemp()
    >>> json.loads(write_json(Path(folder) / "a.json", {"x": [1, 2]}).read_text())
    {'x': [1, 2]}
    """
    return write_text_atomic(path, json.dumps(data, indent=indent))
