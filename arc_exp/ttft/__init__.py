"""Test-time fine-tuning (TTFT) and the solver behind solve.py: the time budget, the TTFT dataset built from the test
tasks' own train examples (n-1, n-2), fine-tuning, and prediction into submission.json."""
