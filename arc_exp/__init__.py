"""arc_exp: a Hydra-configured experiment framework for solving ARC tasks with fine-tuned language models."""
__version__ = "0.1.0"
