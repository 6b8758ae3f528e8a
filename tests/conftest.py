"""Shared fixtures: the SmolLM2 tokenizer, the tiny random model, a temporary MLflow store, config composition and
in-process / subprocess runs of ``train.py``.

The tokenizer comes from the cached SmolLM2 folder (~/.cache/arc_exp/models/smollm2-135m; the first use converts
the GGUF file once, ~40 s). Every training run here writes to a temporary run folder and a temporary SQLite store,
never to the project's ``mlflow.db``.
"""
from __future__ import annotations

import copy
import functools
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

import pytest

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv" / "bin" / "python").exists() else sys.executable

# train.py sets this on import; composing the config without it would need Hydra's runtime.cwd
os.environ.setdefault("ARC_EXP_ROOT", str(REPO))

from arc_exp import cli, console, schemas  # noqa: E402

cli.prepare()  # the config schemas in Hydra's ConfigStore, as the entry points register them


def pytest_configure(config):
    """The known deprecation warnings of dependencies are filtered as the entry points filter them (by category,
    module and message, arc_exp/cli.py); any other warning shows in the test summary."""
    for action, message, category, module in console.KNOWN_WARNINGS:
        config.addinivalue_line("filterwarnings", f"{action}:{message}:{category}:{module}")

# Small, fast training runs: the tiny random model on the smoke tasks, no progress bar.
# a three-turn question/answer chat, as generated count chats look (tests of masks and rendering)
CHAT = [
    {"role": "system", "content": "Count objects."},
    {"role": "user", "content": "How many objects of color 3?"},
    {"role": "assistant", "content": "2"},
    {"role": "user", "content": "How many objects of color 5?"},
    {"role": "assistant", "content": "0"},
    {"role": "user", "content": "Which color has the largest object?"},
    {"role": "assistant", "content": "7"},
]

TINY = ("model=tiny-random", "debug=smoke", "trainer.enable_progress_bar=false")


def compose_train(overrides: Sequence[str] = (), return_hydra_config: bool = False):
    """The ``train`` config composed with ``overrides``, as ``python train.py <overrides>`` would see it.

    A fresh copy each call; compositions are cached because many tests compose the same options.
    """
    return copy.deepcopy(_compose(tuple(overrides), return_hydra_config))


@functools.lru_cache(maxsize=None)
def _compose(overrides: tuple, return_hydra_config: bool):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name="train"):
        return compose("train", overrides=list(overrides), return_hydra_config=return_hydra_config)


@pytest.fixture(scope="session")
def tokenizer():
    """The SmolLM2-135M-Instruct tokenizer (ChatML template, <|im_end|> ends a turn)."""
    from hydra.utils import instantiate

    from arc_exp.model.loader import load_tokenizer

    return load_tokenizer(instantiate(schemas.load_option(CONF / "model" / "smollm2-135m.yaml")))


@pytest.fixture(scope="session")
def tiny_model():
    """The tiny random Llama of conf/model/tiny-random.yaml (2 layers, hidden 64), seed 0, fp32."""
    from hydra.utils import instantiate

    from arc_exp.model.loader import load_model

    return load_model(instantiate(schemas.load_option(CONF / "model" / "tiny-random.yaml")), seed=0)


@pytest.fixture
def tracking_uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/mlflow.db"


def run_train(run_dir: Path, overrides: Sequence[str]) -> float:
    """Run ``train.py``'s ``main`` in this process, as ``python train.py <overrides> hydra.run.dir=<run_dir>`` would.

    Saves the ~10 s import of Lightning per run compared to a subprocess; ``main`` sees the same HydraConfig
    (output dir, overrides, mode) that ``@hydra.main`` gives it.
    """
    import train

    return run_recipe(train.main, compose_train(overrides, return_hydra_config=True), run_dir)


def run_recipe(main, cfg, run_dir: Path):
    """Call an entry point's recipe with a composed config (hydra node included) as ``@hydra.main`` would.

    The recipe itself, without ``cli.entry_point`` around it: its exceptions come through as they are raised
    (the one-line form of a user's mistake is tested through the command line, ``run_in_process``)."""
    import inspect

    main = inspect.unwrap(main)
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict

    run_dir.mkdir(parents=True, exist_ok=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.runtime.cwd = str(REPO)
        cfg.hydra.mode = RunMode.RUN
    HydraConfig.instance().set_config(cfg)
    try:
        with open_dict(cfg):
            del cfg["hydra"]
        return main(cfg)
    finally:
        HydraConfig.instance().cfg = None


def run_train_process(args: Sequence[str], env: Optional[dict] = None, timeout: float = 300
                      ) -> subprocess.CompletedProcess:
    """``python train.py <args>`` in a subprocess from the repo root (text output captured)."""
    full_env = {**os.environ, "HYDRA_FULL_ERROR": "0", **(env or {})}
    return subprocess.run([PYTHON, str(REPO / "train.py"), *args], cwd=REPO, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def mlflow_runs(tracking_uri: str) -> list:
    """Every run of every experiment in the store, oldest first."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return list(reversed(client.search_runs(experiments, max_results=100)))


def metric_history(tracking_uri: str, run_id: str, key: str) -> dict[int, float]:
    """``{step: value}`` of one metric of one run."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    return {m.step: m.value for m in client.get_metric_history(run_id, key)}


def run_in_process(args: Sequence[str], capsys) -> tuple[int, str, str]:
    """``python <args>`` (``train.py ...`` or ``-m arc_exp.stats ...``) in this process, through ``@hydra.main`` as
    the command line runs it: (exit status, stdout, stderr). Saves a subprocess's imports."""
    import runpy

    args = list(args)
    argv0, rest = (args[1], args[2:]) if args[0] == "-m" else (str(REPO / args[0]), args[1:])
    capsys.readouterr()
    old_argv, sys.argv = sys.argv, [argv0, *rest]
    code = 0
    try:
        if args[0] == "-m":
            runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(argv0, run_name="__main__")
    except SystemExit as exit_:
        code = 0 if exit_.code is None else exit_.code
    finally:
        sys.argv = old_argv
    out = capsys.readouterr()
    return code, out.out, out.err



# The architecture (transformers config class) of each model option, by the prefix of model.name: what FSDP must
# wrap is that architecture's decoder layer whatever the preset's config says
ARCHITECTURES = {"qwen2": "Qwen2Config", "phi-3": "Phi3Config", "llama": "LlamaConfig", "smollm2": "LlamaConfig",
                 "tiny-random": "LlamaConfig"}


def architecture_of(model_name: str):
    """A small model (2 layers, hidden 64) of ``model_name``'s architecture on the meta device (no weights, no
    download): the classes of its modules are those of the real model."""
    import torch
    import transformers

    config_class = next(getattr(transformers, name) for prefix, name in ARCHITECTURES.items()
                        if model_name.startswith(prefix))
    config = config_class(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, pad_token_id=0)
    with torch.device("meta"):
        return transformers.AutoModelForCausalLM.from_config(config)
