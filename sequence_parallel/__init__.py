"""Sequence parallelism: ring (zigzag), Ulysses, the 2-D hybrid, sharding helpers, and the context that lets a model's
attention layers run on a sharded sequence. Built on ``zoo.kernels.attention``'s differentiable log-sum-exp."""

from .context import SequenceParallel, sp_loss
from .ring import ring_attention
from .sharding import gather, pad_length, shard, shard_batch, shard_indices, shift_labels, unshard
from .ulysses import hybrid_attention, ulysses_attention

__all__ = ["SequenceParallel", "gather", "hybrid_attention", "pad_length", "ring_attention", "shard", "shard_batch",
           "shard_indices", "shift_labels", "sp_loss", "ulysses_attention", "unshard"]
