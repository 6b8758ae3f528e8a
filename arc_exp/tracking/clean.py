"""List, and with ``--remove`` delete, the checkpoints of training runs that are not the last of their arm: an arm
run again (a fix, a rerun after a crash) leaves the older run's ``checkpoints/`` folder (its ``last.ckpt`` and adapter
folders, 1.6 GB for a full fine-tuning smoke run) that nothing reads any more.

    python -m arc_exp.tracking.clean                        # list them, with their size
    python -m arc_exp.tracking.clean --remove               # delete those folders (the runs stay in MLflow)
    python -m arc_exp.tracking.clean --tracking-uri sqlite:///other.db

An arm is the runs of one preset arm (tags ``experiment`` and ``choice/arm``) with one seed; its last is the newest
finished one. Runs outside an arm are never listed. A removed run is tagged ``checkpoints_removed=true``.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence


@dataclass
class Superseded:
    run_id: str
    arm: str
    folder: Path  # the run's checkpoints/ folder
    size: int     # bytes
    newest: str   # the run id that supersedes it


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def superseded_checkpoints(tracking_uri: str) -> list[Superseded]:
    """The checkpoints/ folders of the training runs that a newer finished run of their arm (and seed) supersedes."""
    # mlflow takes seconds to import: only when a run is read or written
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(ids, filter_string="tags.run_type = 'training'", max_results=50000) if ids else []
    arms: dict[tuple, list] = {}
    for run in runs:
        tags = run.data.tags
        arm = tags.get("choice/arm")
        if not arm or arm == "None" or not tags.get("output_dir"):
            continue
        key = (tags.get("experiment", ""), arm, run.data.params.get("seed", ""))
        arms.setdefault(key, []).append(run)
    found = []
    for (experiment, arm, seed), members in sorted(arms.items()):
        finished = [r for r in members if r.info.status == "FINISHED"]
        if not finished:
            continue
        newest = max(finished, key=lambda r: r.info.start_time)
        for run in members:
            folder = Path(run.data.tags["output_dir"]) / "checkpoints"
            if run is not newest and run.info.start_time < newest.info.start_time and folder.is_dir():
                name = f"{experiment} {arm}" + (f" seed={seed}" if seed else "")
                found.append(Superseded(run.info.run_id, name, folder, folder_size(folder), newest.info.run_id))
    return found


def remove(found: Sequence[Superseded], tracking_uri: str) -> None:
    # mlflow takes seconds to import: only when a run is read or written
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    for item in found:
        shutil.rmtree(item.folder)
        client.set_tag(item.run_id, "checkpoints_removed", "true")


def describe(found: Sequence[Superseded], removed: bool) -> str:
    if not found:
        return "no checkpoints of superseded runs"
    lines = [f"{item.run_id[:8]}  {item.size / 1e6:9.1f} MB  {item.arm} (newest: {item.newest[:8]})  {item.folder}"
             for item in found]
    total = sum(item.size for item in found) / 1e6
    lines.append(f"{'removed' if removed else 'total'}: {total:.1f} MB in {len(found)} runs"
                 + ("" if removed else "; --remove deletes them"))
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m arc_exp.tracking.clean", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    parser.add_argument("--remove", action="store_true", help="delete the folders listed")
    args = parser.parse_args(argv)
    found = superseded_checkpoints(args.tracking_uri)
    if args.remove:
        remove(found, args.tracking_uri)
    print(describe(found, args.remove))
    return 0


if __name__ == "__main__":
    sys.exit(main())
