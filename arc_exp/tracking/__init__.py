"""Tracking: MLflow runs (store, experiment, params, tags, artifacts) and the iteration tables that report.py
rebuilds from them (tables.py), with the evaluations' per-task results read back (per_task.py), bootstrap intervals
and paired tests (significance.py) and the paired comparisons as the report shows them (comparison.py)."""
