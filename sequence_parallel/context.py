"""What a model needs to run its attention layers sequence-parallel, passed down as ``SeqContext.sequence_parallel``.

``CausalLM.forward(..., sequence_parallel=SequenceParallel(kind, positions, group=…))`` makes every attention mixer
call ring / Ulysses / hybrid attention instead of local attention; RoPE still uses the (global) position ids given to
the model. ``positions`` are the global token indices of this rank's shard (``shard_batch(...)["indices"]``): they
decide causality, while position ids may be fractional (V2PE). ``sp_loss`` turns per-rank logits and pre-shifted
labels into a loss whose sum over ranks is the single-process mean loss, so summed gradients match too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

KINDS = ("ring", "ulysses", "hybrid")


@dataclass
class SequenceParallel:
    kind: str
    positions: Tensor  # (n_local,) long: global token index of each local token
    group: object = None  # ring or Ulysses group (None = the default group)
    ulysses_group: object = None  # hybrid only
    ring_group: object = None  # hybrid only

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"sequence parallelism kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "hybrid" and (self.ulysses_group is None or self.ring_group is None):
            raise ValueError("hybrid sequence parallelism needs ulysses_group and ring_group (e.g. from a DeviceMesh)")

    def attention(self, q: Tensor, k: Tensor, v: Tensor, segment_ids: Tensor | None, causal: bool) -> Tensor:
        from .ring import ring_attention
        from .ulysses import hybrid_attention, ulysses_attention

        if self.kind == "ring":
            return ring_attention(q, k, v, self.positions, segment_ids, causal, self.group)
        if self.kind == "ulysses":
            return ulysses_attention(q, k, v, self.positions, segment_ids, causal, self.group)
        return hybrid_attention(q, k, v, self.positions, segment_ids, causal, self.ulysses_group, self.ring_group)


def sp_loss(logits: Tensor, shifted_labels: Tensor, group=None, ignore_index: int = -100) -> Tensor:
    """Σ local token losses / number of labelled tokens on *all* ranks of ``group`` (all-reduced, no gradient)."""
    total = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), shifted_labels.reshape(-1),
                            ignore_index=ignore_index, reduction="sum")
    count = (shifted_labels != ignore_index).sum().to(torch.float32)
    if dist.is_initialized():
        dist.all_reduce(count, group=group)
    return total / count.clamp(min=1)
