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

from zoo.kernels.attention import attention_chunked, make_mask, merge_attention_partials


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


def _partial(q, k, v, q_pos, k_pos, q_seg, k_seg, causal):
    """Attention of the local queries to one key block, masked by global positions → (out, lse)."""
    mask_mod = (lambda qi, ki: q_pos[qi] >= k_pos[ki]) if causal else None  # noqa: E731  (local index → global)
    mask = make_mask(segment_ids=q_seg, kv_segment_ids=k_seg, mask_mod=mask_mod, n_q=q.shape[2], n_k=k.shape[2])
    return attention_chunked(q, k, v, mask, None, PARTIAL_BLOCK, PARTIAL_BLOCK)


class _RingAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, positions, segment_ids, causal, group):
        world = dist.get_world_size(group)
        has_seg = segment_ids is not None
        seg = segment_ids if has_seg else positions.new_zeros(q.shape[0], q.shape[2])
        blk = [k, v, positions, seg]
        out = lse = None
        for step in range(world):
            nxt = ring_pass(blk, group) if step < world - 1 else None
            o, l_s = _partial(q, blk[0], blk[1], positions, blk[2], seg if has_seg else None,
                              blk[3] if has_seg else None, causal)
            # merge as we go: one running (out, lse) instead of P partial outputs (which would be O(N) per rank)
            out, lse = (o, l_s) if out is None else merge_attention_partials([out, o], [lse, l_s])
            if nxt is not None:
                blk = nxt
        ctx.save_for_backward(q, k, v, positions, seg, out, lse)
        ctx.causal, ctx.group, ctx.has_seg = causal, group, has_seg
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k, v, positions, seg, out, lse = ctx.saved_tensors
        group, causal, has_seg = ctx.group, ctx.causal, ctx.has_seg
        world = dist.get_world_size(group)
        dq = torch.zeros_like(q, dtype=torch.float32)
        blk = [k, v, positions, seg, torch.zeros_like(k, dtype=torch.float32), torch.zeros_like(v, dtype=torch.float32)]
        safe_lse = lse.masked_fill(torch.isinf(lse), float("inf"))  # rows with no key anywhere: weight 0
        dout_f = dout.float()
        d_out_dot_out = torch.einsum("bhnd,bhnd->bhn", dout_f, out.float())  # once, not a full-size temporary per step
        for step in range(world):
            k_blk, v_blk, pos_blk, seg_blk, dk_blk, dv_blk = blk
            with torch.enable_grad():
                qg, kg, vg = (t.detach().requires_grad_() for t in (q, k_blk, v_blk))
                o_s, lse_s = _partial(qg, kg, vg, positions, pos_blk, seg if has_seg else None,
                                      seg_blk if has_seg else None, causal)
                w = torch.exp(lse_s.detach() - safe_lse)  # this block's share of each query's softmax mass
                g_out = (w[..., None] * dout_f).to(o_s.dtype)
                g_lse = w * (torch.einsum("bhnd,bhnd->bhn", dout_f, o_s.detach().float()) - d_out_dot_out)
                gq, gk, gv = torch.autograd.grad((o_s, lse_s), (qg, kg, vg), (g_out, g_lse))
            del o_s, lse_s, g_out, qg, kg, vg
            dq.add_(gq)
            dk_blk.add_(gk)  # the accumulators are this rank's own buffers (fresh from the last hop)
            dv_blk.add_(gv)
            del gq, gk, gv
            if step < world - 1:
                blk = ring_pass(blk, group)
        # one more hop brings every block's dk/dv home (P hops in all)
        dk, dv = ring_pass(blk[4:], group) if world > 1 else blk[4:]
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), None, None, None, None


def ring_attention(q: Tensor, k: Tensor, v: Tensor, positions: Tensor, segment_ids: Tensor | None = None,
                   causal: bool = True, group=None) -> Tensor:
    """Exact attention over the whole sequence with this rank's shard of q, k, v (see the module docstring)."""
    if q.shape[2] != k.shape[2] or positions.shape != (q.shape[2],):
        raise ValueError(f"ring_attention needs equal local lengths and positions (n,): q {tuple(q.shape)}, "
                         f"k {tuple(k.shape)}, positions {tuple(positions.shape)}")
    return _RingAttention.apply(q, k, v, positions, segment_ids, causal, group)
