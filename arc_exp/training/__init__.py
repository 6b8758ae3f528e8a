"""Training: the LightningModule (loss on answer tokens only), learning-rate schedules, callbacks that write adapter
checkpoints, and the builders train.py composes (tokenizer, datamodule, model, logger, trainer, evaluation after
training)."""
