"""Splitting a sequence over P sequence-parallel ranks, and putting it back together.

- ``contiguous``: rank r holds tokens [r·N/P, (r+1)·N/P).
- ``zigzag`` (ring-flash-attention's balance for causal attention): cut the sequence into 2P chunks; rank r holds chunks
  r and 2P−1−r, so every rank has one early and one late chunk and the same causal work.

The same helpers shard a training batch (``shard_batch``) and the tensors in the tests, so the tests check exactly what
training runs. Labels are shifted *before* sharding (token t carries the label of t+1), because after sharding a
rank's last token's successor lives on another rank; summing the per-token losses over ranks then equals the
single-process loss. Positions travel as global (float) position ids, so RoPE and V2PE see the unsharded positions.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

MODES = ("zigzag", "contiguous")


def _check(n: int, world: int, mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"sharding mode must be one of {MODES}, got {mode!r}")
    parts = 2 * world if mode == "zigzag" else world
    if n % parts:
        raise ValueError(f"{mode} sharding over {world} ranks needs a length divisible by {parts}, got {n} "
                         f"(pad with pad_length first)")


def pad_length(n: int, world: int, mode: str = "zigzag") -> int:
    """How many tokens to append so that ``n`` shards evenly."""
    parts = 2 * world if mode == "zigzag" else world
    return (-n) % parts


def shard_indices(n: int, world: int, rank: int, mode: str = "zigzag", device=None) -> Tensor:
    """Global positions (ascending within each chunk) held by ``rank``: ``(n // world,)`` long."""
    _check(n, world, mode)
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is outside [0, {world})")
    if mode == "contiguous":
        size = n // world
        return torch.arange(rank * size, (rank + 1) * size, device=device)
    size = n // (2 * world)
    first = torch.arange(rank * size, (rank + 1) * size, device=device)
    last_chunk = 2 * world - 1 - rank
    return torch.cat((first, torch.arange(last_chunk * size, (last_chunk + 1) * size, device=device)))


def shard(x: Tensor, world: int, rank: int, dim: int = 1, mode: str = "zigzag") -> Tensor:
    """This rank's part of ``x`` along ``dim``."""
    return x.index_select(dim, shard_indices(x.shape[dim], world, rank, mode, x.device))


def unshard(parts: list[Tensor], dim: int = 1, mode: str = "zigzag") -> Tensor:
    """Inverse of :func:`shard`: every rank's part (in rank order) → the full tensor in global order."""
    world = len(parts)
    local = parts[0].shape[dim]
    n = local * world
    order = torch.cat([shard_indices(n, world, r, mode, parts[0].device) for r in range(world)])
    stacked = torch.cat(parts, dim=dim)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(n, device=order.device)
    return stacked.index_select(dim, inverse)


def gather(x: Tensor, group=None, dim: int = 1, mode: str = "zigzag") -> Tensor:
    """All ranks' parts of ``x`` → the full tensor in global order, on every rank (no gradient)."""
    world = dist.get_world_size(group)
    parts = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(parts, x.contiguous(), group=group)
    return unshard(parts, dim, mode)


def shift_labels(labels: Tensor, ignore_index: int = -100) -> Tensor:
    """(B, N) labels → the label each position predicts (that of the next token); the last position gets none."""
    return torch.cat((labels[:, 1:], labels.new_full((labels.shape[0], 1), ignore_index)), dim=1)


def shard_batch(batch: dict[str, Tensor], world: int, rank: int, mode: str = "zigzag", pad_id: int = 0) -> dict:
    """Shard a causal-LM batch (``input_ids`` (B, N), optional ``labels``, ``position_ids``, ``segment_ids``).

    Pads to an even split first: padding tokens get segment id −1 (they attend only to each other), label −100 and
    positions continuing the sequence. Returns input_ids, ``shifted_labels`` (already shifted: no shift after
    sharding), position_ids (float, global) and segment_ids, each this rank's part, plus ``indices``.
    """
    ids = batch["input_ids"]
    b, n = ids.shape
    labels = batch.get("labels", ids)
    positions = batch.get("position_ids")
    positions = torch.arange(n, device=ids.device, dtype=torch.float32).expand(b, n) if positions is None \
        else positions.float()
    segments = batch.get("segment_ids")
    segments = torch.zeros_like(ids) if segments is None else segments
    part = shard_sequence(ids, shift_labels(labels), positions, segments, world, rank, mode, pad_id)
    part["input_ids"] = part.pop("tokens")
    return part


def shard_sequence(tokens: Tensor, shifted_labels: Tensor, positions: Tensor, segments: Tensor, world: int, rank: int,
                   mode: str = "zigzag", pad_value: float = 0) -> dict:
    """Pad (B, N) ids or (B, N, d) embeddings with their labels, positions and segments to an even split, and return
    this rank's part: tokens, shifted_labels, position_ids, segment_ids and the global ``indices``."""
    b, n = tokens.shape[:2]
    pad = pad_length(n, world, mode)
    if pad:
        tokens = torch.cat((tokens, tokens.new_full((b, pad, *tokens.shape[2:]), pad_value)), 1)
        shifted_labels = torch.cat((shifted_labels, shifted_labels.new_full((b, pad), -100)), 1)
        positions = torch.cat((positions, positions[:, -1:] + 1 + torch.arange(pad, device=tokens.device)), 1)
        segments = torch.cat((segments, segments.new_full((b, pad), -1)), 1)  # padding attends only to padding
    idx = shard_indices(n + pad, world, rank, mode, tokens.device)
    return {"tokens": tokens[:, idx], "shifted_labels": shifted_labels[:, idx], "position_ids": positions[:, idx],
            "segment_ids": segments[:, idx], "indices": idx}
