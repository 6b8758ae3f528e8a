"""Sharded JSONL output of a sample generator, over several processes, resumable; and reading it back as chats.

``write_shards(generator, n=25_000, out="data/count", seed=0, shard_size=10_000)`` writes::

    data/count/manifest.json        the generator's settings, n, seed and shard_size
    data/count/shard-00000.jsonl    samples 0..9999, one JSON record per line
    data/count/shard-00001.jsonl    samples 10000..19999
    data/count/shard-00002.jsonl    samples 20000..24999

Shard ``i`` draws its samples from ``make_rng(seed, i)``, so the output is the same whatever the number of worker
processes and whichever order they finish in. A shard is written to a hidden temporary file and renamed when
complete, so an interrupted run leaves complete shards only; running the same command again writes the missing ones.
A different command into the same folder (other seed, n, shard size or generator settings) is refused.
"""
from __future__ import annotations

import glob
import json
import logging
import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Protocol, Union

from arc_exp.files import write_text_atomic
from arc_exp.synthetic.count import make_rng
from arc_exp.synthetic.questions import chat_from_record

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SHARD_GLOB = "shard-*.jsonl"


class OutputMismatchError(ValueError):
    """The output folder holds a generation made with other settings; continuing would mix two datasets."""


class SampleGenerator(Protocol):
    name: str

    def sample(self, rng, sample_id: str) -> dict: ...

    def describe(self) -> dict: ...


@dataclass
class WriteSummary:
    out: Path
    shards: int          # shards of the whole dataset
    written: int         # shards written by this run
    samples: int         # samples written by this run
    seconds: float

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else float("nan")


def shard_path(out: Union[str, Path], index: int) -> Path:
    return Path(out) / f"shard-{index:05d}.jsonl"


def write_shards(generator: SampleGenerator, n: int, out: Union[str, Path], seed: int = 0, shard_size: int = 10_000,
                 workers: Optional[int] = 2) -> WriteSummary:
    """Write ``n`` samples of ``generator`` into JSONL shards under ``out`` (see the module docstring).

    ``workers`` processes (None: one per CPU) write whole shards; with 1 everything runs in this process.
    """
    for key, value, low in (("n", n, 0), ("shard_size", shard_size, 1), ("seed", seed, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{key}={value!r}: must be an integer >= {low}")
    if workers is None:
        workers = os.cpu_count() or 1
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r}: must be an integer >= 1")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputMismatchError(f"out={out} is a file, expected a folder for the shards")
    out.mkdir(parents=True, exist_ok=True)
    _claim(out, {"generator": generator.describe(), "n": n, "seed": seed, "shard_size": shard_size,
                 "format": "jsonl"})
    for stale in out.glob(f".{SHARD_GLOB}.tmp"):  # left by an interrupted run
        stale.unlink()

    n_shards = -(-n // shard_size)
    jobs = [(seed, i, i * shard_size, min(n, (i + 1) * shard_size), str(shard_path(out, i)))
            for i in range(n_shards) if not shard_path(out, i).exists()]
    if len(jobs) < n_shards:
        log.info("%s: %d of %d shards already complete, writing %d", out, n_shards - len(jobs), n_shards, len(jobs))
    started, samples = time.perf_counter(), 0
    workers = min(workers, max(1, len(jobs)))
    if workers == 1:
        _init_worker(generator)
        samples = _report(map(_write_shard, jobs), len(jobs), started)
    else:
        # fork: workers start at once with the generator in memory (spawn re-imports numpy and scipy in each)
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        with context.Pool(workers, _init_worker, (generator,)) as pool:
            samples = _report(pool.imap_unordered(_write_shard, jobs), len(jobs), started)
    return WriteSummary(out, n_shards, len(jobs), samples, time.perf_counter() - started)


def _claim(out: Path, manifest: dict) -> None:
    """Write the manifest, or check that the one already there describes this very generation."""
    path = out / MANIFEST
    manifest = json.loads(json.dumps(manifest))  # the form it takes on disk (tuples as lists)
    if path.exists():
        found = json.loads(path.read_text())
        if found != manifest:
            changes = [f"{key}: {a!r} -> {b!r}" for key, a, b in _differences(found, manifest)]
            raise OutputMismatchError(f"out={out} holds a generation with other settings ({'; '.join(changes[:5])}); "
                                      f"use another out folder or delete this one")
        return
    write_text_atomic(path, json.dumps(manifest, indent=2) + "\n")


def _differences(old, new, prefix: str = ""):
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            yield from _differences(old.get(key), new.get(key), f"{prefix}{key}.")
    elif old != new:
        yield prefix.rstrip("."), old, new


_GENERATOR: Optional[SampleGenerator] = None  # one per worker process, set once (its shape library is reused)


def _init_worker(generator: SampleGenerator) -> None:
    global _GENERATOR
    _GENERATOR = generator


def _write_shard(job: tuple) -> int:
    seed, index, start, stop, path = job
    rng = make_rng(seed, index)
    name = _GENERATOR.name
    # Records are trees we just built: skipping the check for reference cycles makes encoding ~20% faster.
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode
    lines = [dumps(_GENERATOR.sample(rng, f"{name}-{seed}-{i:08d}")) for i in range(start, stop)]
    write_text_atomic(Path(path), "\n".join(lines) + "\n")
    return stop - start


def _report(done: Iterator[int], jobs: int, started: float) -> int:
    samples = 0
    for finished, count in enumerate(done, start=1):
        samples += count
        elapsed = time.perf_counter() - started
        log.info("shard %d/%d done: %d samples in %.1f s (%.0f samples/s)", finished, jobs, samples, elapsed,
                 samples / max(elapsed, 1e-9))
    return samples


def shard_files(path_or_glob: Union[str, Path]) -> list[Path]:
    """The shard files of an output folder, a single file or a glob pattern, sorted."""
    path = Path(path_or_glob)
    if path.is_dir():
        files = sorted(path.glob(SHARD_GLOB))
    elif path.is_file():
        files = [path]
    else:
        files = sorted(Path(p) for p in glob.glob(str(path_or_glob), recursive=True) if p.endswith(".jsonl"))
    if not files:
        raise FileNotFoundError(f"no generated shards at {path_or_glob} (expected a folder of {SHARD_GLOB}, "
                                f"a .jsonl file or a glob pattern)")
    return files


def load_records(path_or_glob: Union[str, Path]) -> Iterator[dict]:
    """Every record of the shards at ``path_or_glob``, in shard order."""
    for file in shard_files(path_or_glob):
        with open(file, encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{file}, line {number}: not a JSON record ({error.msg})") from None


def load_chats(path_or_glob: Union[str, Path], encoder=None, system_prompt: Optional[str] = None
               ) -> Iterator[list[dict]]:
    """The chats (lists of ``{"role", "content"}`` messages) of generated shards, ready for ``chat_sample``.

    ``encoder`` (a GridEncoder or spec) renders the grids again with another encoder; ``system_prompt`` replaces
    the stored one. Every assistant turn is an answer.
    """
    for record in load_records(path_or_glob):
        yield chat_from_record(record, encoder, system_prompt)
