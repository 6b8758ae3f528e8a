"""Inference: generation requests and settings, the Hugging Face generator (batched prefill with a shared-prefix
key/value cache, greedy or sampled decoding), depth-first search over answers and log-probability scoring."""
