"""The console of an entry point: the known warnings and log lines of dependencies filtered (each by category,
module and message; never a blanket ignore), a sweep's parallel jobs' lines prefixed with ``[job N]``, and the final
metrics printed as a small table. Used by :mod:`arc_exp.cli` and by pytest (tests/conftest.py), so tests see what a
run sees."""
from __future__ import annotations

import builtins
import logging
import warnings

# (action, message regex, category, module regex): the known deprecation warnings of dependencies, none of which a
# user of arc_exp can act on. The same list feeds pytest (tests/conftest.py), so tests see what a run sees.
KNOWN_WARNINGS = [
    ("ignore", r"`torch\.jit\.script_method` is deprecated", "DeprecationWarning", r"torch\.jit\._script"),
    ("ignore", r"`is_gradient_checkpointing` is deprecated", "FutureWarning", r"transformers\.modeling_utils"),
    ("ignore", r"The ``noload`` loader strategy is deprecated", "DeprecationWarning",
     r"mlflow\.store\.tracking\.sqlalchemy_store"),
    ("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated", "FutureWarning",
     r"pytorch_lightning\.utilities\._pytree"),
]
# (logger, message prefix): known log lines of dependencies a user cannot act on: Lightning's "💡 Tip: ... try
# installing [litlogger]" advertisement and its "GPU available: ..., used: ..." / "TPU available" lines (the run's
# trainer option says which device it uses), logged at every Trainer start, and bitsandbytes' note that the optional
# `kernels` package is missing (it then uses its own CPU code), logged whenever peft imports it
KNOWN_LOG_LINES = [
    *((name, prefix) for name in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero",
                                  "lightning.pytorch.utilities.rank_zero")
      for prefix in ("💡 Tip", "GPU available", "TPU available")),
    ("bitsandbytes.backends.cpu.ops", "Failed to load CPU gemm_4bit_forward from kernels-community"),
]


def quiet_warnings() -> None:
    """Install :data:`KNOWN_WARNINGS` and the filters of :data:`KNOWN_LOG_LINES` (idempotent)."""
    for action, message, category, module in KNOWN_WARNINGS:
        warnings.filterwarnings(action, message=message, category=getattr(builtins, category), module=module)
    for name, prefix in KNOWN_LOG_LINES:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropLines) and f.prefix == prefix for f in logger.filters):
            logger.addFilter(_DropLines(prefix))


class _DropLines(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def format_metrics(metrics: dict) -> str:
    """``{"train/lr": 4e-05, "train/loss": 1.234567}`` -> ``"train/lr=4e-05, train/loss=1.23457"``: six significant
    digits, so a small value (a learning rate at the end of its decay) does not print as 0.0."""
    return ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())


def metrics_table(metrics: dict, width: int = 110) -> str:
    """The metrics as a small aligned table: ``name  value`` cells (six significant digits, as
    :func:`format_metrics`), values right-aligned, as many side by side as fit in ``width`` characters, filled
    column by column.

    >>> print(metrics_table({"train/loss": 1.234567, "train/lr": 4e-05, "val/loss": 2.5}, width=50))
      train/loss  1.23457    val/loss        2.5
      train/lr      4e-05
    """
    if not metrics:
        return "  (none)"
    names = [str(k) for k in metrics]
    values = [f"{v:.6g}" if isinstance(v, float) else str(v) for v in metrics.values()]
    cell = max(map(len, names)) + 2 + max(map(len, values))
    columns = max(1, (width - 2) // (cell + 4))
    rows = -(-len(names) // columns)
    cells = [f"{n:<{cell - len(v)}}{v}" for n, v in zip(names, values)]
    lines = ["    ".join(f"{c:<{cell}}" for c in cells[row::rows]).rstrip() for row in range(rows)]
    return "\n".join("  " + line for line in lines)


SEQUENTIAL_LAUNCHERS = ("hydra._internal.core_plugins.basic_launcher.BasicLauncher",)


def runs_in_parallel(launcher: dict) -> bool:
    """Whether a sweep's launcher (``hydra.launcher``) runs jobs at the same time, their log lines interleaved on one
    console: Hydra's basic launcher runs them one after the other, and so does any launcher with ``n_jobs: 1``;
    the others (joblib, and launchers that start jobs elsewhere) are taken to run them side by side.

    >>> runs_in_parallel({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"})
    False
    >>> runs_in_parallel({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
    ...                   "n_jobs": 2})
    True
    >>> runs_in_parallel({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
    ...                   "n_jobs": 1})
    False
    """
    return launcher.get("_target_") not in SEQUENTIAL_LAUNCHERS and launcher.get("n_jobs") != 1


def prefix_log_lines(prefix: str) -> None:
    """Start every line of the root logger's handlers with ``prefix`` (parallel sweep jobs share one console)."""
    for handler in logging.getLogger().handlers:
        formatter = handler.formatter or logging.Formatter()
        fmt = formatter._fmt or "%(message)s"
        if not fmt.startswith(prefix):
            handler.setFormatter(logging.Formatter(prefix + fmt, formatter.datefmt))
