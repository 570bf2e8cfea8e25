"""Ulysses (DeepSpeed-Ulysses) attention and the 2-D Ulysses × ring hybrid.

Ulysses: an all-to-all turns "every head, n = N/P tokens" into "H/P heads, all N tokens"; each rank runs ordinary
attention on its head group over the whole sequence, and a second all-to-all turns it back. The all-to-alls are
``torch.distributed.nn.functional.all_to_all_single`` (differentiable, works on gloo). Key/value heads are repeated
up to a multiple of P when there are fewer of them than ranks (GQA / MQA), keeping each query head with its own KV
head. Masks use global positions (gathered from the ranks), so any sharding order, causal or not, and packed
documents work.

Hybrid (LongVILA's 2-D attention): ranks form a (ring × ulysses) DeviceMesh. The all-to-all runs inside each
Ulysses group; the head group then attends over the ring group's tokens with ring attention; the second all-to-all
runs back. Ulysses size 1 is pure ring attention, ring size 1 pure Ulysses.

Shapes: q (B, Hq, n, D), k and v (B, Hkv, n, D) — this rank's tokens; positions (n,) their global positions;
segment_ids (B, n) or None. Returns (B, Hq, n, D).
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import Tensor
from torch.distributed.nn.functional import all_to_all_single

from zoo.kernels.attention import attention, attention_chunked, make_mask

from .ring import PARTIAL_BLOCK, ring_attention


def _all_gather(x: Tensor, group) -> Tensor:
    """(…) per rank → (P, …), no gradient (positions and segment ids)."""
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size(group))]
    dist.all_gather(parts, x.contiguous(), group=group)
    return torch.stack(parts)


def seq_to_heads(x: Tensor, group) -> Tensor:
    """(B, H, n, D) sequence-sharded → (B, H/P, P·n, D) head-sharded, tokens in rank order."""
    group = group or dist.group.WORLD
    p = dist.get_world_size(group)
    b, h, n, d = x.shape
    if h % p:
        raise ValueError(f"Ulysses needs the head count ({h}) divisible by the group size ({p})")
    send = x.reshape(b, p, h // p, n, d).permute(1, 0, 2, 3, 4).contiguous()  # chunk i goes to rank i
    recv = all_to_all_single(torch.empty_like(send), send, group=group)  # chunk i came from rank i
    return recv.permute(1, 2, 0, 3, 4).reshape(b, h // p, p * n, d)


def heads_to_seq(x: Tensor, group) -> Tensor:
    """Inverse of :func:`seq_to_heads`: (B, H/P, P·n, D) → (B, H, n, D)."""
    group = group or dist.group.WORLD
    p = dist.get_world_size(group)
    b, hp, pn, d = x.shape
    n = pn // p
    send = x.reshape(b, hp, p, n, d).permute(2, 0, 1, 3, 4).contiguous()  # tokens of rank i go back to rank i
    recv = all_to_all_single(torch.empty_like(send), send, group=group)  # head group i came from rank i
    return recv.permute(1, 0, 2, 3, 4).reshape(b, p * hp, n, d)


def _expand_kv_heads(k: Tensor, v: Tensor, n_q_heads: int, p: int) -> tuple[Tensor, Tensor]:
    """Repeat KV heads to lcm(Hkv, P) so they split over P ranks with each query head's KV head alongside it."""
    hkv = k.shape[1]
    if n_q_heads % p:
        raise ValueError(f"Ulysses needs the query head count ({n_q_heads}) divisible by the group size ({p})")
    r = p // math.gcd(hkv, p)
    if r == 1:
        return k, v
    return k.repeat_interleave(r, dim=1), v.repeat_interleave(r, dim=1)


def hybrid_attention(q: Tensor, k: Tensor, v: Tensor, positions: Tensor, segment_ids: Tensor | None = None,
                     causal: bool = True, ulysses_group=None, ring_group=None) -> Tensor:
    """Ulysses inside ``ulysses_group``, ring attention across ``ring_group`` (either may be a 1-rank group)."""
    p = dist.get_world_size(ulysses_group)
    k, v = _expand_kv_heads(k, v, q.shape[1], p)
    qh, kh, vh = (seq_to_heads(t, ulysses_group) for t in (q, k, v))
    pos = _all_gather(positions, ulysses_group).reshape(-1)
    seg = _all_gather(segment_ids, ulysses_group).permute(1, 0, 2).reshape(q.shape[0], -1) \
        if segment_ids is not None else None
    if ring_group is not None and dist.get_world_size(ring_group) > 1:
        out = ring_attention(qh, kh, vh, pos, seg, causal=causal, group=ring_group)
    else:
        mask_mod = (lambda qi, ki: pos[qi] >= pos[ki]) if causal else None  # noqa: E731 (local index → global)
        if mask_mod is None and seg is None:
            out = attention(qh, kh, vh)  # nothing masked: SDPA's fused kernel
        else:  # global-position masks go tile by tile, with the ring's smaller tiles (less fixed workspace)
            out = attention_chunked(qh, kh, vh, make_mask(segment_ids=seg, mask_mod=mask_mod), None,
                                    PARTIAL_BLOCK, PARTIAL_BLOCK)[0]
    return heads_to_seq(out, ulysses_group)


def ulysses_attention(q: Tensor, k: Tensor, v: Tensor, positions: Tensor, segment_ids: Tensor | None = None,
                      causal: bool = True, group=None) -> Tensor:
    """Exact attention over the whole sequence by head-parallel all-to-all (see the module docstring)."""
    return hybrid_attention(q, k, v, positions, segment_ids, causal, ulysses_group=group, ring_group=None)
