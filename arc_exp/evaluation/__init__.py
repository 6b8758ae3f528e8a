"""Evaluation: per prediction and per test input metrics, voting over augmented predictions, the evaluation pipeline
(views, prompts, generation, decoding, scoring), product-of-experts selection, checkpoint resolution, submissions,
outputs and plots, and the split of predictions over processes or jobs (shards.py, also solve.py's)."""


class EvaluationError(ValueError):
    """A setting or input that makes the evaluation impossible; raised before generation starts."""
