"""Model: the supported model specs and the one loader (base model, reduced vocabulary, quantisation, then LoRA or
full weights for training, or a saved adapter for inference), adapters, the reduced vocabulary and checkpoint
folders."""
