"""Why an evaluation's predictions are all unanswered: the likely cause, said once at the end of the run.

Every prediction unanswered (no output parses to a grid) is almost never the model being merely bad; it is a
mismatch between what the model learned and what it is asked:

>>> unanswered_reason(None, "output-from-examples-v0", "greedy", 0.1)
'the base model was never fine-tuned to answer with a grid (checkpoint=null); evaluate a trained checkpoint'
>>> unanswered_reason({"data": {"train": [{"chats": "data/count"}]}}, "output-from-examples-v0", "greedy", 0.1)
'the checkpoint was trained on chats only (data.train has no ARC task entry), never on output-from-examples-v0 prompts'
>>> unanswered_reason({"data": {"train": [{"source": "x", "prompt": "input-from-inputs-v0", "chats": None}]}},
...                   "output-from-examples-v0", "greedy", 0.1)
'the checkpoint was trained on input-from-inputs-v0 prompts, this evaluation asks output-from-examples-v0 (prompt=...)'
"""
from __future__ import annotations

from typing import Mapping, Optional


def unanswered_reason(checkpoint_config: Optional[Mapping], prompt_version: str, sampler: str,
                      dfs_threshold: float, is_base_model: Optional[bool] = None) -> str:
    """The probable cause of an evaluation where no prediction is a grid.

    ``checkpoint_config`` is the checkpoint's training config (its ``arc_exp.yaml``), ``None`` for the base model.
    """
    base = checkpoint_config is None if is_base_model is None else is_base_model
    if base:
        return ("the base model was never fine-tuned to answer with a grid (checkpoint=null); evaluate a trained "
                "checkpoint")
    entries = list((checkpoint_config or {}).get("data", {}).get("train") or [])
    # a saved config lists every key of an entry (chats: null in a task entry), an older one only those it set
    task_entries = [e for e in entries if isinstance(e, Mapping) and e.get("chats") is None]
    if entries and not task_entries:
        return (f"the checkpoint was trained on chats only (data.train has no ARC task entry), never on "
                f"{prompt_version} prompts")
    prompts = sorted({str(e.get("prompt")) for e in task_entries if e.get("prompt")})
    if prompts and prompt_version not in prompts:
        return (f"the checkpoint was trained on {', '.join(prompts)} prompts, this evaluation asks {prompt_version} "
                f"(prompt=...)")
    if sampler == "dfs":
        return (f"no answer kept a probability of at least inference.dfs_threshold={dfs_threshold:g} along its "
                f"tokens; lower the threshold or train longer")
    return ("the model never wrote a complete grid in this encoder: too little training (few steps, a small learning "
            "rate), or answers cut off by data.max_seq_len / inference.max_new_tokens")
