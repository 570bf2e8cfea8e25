"""Modality-aware sequence parallelism (LongVILA's MM-SP) for LongVA-style video LMs.

1. The batch's frames are spread evenly over the sequence-parallel ranks; each rank runs the vision tower, projector
   and pooling on its share only (the vision encoder's work is 1/P per rank).
2. The visual tokens are all-gathered (differentiably: the backward pass sends each frame's gradient back to the rank
   that encoded it) and spliced into the text embeddings, giving every rank the full interleaved sequence.
3. That sequence is re-sharded (zigzag by default) so every rank holds the same number of tokens, with labels shifted
   before sharding, global position ids (V2PE's fractional ones included) and padding in its own segment.
The language model then runs with ring / Ulysses / hybrid attention; ``sp_loss`` on the result sums to the
single-process loss over ranks.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor
from torch.distributed.nn.functional import all_gather

from .sharding import shard_sequence, shift_labels


def encode_frames_spread(model, videos: list[Tensor], group=None) -> Tensor:
    """All frames of ``videos`` encoded with each rank doing 1/P of them → (ΣT, tokens, d) on every rank."""
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    frames = torch.cat(videos)
    total = len(frames)
    per_rank = -(-total // world)
    padded = torch.cat((frames, frames.new_zeros(per_rank * world - total, *frames.shape[1:])))  # equal shares
    mine = model.encode_frames(padded[rank * per_rank: (rank + 1) * per_rank])
    return torch.cat(all_gather(mine, group=group))[:total]


def mmsp_shard(model, input_ids: Tensor, videos: list[Tensor], labels: Tensor, group=None, mode: str = "zigzag",
               v2pe_delta=None) -> dict:
    """This rank's part of a video+text batch: inputs_embeds, shifted_labels, position_ids, segment_ids, indices."""
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    feats = encode_frames_spread(model, videos, group)
    embeds, full_labels, positions, _ = model.build_inputs(input_ids, videos, labels, v2pe_delta,
                                                           frame_features=feats)
    segments = torch.zeros(embeds.shape[:2], dtype=torch.long, device=embeds.device)
    part = shard_sequence(embeds, shift_labels(full_labels), positions, segments, world, rank, mode)
    part["inputs_embeds"] = part.pop("tokens")
    return part
