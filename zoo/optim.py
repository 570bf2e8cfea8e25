"""Optimizer and learning-rate schedules shared by every modality's Lightning module."""

from __future__ import annotations

import math
from typing import Callable

import torch


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """LR multiplier: linear warm-up to 1, then cosine down to ``min_ratio`` at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def adamw_warmup_cosine(module: torch.nn.Module, lr: float, weight_decay: float, betas: tuple[float, float],
                        warmup_steps: int, min_lr_ratio: float, decay_1d: bool = False,
                        lr_scale: Callable[[str], float] | None = None, total_steps: int | None = None) -> dict:
    """AdamW (1-D parameters exempt from weight decay unless ``decay_1d``) with a per-step warm-up + cosine schedule
    to ``trainer.max_steps`` (10,000 when configured outside a Trainer or without max_steps).

    ``lr_scale(parameter name) -> multiplier`` gives parameters their own learning rate (layer-wise decay when
    fine-tuning); with it, frozen parameters (``requires_grad=False``) are left out. ``total_steps`` replaces
    ``trainer.max_steps`` as the end of the cosine (epoch-based runs know it from their data)."""
    if lr_scale is None:
        params = list(module.parameters())
        decay = [p for p in params if p.dim() >= 2 or decay_1d]
        no_decay = [p for p in params if p.dim() < 2 and not decay_1d]
        groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    else:
        by_key: dict[tuple[float, bool], list] = {}
        for name, p in module.named_parameters():
            if p.requires_grad:
                by_key.setdefault((float(lr_scale(name)), p.dim() >= 2 or decay_1d), []).append(p)
        groups = [{"params": ps, "lr": lr * scale, "weight_decay": weight_decay if decays else 0.0}
                  for (scale, decays), ps in sorted(by_key.items(), key=lambda kv: (-kv[0][0], not kv[0][1]))]
    opt = torch.optim.AdamW(groups, lr=lr, betas=betas)
    trainer = module._trainer
    total = total_steps or (trainer.max_steps if trainer is not None and trainer.max_steps > 0 else 10_000)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, warmup_steps, total, min_lr_ratio))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
