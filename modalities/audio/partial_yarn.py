"""Partial YaRN and VLAT: audio-only position remapping for long audio (scb-10x/partial-yarn, on Qwen2-Audio).

An audio span of ``L`` tokens that is longer than the window the model was trained on (``window`` = 750 tokens per
30 s) gets two sets of RoPE positions:

- the high-frequency frequency pairs (index < ``start_dim``) keep the original positions of *every* token;
- the low-frequency pairs (index ≥ ``start_dim``) see the audio squeezed into the window: ``linspace(s, s + window − 1,
  L)`` where ``s`` is the position of the span's first token, and text after the span continues at ``s + window``.

The audio span's cos and sin are also divided by √T (attention temperature T, e.g. 1.2). Spans no longer than the
window are left alone (no remapping, no temperature). Several audio spans in one sequence are each remapped, and
each shifts what follows.

VLAT (virtual long-audio training) applies the same mapping in training with a *virtual* span length drawn from
750 × {1, 5, 10, 15, 20, 25} (capped at 18,750): a 30 s clip's positions are spread as if it were that long.

Everything here returns inputs for :class:`zoo.lm.CausalLM`: per-frequency position ids ``(B, N, head_dim / 2)``
(see :func:`zoo.positions.band_position_ids`) and a ``rope_cos_scale`` ``(B, N)``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch
from torch import Tensor

from zoo.positions import band_position_ids, remapped_positions
from zoo.positions import media_spans as audio_spans

WINDOW_TOKENS = 750  # audio tokens per 30 s window after the encoder's 2× pooling
VLAT_FACTORS = (1, 5, 10, 15, 20, 25)
VLAT_MAX_TOKENS = 18750


@dataclass
class PartialYarnConfig:
    start_dim: int | None = None  # first remapped frequency pair; None = half of them (32 of 64 at head_dim 128)
    temperature: float = 1.2
    window: int = WINDOW_TOKENS

    def __post_init__(self):
        if self.temperature <= 0:
            raise ValueError(f"partial_yarn.temperature must be > 0, got {self.temperature}")
        if self.window < 1:
            raise ValueError(f"partial_yarn.window must be ≥ 1, got {self.window}")


def partial_yarn_inputs(is_audio: Tensor, n_freq: int, config: PartialYarnConfig,
                        virtual_lengths: list[int | None] | None = None) -> tuple[Tensor, Tensor]:
    """Position ids ``(B, N, n_freq)`` and cos/sin scale ``(B, N)`` for a batch with audio mask ``is_audio (B, N)``.

    Without ``virtual_lengths`` (inference): spans longer than ``config.window`` are squeezed into it. With them (VLAT,
    one per row): every audio span of that row is spread over its virtual length instead; None leaves the row as is.
    """
    start_dim = n_freq // 2 if config.start_dim is None else config.start_dim
    rows_pos, rows_scale = [], []
    for b in range(is_audio.shape[0]):
        mask = is_audio[b].cpu()
        spans = audio_spans(mask)
        if virtual_lengths is None:
            targets = [config.window if (e - s) > config.window else None for s, e in spans]
        else:
            targets = [virtual_lengths[b] for _ in spans]
        original = torch.arange(mask.shape[0], dtype=torch.float32)
        remapped = remapped_positions(mask, targets)
        rows_pos.append(band_position_ids(original, remapped, start_dim, n_freq))
        scale = torch.ones(mask.shape[0], dtype=torch.float32)  # not the default dtype (bf16 under bf16-true)
        for (s, e), t in zip(spans, targets):
            if t is not None and t != e - s:
                scale[s:e] = 1.0 / math.sqrt(config.temperature)
        rows_scale.append(scale)
    device = is_audio.device
    return torch.stack(rows_pos).to(device), torch.stack(rows_scale).to(device)


def draw_virtual_length(rng: random.Random, factors=VLAT_FACTORS, window: int = WINDOW_TOKENS,
                        cap: int = VLAT_MAX_TOKENS) -> int:
    """A VLAT virtual audio length: window × a factor drawn from ``factors``, among those within ``cap``."""
    allowed = [f for f in factors if f * window <= cap]
    if not allowed:
        raise ValueError(f"no VLAT factor in {list(factors)} keeps {window} × factor within {cap}")
    return rng.choice(allowed) * window
