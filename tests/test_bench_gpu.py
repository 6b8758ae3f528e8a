"""bench/bench_gpu.py, the GPU check of issue 27, on the CPU: the same code paths with a tiny Qwen2 (training in
Lightning and in a plain loop, full fine-tuning, the QLoRA and FSDP rows that say why they cannot run here, the
generator batched, one at a time and with a reduced vocabulary), and the table it prints."""
import json
import sys

import pytest

from conftest import REPO

TINY_TASKS = REPO / "tests" / "fixtures" / "tiny_tasks"  # grids up to 3x3: short prompts and answers

CHECKS = ["train LoRA r32 all-linear, 64 tokens", "train full fine-tuning, 64 tokens", "train QLoRA (4-bit NF4) r32, 64 tokens",
          "trainer=fsdp, 1 process, LoRA r32", "generate batched (16), 2 tasks x 2 views, greedy",
          "generate batched, model.reduce_vocab=true"]


def bench_gpu():
    sys.path.insert(0, str(REPO / "bench"))
    import bench_gpu

    return bench_gpu


@pytest.fixture(autouse=True)
def progress_bars_back():
    """The bench turns transformers' progress bars off for its process; in pytest's process the tests after it keep
    them (tests/test_cli.py checks which bars show)."""
    from transformers.utils import logging as hf_logging

    yield
    hf_logging.enable_progress_bar()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="on a GPU the bench runs its GPU points")
def test_bench_gpu_runs_its_checks_on_the_cpu(tmp_path):
    text = bench_gpu().main(["--quick", "--only", "train", "fsdp", "generate", "--tasks", str(TINY_TASKS),
                             "--out", str(tmp_path / "out"), "--workdir", str(tmp_path)])
    rows = json.loads((tmp_path / "out" / "bench_gpu.json").read_text())["rows"]
    assert [row[0] for row in rows] == CHECKS
    assert not [row for row in rows if "FAILED" in row[1]], rows
    by_check = {row[0]: row for row in rows}
    assert by_check[CHECKS[0]][1] == "batch 2 (no OOM up to batch 2)" and "Lightning/plain" in by_check[CHECKS[0]][5]
    assert by_check[CHECKS[2]][1] == ("not run: lora.load_in_4bit=true (lora=qlora) needs a CUDA GPU and this "
                                      "machine has none; use lora=lora")
    assert by_check[CHECKS[3]][1] == "not run: FSDP needs CUDA; would wrap 2 x Qwen2DecoderLayer"
    assert "x one at a time" in by_check[CHECKS[4]][5] and "x the whole vocabulary" in by_check[CHECKS[5]][5]
    assert "random weights, SmolLM2 tokenizer vocabulary (49,152 tokens)" in text
    assert (tmp_path / "out" / "bench_gpu.md").read_text() == text


def test_the_gpu_model_is_qwen2_05b():
    """Qwen2-0.5B's architecture: 494,032,768 parameters with Qwen2's own 151,936 tokens (the released model's
    count), 401,938,304 with the SmolLM2 vocabulary the bench uses."""
    bench = bench_gpu()
    assert bench.model_parameters(bench.QWEN2_05B, 151936)[0] == 494_032_768
    parameters, embedding = bench.model_parameters(bench.QWEN2_05B, 49152)
    assert (parameters, embedding) == (401_938_304, 44_040_192)


@pytest.mark.slow
def test_bench_gpu_runs_evaluate_and_solve_on_the_cpu(tmp_path):
    bench_gpu().main(["--quick", "--only", "entry", "--out", str(tmp_path / "out"), "--workdir", str(tmp_path)])
    rows = json.loads((tmp_path / "out" / "bench_gpu.json").read_text())["rows"]
    assert [row[0] for row in rows] == ["evaluate.py", "solve.py ttft=n1"]
    assert not [row for row in rows if "FAILED" in row[1]], rows
    assert rows[1][5].startswith("stages: dataset ")
