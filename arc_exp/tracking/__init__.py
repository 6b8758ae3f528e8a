"""Tracking: MLflow runs (store, experiment, params, tags, artifacts) and the iteration tables that report.py
rebuilds from them."""
