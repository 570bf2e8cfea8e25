"""Ulysses (DeepSpeed-Ulysses) attention and the 2-D Ulysses × ring hybrid.

Ulysses: an all-to-all turns "every head, n = N/P tokens" into "H/P heads, all N tokens"; each rank runs ordinary
attention on its head group over the whole sequence, and a second all-to-all turns it back. The all-to-alls are
``torch.distributed.nn.functional.all_to_all_single`` (differentiable, works on gloo). Key/value heads are repeated
up to a multiple of P when there are fewer of them than ranks (GQA / MQA), keeping each query head with its own KV
head. Masks use global positions (gathered from the ranks), so any sharding order, causal or not, and packed
documents work.

Pure Ulysses keeps memory low by working one head chunk at a time (``head_chunks``, default one KV head per rank
per chunk): forward all-to-alls a chunk, attends and sends it back before the next; it saves only the
sequence-layout inputs and output plus the log-sum-exp, and backward re-gathers each chunk's q, k, v and dout (with
Σ dout·out per row, the only use of out) rather than holding head-layout copies of every head from forward to backward.

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

from zoo.kernels.attention import (AttentionMask, attention, attention_chunked, chunked_backward, chunked_forward,
                                   make_mask)

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


def _head_chunks(hq: int, hkv: int, p: int, head_chunks: int | None, device) -> list[tuple[Tensor, Tensor]]:
    """Per chunk, the (query, KV) head indices that put chunk c of every rank's head group on that rank."""
    hq_rank, hkv_rank = hq // p, hkv // p
    g = hkv_rank if head_chunks is None else head_chunks
    if g < 1 or hkv_rank % g:
        raise ValueError(f"head_chunks ({head_chunks}) must divide the KV heads per Ulysses rank ({hkv_rank})")
    cq, ck = hq_rank // g, hkv_rank // g

    def pick(per_rank: int, size: int, c: int) -> Tensor:
        return torch.tensor([j * per_rank + c * size + i for j in range(p) for i in range(size)], device=device)

    return [(pick(hq_rank, cq, c), pick(hkv_rank, ck, c)) for c in range(g)]


class _UlyssesAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, mask: AttentionMask, group, head_chunks: int | None):
        p = dist.get_world_size(group)
        chunks = _head_chunks(q.shape[1], k.shape[1], p, head_chunks, q.device)
        scale = q.shape[-1] ** -0.5
        out, lses = torch.empty_like(q), []
        for sq, sk in chunks:
            qh, kh, vh = (seq_to_heads(t.index_select(1, s), group) for t, s in ((q, sq), (k, sk), (v, sk)))
            o, lse = chunked_forward(qh, kh, vh, mask, scale, PARTIAL_BLOCK, PARTIAL_BLOCK)
            del qh, kh, vh
            out.index_copy_(1, sq, heads_to_seq(o, group))
            lses.append(lse)
        ctx.save_for_backward(q, k, v, out, *lses)
        ctx.mask, ctx.group, ctx.chunks, ctx.scale = mask, group, chunks, scale
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, *lses = ctx.saved_tensors
        group, mask, scale = ctx.group, ctx.mask, ctx.scale
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        for (sq, sk), lse in zip(ctx.chunks, lses):
            # Delta = Σ_d dout · out per row is all the backward needs of out: computed here, it travels as (…, 1)
            dout_c = grad_out.index_select(1, sq)  # selected once: it feeds Delta and is sent itself
            delta = (dout_c.float() * out.index_select(1, sq).float()).sum(-1, keepdim=True)
            qh, kh, vh, doh, delta_h = (seq_to_heads(t.index_select(1, s) if s is not None else t, group)
                                        for t, s in ((q, sq), (k, sk), (v, sk), (dout_c, None), (delta, None)))
            del dout_c
            dqh, dkh, dvh = chunked_backward(qh, kh, vh, None, lse, doh, None, mask, scale, PARTIAL_BLOCK,
                                             PARTIAL_BLOCK, delta=delta_h[..., 0])
            del qh, kh, vh, doh, delta_h
            dq.index_copy_(1, sq, heads_to_seq(dqh, group))
            dk.index_copy_(1, sk, heads_to_seq(dkh, group))
            dv.index_copy_(1, sk, heads_to_seq(dvh, group))
        return dq, dk, dv, None, None, None


def ulysses_attention(q: Tensor, k: Tensor, v: Tensor, positions: Tensor, segment_ids: Tensor | None = None,
                      causal: bool = True, group=None, head_chunks: int | None = None) -> Tensor:
    """Exact attention over the whole sequence by head-parallel all-to-all, one head chunk at a time (see the module
    docstring); ``head_chunks`` must divide the KV heads per rank (after GQA expansion), default all of them."""
    group = group or dist.group.WORLD
    p = dist.get_world_size(group)
    k, v = _expand_kv_heads(k, v, q.shape[1], p)
    pos = _all_gather(positions, group).reshape(-1)
    seg = _all_gather(segment_ids, group).permute(1, 0, 2).reshape(q.shape[0], -1) \
        if segment_ids is not None else None
    mask_mod = (lambda qi, ki: pos[qi] >= pos[ki]) if causal else None  # noqa: E731 (local index → global)
    return _UlyssesAttention.apply(q, k, v, make_mask(segment_ids=seg, mask_mod=mask_mod), group, head_chunks)
