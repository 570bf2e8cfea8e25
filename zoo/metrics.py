"""Metrics shared by the modalities' eval tasks and validation steps."""

from __future__ import annotations

import torch


def answer_exact_match(logits: torch.Tensor, input_ids: torch.Tensor, answer_mask: torch.Tensor) -> torch.Tensor:
    """Per-sample 1.0 when every answer token is the argmax of the logits one step before it, else 0.0."""
    pred = logits[:, :-1].argmax(-1)
    target = input_ids[:, 1:]
    mask = answer_mask[:, 1:]
    wrong = (pred != target) & mask
    return (~wrong.any(dim=1)).float()
