"""Ring attention: each rank keeps its queries and passes key/value blocks around the ring.

At step s rank r holds the K/V block of rank r − s (mod P). It attends to it with the foundation's chunked kernel,
which returns the log-sum-exp, and merges the partial results exactly: lse = logsumexp(lse_s),
out = Σ exp(lse_s − lse) · out_s. Which (query, key) pairs may attend is decided on *global* positions carried with
the blocks, so contiguous and zigzag sharding (``sharding.py``), causal or bidirectional attention, and packed
documents (segment ids travel with the keys) all work the same way.

The backward pass goes around the ring again: each step recomputes the partial attention of the local queries to the
visiting block, takes its gradients through (out_s, lse_s) given the merged result, adds dq locally and adds dk/dv to
accumulators that travel with the block, which arrive home after P hops.

Shapes: q (B, Hq, n, D), k and v (B, Hkv, n, D) — this rank's n = N / P tokens; positions (n,) global positions of
those tokens; segment_ids (B, n) or None. Returns (B, Hq, n, D).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from zoo.kernels.attention import chunked_backward, chunked_forward, make_mask, merge_attention_partials


def ring_pass(tensors: list[Tensor], group=None) -> list[Tensor]:
    """Send each tensor to the next rank and receive the previous rank's (batch_isend_irecv, works on gloo)."""
    world = dist.get_world_size(group)
    rank = dist.get_rank(group)
    nxt = dist.get_global_rank(group, (rank + 1) % world) if group is not None else (rank + 1) % world
    prv = dist.get_global_rank(group, (rank - 1) % world) if group is not None else (rank - 1) % world
    tensors = [t.contiguous() for t in tensors]  # gloo sends and receives dense buffers only
    received = [torch.empty_like(t) for t in tensors]
    ops = []
    for t, r in zip(tensors, received):
        ops.append(dist.P2POp(dist.isend, t, nxt, group))
        ops.append(dist.P2POp(dist.irecv, r, prv, group))
    for req in dist.batch_isend_irecv(ops):
        req.wait()
    return received


PARTIAL_BLOCK = 256  # tiles of the per-block partials: the kernel's fixed workspace is ~3x smaller than at 512


def _block_mask(q_pos, k_pos, q_seg, k_seg, causal, n_q, n_k):
    """Which local queries may see which keys of a visiting block, decided on global positions."""
    mask_mod = (lambda qi, ki: q_pos[qi] >= k_pos[ki]) if causal else None  # noqa: E731  (local index → global)
    return make_mask(segment_ids=q_seg, kv_segment_ids=k_seg, mask_mod=mask_mod, n_q=n_q, n_k=n_k)


class _RingAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, positions, segment_ids, causal, group):
        world = dist.get_world_size(group)
        has_seg = segment_ids is not None
        seg = segment_ids if has_seg else positions.new_zeros(q.shape[0], q.shape[2])
        scale = q.shape[-1] ** -0.5
        blk = [k, v, positions, seg]
        out = lse = None
        for step in range(world):
            nxt = ring_pass(blk, group) if step < world - 1 else None
            mask = _block_mask(positions, blk[2], seg if has_seg else None, blk[3] if has_seg else None, causal,
                               q.shape[2], k.shape[2])
            o, l_s = chunked_forward(q, blk[0], blk[1], mask, scale, PARTIAL_BLOCK, PARTIAL_BLOCK)
            # merge as we go: one running (out, lse) instead of P partial outputs (which would be O(N) per rank)
            out, lse = (o, l_s) if out is None else merge_attention_partials([out, o], [lse, l_s])
            del o, l_s
            if nxt is not None:
                blk = nxt
        ctx.save_for_backward(q, k, v, positions, seg, out, lse)
        ctx.causal, ctx.group, ctx.has_seg, ctx.scale = causal, group, has_seg, scale
        return out

    @staticmethod
    def backward(ctx, dout):
        # Flash-attention's ring backward: with the *merged* out and lse, each visiting block's tiles give exactly
        # its share of dq/dk/dv (P_ij = exp(s_ij − lse_i), Delta_i = rowsum(dout ∘ out)), with no partial forward
        # recomputed. K/V move one hop, then the dk/dv accumulators that travel with them: two smaller exchanges
        # instead of one of all four, so at most six block-sized buffers are alive, not eight.
        q, k, v, positions, seg, out, lse = ctx.saved_tensors
        group, causal, has_seg, scale = ctx.group, ctx.causal, ctx.has_seg, ctx.scale
        world = dist.get_world_size(group)
        dq = torch.zeros_like(q, dtype=torch.float32)
        kv = [k, v, positions, seg]
        dkv = [torch.zeros_like(k, dtype=torch.float32), torch.zeros_like(v, dtype=torch.float32)]
        for step in range(world):
            mask = _block_mask(positions, kv[2], seg if has_seg else None, kv[3] if has_seg else None, causal,
                               q.shape[2], k.shape[2])
            chunked_backward(q, kv[0], kv[1], out, lse, dout, None, mask, scale, PARTIAL_BLOCK, PARTIAL_BLOCK,
                             accumulate=(dq, dkv[0], dkv[1]))
            if step < world - 1:
                kv = ring_pass(kv, group)
            dkv = ring_pass(dkv, group) if world > 1 else dkv  # P hops in all bring every block's dk/dv home
        return dq.to(q.dtype), dkv[0].to(k.dtype), dkv[1].to(v.dtype), None, None, None, None


def ring_attention(q: Tensor, k: Tensor, v: Tensor, positions: Tensor, segment_ids: Tensor | None = None,
                   causal: bool = True, group=None) -> Tensor:
    """Exact attention over the whole sequence with this rank's shard of q, k, v (see the module docstring)."""
    if q.shape[2] != k.shape[2] or positions.shape != (q.shape[2],):
        raise ValueError(f"ring_attention needs equal local lengths and positions (n,): q {tuple(q.shape)}, "
                         f"k {tuple(k.shape)}, positions {tuple(positions.shape)}")
    return _RingAttention.apply(q, k, v, positions, segment_ids, causal, group)
