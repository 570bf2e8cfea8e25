"""Scaled dot-product attention with one entry point and several paths.

Shapes (all paths): q ``(B, Hq, N, D)``, k and v ``(B, Hkv, M, D)`` with ``Hq % Hkv == 0`` (grouped-query attention);
output ``(B, Hq, N, D)``; log-sum-exp ``(B, Hq, N)`` in fp32 (natural log of the softmax denominator, including the
scale). Queries are aligned to the *end* of the keys (query i sits at absolute position ``i + M - N``), which is what a
KV cache needs and what flash-attn does; N > M is allowed (causal rows before the first key see nothing). Packed
sequences (segment ids, or flash-attn's ``cu_seqlens_q`` / ``cu_seqlens_k``) are aligned the same way *within each
sequence*, exactly as ``flash_attn_varlen_func``; :func:`attention_varlen` takes its calling convention as is.
Windows are flash-attn's ``window_size=(left, right)``: key j is visible from query i when
``qa - left ≤ ka ≤ qa + right`` (aligned positions, see :class:`AttentionMask`); causal sets ``right = 0``.

Paths:
- ``ref``: plain softmax math on a dense mask. Obviously correct, O(N·M) memory. Tests compare everything with it.
- ``sdpa``: ``torch.nn.functional.scaled_dot_product_attention``. Causal/unmasked attention is a fused kernel with linear
  memory; any other mask is handed to it densely (N×M booleans). Its log-sum-exp is exact but not differentiable.
- ``chunked``: pure-PyTorch online softmax over (query block × key block) tiles with a custom backward that recomputes
  the tiles. Masks are evaluated per tile from an :class:`AttentionMask`, never as N×M, and tiles that are fully masked
  are skipped, so packed documents, sliding windows and Kronecker masks cost memory linear in N.
- ``flash``: flash-attn on CUDA (the ``[cuda]`` extra).
- ``auto``: flash on CUDA when installed and the mask allows it; else SDPA when the mask is causal/none (or tiny);
  else chunked. It never builds an N×N mask beyond ``DENSE_MASK_MAX_ELEMENTS``.

Rows with no visible key give output 0 and log-sum-exp ``-inf`` on every path.

Half precision: ``chunked`` and ``ref`` accumulate in fp32 and cast the output back; ``sdpa`` hands bf16/fp16 to
PyTorch's kernels as they are (on CPU its flash kernel accumulates in fp32; the tests hold it to flash-attn's rule:
error at most twice that of a plain PyTorch computation in the same dtype, against the fp32 reference).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ._optional import flash_attn, log_fallback_once

Backend = Literal["auto", "sdpa", "chunked", "flash", "ref"]
BACKENDS = ("auto", "sdpa", "chunked", "flash", "ref")

# Above this many (query × key) pairs `auto` refuses to materialise a dense mask (4M booleans = 4 MB per batch row).
DENSE_MASK_MAX_ELEMENTS = 1 << 22

MaskMod = Callable[[Tensor, Tensor], Tensor]
"""``mask_mod(q_pos, kv_pos) -> bool`` on broadcastable integer tensors of absolute positions; True = may attend."""


# --------------------------------------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttentionMask:
    """Which (query, key) pairs may attend, described so that any tile of it can be evaluated on its own.

    Positions are flash-attn's: query i and key j are compared through their *aligned* positions ``qa`` and ``ka``,
    with queries aligned bottom-right. Without segments ``qa = i + M - N`` and ``ka = j``. With segments, alignment is
    per sequence (as ``flash_attn_varlen_func`` does with ``cu_seqlens_q`` / ``cu_seqlens_k``): ``qa`` = the query's
    rank among its segment's queries + (that segment's key count − its query count), ``ka`` = the key's rank among its
    segment's keys. Then, with ``d = qa − ka``:

    causal: ``d ≥ 0``. window_left / window_right (flash-attn's ``window_size``; None = unbounded): ``d ≤ left`` and
    ``−d ≤ right``; causal forces ``right = 0``, as flash-attn does.
    q_segment_ids ``(B, N)`` / kv_segment_ids ``(B, M)``: packed sequences; only equal ids attend.
    mask_mod: any extra predicate on ``(i + M − N, j)`` (e.g. Timer-XL's variable ⊗ causal Kronecker mask).
    All conditions are combined with AND. A query that sees no key (q > k under causal, an empty sequence) gives
    output 0 and log-sum-exp −inf.
    """

    causal: bool = False
    window_left: int | None = None
    window_right: int | None = None
    q_segment_ids: Tensor | None = None
    kv_segment_ids: Tensor | None = None
    mask_mod: MaskMod | None = None
    # per-sequence aligned positions (B, N) / (B, M), derived from the segment ids when a position condition needs them
    q_seq_pos: Tensor | None = field(default=None, init=False, repr=False, compare=False)
    kv_seq_pos: Tensor | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.causal:
            object.__setattr__(self, "window_right", 0)
        for side in ("window_left", "window_right"):
            w = getattr(self, side)
            if w is not None and w < 0:
                raise ValueError(f"{side} must be ≥ 0 or None (unbounded), got {w}")
        if (self.q_segment_ids is None) != (self.kv_segment_ids is None):
            raise ValueError("give both q_segment_ids and kv_segment_ids, or neither")
        if self.q_segment_ids is not None and self.has_position_condition:
            qa, ka = sequence_aligned_positions(self.q_segment_ids, self.kv_segment_ids)
            object.__setattr__(self, "q_seq_pos", qa)
            object.__setattr__(self, "kv_seq_pos", ka)

    @property
    def has_position_condition(self) -> bool:
        return self.window_left is not None or self.window_right is not None

    @property
    def has_window(self) -> bool:
        """A window beyond plain causality (what SDPA's ``is_causal`` cannot express)."""
        return self.window_left is not None or (self.window_right is not None and not self.causal)

    @property
    def is_plain(self) -> bool:
        """True when the mask is nothing but (optionally) causal: fused kernels take it without a tensor."""
        return not self.has_window and self.q_segment_ids is None and self.mask_mod is None

    def _distance_bounds(self, d_min: int | Tensor, d_max: int | Tensor) -> tuple[bool, bool]:
        """(no pair visible, every pair visible) for pairs whose ``qa − ka`` lies in [d_min, d_max]."""
        left, right = self.window_left, self.window_right
        empty = (left is not None and _known(d_min > left)) or (right is not None and _known(-d_max > right))
        full = (left is None or _known(d_max <= left)) and (right is None or _known(-d_min <= right))
        return empty, full

    def tile(self, q0: int, q1: int, k0: int, k1: int, offset: int, device=None) -> Tensor | bool:
        """Mask of queries [q0, q1) × keys [k0, k1), as ``(B or 1, q1-q0, k1-k0)`` booleans.

        Returns ``True`` when every pair is visible and ``False`` when none is, without building a tensor where index
        arithmetic or segment ranges decide it. ``offset`` = M - N aligns queries to the end of the keys.
        """
        qs = ks = None
        full = True
        if self.q_segment_ids is not None:
            qs = self.q_segment_ids[:, q0:q1]
            ks = self.kv_segment_ids[:, k0:k1]
            qmin, qmax = qs.amin(1), qs.amax(1)
            kmin, kmax = ks.amin(1), ks.amax(1)
            if _known(((qmax < kmin) | (kmax < qmin)).all()):
                return False
            full &= _known(((qmin == qmax) & (kmin == kmax) & (qmin == kmin)).all())
        qa = ka = None
        if self.q_seq_pos is not None:
            qa, ka = self.q_seq_pos[:, q0:q1], self.kv_seq_pos[:, k0:k1]
            empty, pos_full = self._distance_bounds(qa.amin() - ka.amax(), qa.amax() - ka.amin())
        elif self.has_position_condition:
            # first and last aligned query position of the tile against the tile's keys
            empty, pos_full = self._distance_bounds(q0 + offset - (k1 - 1), q1 - 1 + offset - k0)
        else:
            empty, pos_full = False, True
        if empty:
            return False
        full &= pos_full
        if full and self.mask_mod is None:
            return True
        device = self.q_segment_ids.device if self.q_segment_ids is not None else device
        qpos = torch.arange(q0, q1, device=device).add_(offset)[:, None]
        kpos = torch.arange(k0, k1, device=device)[None, :]
        m = torch.ones(1, q1 - q0, k1 - k0, dtype=torch.bool, device=qpos.device)
        if self.has_position_condition:
            d = (qa[:, :, None] - ka[:, None, :]) if qa is not None else (qpos - kpos)[None]
            if self.window_left is not None:
                m = m & (d <= self.window_left)
            if self.window_right is not None:
                m = m & (-d <= self.window_right)
        if qs is not None:
            m = m & (qs[:, :, None] == ks[:, None, :])
        if self.mask_mod is not None:
            m = m & self.mask_mod(qpos, kpos).to(torch.bool)
        if not _any(m):
            return False
        return m

    def dense(self, n_q: int, n_k: int, device=None) -> Tensor | None:
        """The whole mask as ``(B or 1, N, M)`` booleans, or None when nothing is masked."""
        m = self.tile(0, n_q, 0, n_k, n_k - n_q, device)
        if m is True:
            return None
        if m is False:
            return torch.zeros(1, n_q, n_k, dtype=torch.bool, device=device)
        return m


def _is_fake(t: Tensor) -> bool:
    from torch._subclasses.fake_tensor import is_fake

    return is_fake(t)


def _any(t: Tensor) -> bool:
    """``bool(t.any())``, except for the fake tensors of a memory plan (``zoo.plan``), which have no values: they take
    the branch that computes (and allocates) rather than the shortcut."""
    return True if _is_fake(t) else bool(t.any())


def _known(cond: bool | Tensor) -> bool:
    """A shortcut's condition; False (take the general branch) when a fake tensor of a memory plan cannot tell."""
    if isinstance(cond, Tensor):
        return False if _is_fake(cond) else bool(cond.all())
    return bool(cond)


def _rank_and_count(ids: Tensor, among: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """ids ``(B, N)`` → (rank of each element among the equal ids of its row, count of its id in its row, count of
    its id in ``among`` ``(B, M)``'s row)."""
    n = ids.shape[1]
    order = ids.argsort(dim=1, stable=True)
    srt = ids.gather(1, order)
    idx = torch.arange(n, device=ids.device).expand_as(ids)
    starts = torch.ones_like(srt, dtype=torch.bool)
    starts[:, 1:] = srt[:, 1:] != srt[:, :-1]
    group_start = torch.where(starts, idx, torch.zeros_like(idx)).cummax(dim=1).values
    rank = torch.empty_like(idx).scatter_(1, order, idx - group_start)
    count_self = torch.searchsorted(srt, ids, right=True) - torch.searchsorted(srt, ids)
    among_srt = among.sort(dim=1).values
    count_among = torch.searchsorted(among_srt, ids, right=True) - torch.searchsorted(among_srt, ids)
    return rank, count_self, count_among


def sequence_aligned_positions(q_segment_ids: Tensor, kv_segment_ids: Tensor) -> tuple[Tensor, Tensor]:
    """flash-attn's varlen alignment as positions: ``(qa (B, N), ka (B, M))`` with the queries of each sequence aligned
    to the end of that sequence's keys (see :class:`AttentionMask`)."""
    q_ids, kv_ids = q_segment_ids.long(), kv_segment_ids.long()
    q_rank, q_count, k_count = _rank_and_count(q_ids, kv_ids)
    if kv_segment_ids is q_segment_ids:  # self-attention: same ranks, equal counts
        return q_rank, q_rank
    kv_rank, _, _ = _rank_and_count(kv_ids, q_ids)
    return q_rank + k_count - q_count, kv_rank


def segment_ids_from_cu_seqlens(cu_seqlens: Tensor, total: int | None = None, name: str = "cu_seqlens") -> Tensor:
    """flash-attn's ``cu_seqlens`` (``[0, len0, len0+len1, …]``) → ``(1, total)`` sequence ids of one packed row."""
    if cu_seqlens.dim() != 1 or len(cu_seqlens) < 2:
        raise ValueError(f"{name} must be 1-D [0, len0, len0+len1, …], got shape {tuple(cu_seqlens.shape)}")
    cu = cu_seqlens.to(torch.long)
    if int(cu[0]) != 0:
        raise ValueError(f"{name} must start at 0, got {cu.tolist()}")
    total = int(cu[-1]) if total is None else total
    lengths = cu[1:] - cu[:-1]
    if (lengths < 0).any():
        raise ValueError(f"{name} must be non-decreasing, got {cu.tolist()}")
    if int(cu[-1]) != total:
        raise ValueError(f"{name} ends at {int(cu[-1])} but the packed sequence has {total} tokens")
    return torch.repeat_interleave(torch.arange(len(lengths), device=cu.device), lengths)[None]


def _window_bounds(window: int | None, window_size: tuple[int, int] | None, causal: bool) -> tuple[int | None, int | None]:
    """``window`` (a width: |d| < window, or d < window when causal) or flash-attn's ``window_size=(left, right)``
    (-1 = unbounded) → (left, right) bounds on ``d = qa − ka``, None meaning unbounded."""
    if window is not None and window_size is not None:
        raise ValueError("give either window (a width) or window_size=(left, right), not both")
    if window is not None:
        if window < 1:
            raise ValueError(f"window must be ≥ 1, got {window}")
        return window - 1, (0 if causal else window - 1)
    if window_size is None:
        return None, None
    if len(window_size) != 2:
        raise ValueError(f"window_size must be (left, right), got {window_size!r}")
    left, right = (int(w) for w in window_size)
    if left < -1 or right < -1:
        raise ValueError(f"window_size entries must be ≥ 0, or -1 for unbounded; got {tuple(window_size)}")
    return (None if left == -1 else left), (None if right == -1 else right)


def make_mask(
    *,
    causal: bool = False,
    segment_ids: Tensor | None = None,
    kv_segment_ids: Tensor | None = None,
    cu_seqlens: Tensor | None = None,
    cu_seqlens_q: Tensor | None = None,
    cu_seqlens_k: Tensor | None = None,
    window: int | None = None,
    window_size: tuple[int, int] | None = None,
    mask_mod: MaskMod | None = None,
    n_q: int | None = None,
    n_k: int | None = None,
) -> AttentionMask:
    """Build an :class:`AttentionMask` from the usual keyword arguments, checking their shapes.

    Packed sequences come as segment ids (``segment_ids`` for the queries, ``kv_segment_ids`` for the keys when they
    differ) or as flash-attn's ``cu_seqlens_q`` / ``cu_seqlens_k`` (``cu_seqlens`` when both are the same); either
    way causality and windows are aligned bottom-right within each sequence, as ``flash_attn_varlen_func`` does.
    """
    given = [name for name, t in (("segment_ids", segment_ids), ("cu_seqlens", cu_seqlens),
                                  ("cu_seqlens_q", cu_seqlens_q)) if t is not None]
    if len(given) > 1:
        raise ValueError(f"give one of segment_ids, cu_seqlens and cu_seqlens_q/cu_seqlens_k, not {' and '.join(given)}")
    if cu_seqlens is not None:
        cu_seqlens_q = cu_seqlens_k = cu_seqlens
    elif (cu_seqlens_q is None) != (cu_seqlens_k is None):
        raise ValueError("give cu_seqlens_q and cu_seqlens_k together")
    if cu_seqlens_q is not None:
        if kv_segment_ids is not None:
            raise ValueError("give kv_segment_ids with segment_ids, not with cu_seqlens")
        if cu_seqlens_q.shape != cu_seqlens_k.shape:
            raise ValueError(f"cu_seqlens_q has {len(cu_seqlens_q) - 1} sequences but cu_seqlens_k has "
                             f"{len(cu_seqlens_k) - 1}")
        segment_ids = segment_ids_from_cu_seqlens(cu_seqlens_q, n_q, "cu_seqlens_q")
        kv_segment_ids = segment_ids_from_cu_seqlens(cu_seqlens_k, n_k, "cu_seqlens_k")
    if segment_ids is not None:
        if segment_ids.dim() != 2:
            raise ValueError(f"segment_ids must be (batch, seq_len), got shape {tuple(segment_ids.shape)}")
        if kv_segment_ids is None:
            if n_q is not None and n_k is not None and n_q != n_k:
                raise ValueError(
                    f"segment_ids cover {n_q} queries but there are {n_k} keys: pass kv_segment_ids as well"
                )
            kv_segment_ids = segment_ids
        if kv_segment_ids.dim() != 2 or kv_segment_ids.shape[0] != segment_ids.shape[0]:
            raise ValueError(f"kv_segment_ids must be (batch, n_keys) with segment_ids' batch "
                             f"{segment_ids.shape[0]}, got shape {tuple(kv_segment_ids.shape)}")
        if n_q is not None and segment_ids.shape[1] != n_q:
            raise ValueError(f"segment_ids has length {segment_ids.shape[1]} but there are {n_q} queries")
        if n_k is not None and kv_segment_ids.shape[1] != n_k:
            raise ValueError(f"kv_segment_ids has length {kv_segment_ids.shape[1]} but there are {n_k} keys")
    elif kv_segment_ids is not None:
        raise ValueError("kv_segment_ids given without segment_ids")
    left, right = _window_bounds(window, window_size, causal)
    return AttentionMask(causal, left, right, segment_ids, kv_segment_ids, mask_mod)


# --------------------------------------------------------------------------------------------------------------------
# Reference
# --------------------------------------------------------------------------------------------------------------------


def _check_shapes(q: Tensor, k: Tensor, v: Tensor) -> int:
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(
            f"attention expects q, k, v as (batch, heads, seq_len, head_dim); got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape, got {tuple(k.shape)} and {tuple(v.shape)}")
    if q.shape[0] != k.shape[0] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q {tuple(q.shape)} and k {tuple(k.shape)} differ in batch or head_dim")
    if q.shape[1] % k.shape[1]:
        raise ValueError(f"query heads ({q.shape[1]}) must be a multiple of key/value heads ({k.shape[1]})")
    return q.shape[1] // k.shape[1]


def attention_ref(
    q: Tensor, k: Tensor, v: Tensor, mask: AttentionMask | None = None, scale: float | None = None,
    sink: Tensor | None = None, upcast: bool = True,
) -> tuple[Tensor, Tensor]:
    """softmax(q kᵀ · scale + mask) v with the mask built densely.

    q ``(B, Hq, N, D)``, k/v ``(B, Hkv, M, D)`` → out ``(B, Hq, N, D)`` in q's dtype, lse ``(B, Hq, N)`` fp32.
    sink ``(Hq,)``: one extra score column per head whose value vector is zero.
    upcast: compute in fp32 (the reference). ``upcast=False`` computes scores, probabilities and the product in the
    inputs' dtype, as a plain PyTorch implementation in bf16/fp16 would: its error against the fp32 reference is the
    yardstick for the half-precision paths (flash-attn's test rule).
    """
    groups = _check_shapes(q, k, v)
    n, m = q.shape[2], k.shape[2]
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    dtype = torch.float32 if upcast else q.dtype
    kf = k.to(dtype).repeat_interleave(groups, dim=1)
    vf = v.to(dtype).repeat_interleave(groups, dim=1)
    s = (q.to(dtype) @ kf.transpose(-1, -2)) * scale
    dense = (mask or AttentionMask()).dense(n, m, q.device)
    if dense is not None:
        s = s.masked_fill(~dense[:, None].to(s.device), float("-inf"))
    if sink is not None:
        s = torch.cat((s, sink.to(dtype)[None, :, None, None].expand(*s.shape[:-1], 1)), dim=-1)
        vf = torch.cat((vf, vf.new_zeros(*vf.shape[:2], 1, vf.shape[-1])), dim=2)
    lse = torch.logsumexp(s.float(), dim=-1)
    p = torch.exp(s.float() - lse[..., None].masked_fill(torch.isinf(lse[..., None]), 0.0)).to(dtype)
    out = p @ vf
    return out.to(q.dtype), lse


# --------------------------------------------------------------------------------------------------------------------
# Chunked online softmax
# --------------------------------------------------------------------------------------------------------------------


def _group_rows(x: Tensor, groups: int, start: int, end: int) -> Tensor:
    """(B, Hq, N, D)[:, :, start:end] → (B, Hkv, G·n, D) so that one matmul serves all query heads of a KV head."""
    b, h, _, d = x.shape
    return x[:, :, start:end].reshape(b, h // groups, groups * (end - start), d)


def _ungroup_rows(x: Tensor, groups: int) -> Tensor:
    b, hkv, gn, d = x.shape
    return x.reshape(b, hkv * groups, gn // groups, d)


def _masked(s: Tensor, tile: Tensor | bool, groups: int) -> Tensor:
    if tile is True:
        return s
    b, hkv, gn, bk = s.shape
    view = s.view(b, hkv, groups, gn // groups, bk)
    view.masked_fill_(~tile[:, None, None], float("-inf"))
    return s


def chunked_forward(q: Tensor, k: Tensor, v: Tensor, mask: AttentionMask, scale: float, block_q: int,
                    block_k: int) -> tuple[Tensor, Tensor]:
    """The chunked kernel's forward without autograd: out (B, Hq, N, D) in q's dtype, lse (B, Hq, N) fp32.

    Exposed (with :func:`chunked_backward`) for callers that keep their own saved state, such as Ulysses attention,
    which re-gathers its inputs per head group in backward instead of storing them.
    """
    groups = q.shape[1] // k.shape[1]
    b, hq, n, d = q.shape
    m = k.shape[2]
    offset = m - n
    acc_dtype = torch.float32
    kf, vf = k.to(acc_dtype), v.to(acc_dtype)
    out = torch.zeros(b, hq, n, d, dtype=acc_dtype, device=q.device)
    lse = torch.full((b, hq, n), float("-inf"), dtype=acc_dtype, device=q.device)
    for q0 in range(0, n, block_q):
        q1 = min(q0 + block_q, n)
        qb = _group_rows(q, groups, q0, q1).to(acc_dtype) * scale
        row_max = row_sum = acc = None
        for k0 in range(0, m, block_k):
            k1 = min(k0 + block_k, m)
            tile = mask.tile(q0, q1, k0, k1, offset, q.device)
            if tile is False:
                continue
            s = _masked(qb @ kf[:, :, k0:k1].transpose(-1, -2), tile, groups)
            blk_max = s.amax(-1)
            if row_max is None:
                new_max = blk_max
            else:
                new_max = torch.maximum(row_max, blk_max)
            safe_max = new_max.masked_fill(torch.isinf(new_max), 0.0)
            p = torch.exp(s - safe_max[..., None])
            pv = p @ vf[:, :, k0:k1]
            if row_max is None:
                row_sum, acc = p.sum(-1), pv
            else:
                alpha = torch.exp(row_max - safe_max)  # -inf - finite → 0; both -inf → exp(-inf - 0) = 0
                row_sum = row_sum * alpha + p.sum(-1)
                acc = acc * alpha[..., None] + pv
            row_max = new_max
        if row_max is None:
            continue  # every key of this query block is masked: out 0, lse -inf
        visible = row_sum > 0
        out_blk = acc / torch.where(visible, row_sum, 1.0)[..., None]
        lse_blk = torch.where(visible, row_max + torch.log(torch.where(visible, row_sum, 1.0)), float("-inf"))
        out[:, :, q0:q1] = _ungroup_rows(out_blk, groups)
        lse[:, :, q0:q1] = lse_blk.reshape(b, hq, q1 - q0)
    return out.to(q.dtype), lse


def chunked_backward(q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, grad_out: Tensor | None,
                     grad_lse: Tensor | None, mask: AttentionMask, scale: float, block_q: int, block_k: int,
                     accumulate: tuple[Tensor, Tensor, Tensor] | None = None,
                     delta: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of :func:`chunked_forward` for q, k, v, recomputing each tile from ``out`` and ``lse``.

    ``out`` and ``lse`` may be those of attention over a *larger* key set that includes k/v (ring attention passes
    the merged result): the tiles then give exactly this key block's share of the gradients. ``accumulate``: fp32
    (dq, dk, dv) buffers to add into instead of allocating new ones (returned as they are)."""
    groups = q.shape[1] // k.shape[1]
    b, hq, n, d = q.shape
    m = k.shape[2]
    offset = m - n
    f32 = torch.float32
    if grad_out is None:
        grad_out = torch.zeros_like(q)
    # d lse_i / d s_ij = p_ij, so the lse gradient enters exactly like -Delta: dS = P ∘ (dP − (Delta − g_lse)).
    delta = (grad_out.to(f32) * out.to(f32)).sum(-1) if delta is None else delta.to(f32)
    if grad_lse is not None:
        delta = delta - torch.nan_to_num(grad_lse.to(f32), nan=0.0)
    kf, vf = k.to(f32), v.to(f32)
    if accumulate is None:
        dq = torch.zeros(b, hq, n, d, dtype=f32, device=q.device)
        dk = torch.zeros(kf.shape, dtype=f32, device=q.device)
        dv = torch.zeros(vf.shape, dtype=f32, device=q.device)
    else:
        dq, dk, dv = accumulate
    safe_lse = lse.masked_fill(torch.isinf(lse), float("inf"))  # rows with no key: exp(s - inf) = 0
    for q0 in range(0, n, block_q):
        q1 = min(q0 + block_q, n)
        qb = _group_rows(q, groups, q0, q1).to(f32) * scale
        dob = _group_rows(grad_out, groups, q0, q1).to(f32)
        lse_b = safe_lse[:, :, q0:q1].reshape(b, hq // groups, -1, 1)
        delta_b = delta[:, :, q0:q1].reshape(b, hq // groups, -1, 1)
        dqb = None
        for k0 in range(0, m, block_k):
            k1 = min(k0 + block_k, m)
            tile = mask.tile(q0, q1, k0, k1, offset, q.device)
            if tile is False:
                continue
            kb, vb = kf[:, :, k0:k1], vf[:, :, k0:k1]
            s = _masked(qb @ kb.transpose(-1, -2), tile, groups)
            p = torch.exp(s - lse_b)
            dv[:, :, k0:k1] += p.transpose(-1, -2) @ dob
            ds = p * ((dob @ vb.transpose(-1, -2)) - delta_b)
            dk[:, :, k0:k1] += ds.transpose(-1, -2) @ qb
            dqb = ds @ kb if dqb is None else dqb.add_(ds @ kb)
        if dqb is not None:
            dq[:, :, q0:q1] += _ungroup_rows(dqb, groups) * scale
    if accumulate is not None:
        return dq, dk, dv
    return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype)


class _ChunkedAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, mask: AttentionMask, scale: float, block_q: int, block_k: int):
        out, lse = chunked_forward(q, k, v, mask, scale, block_q, block_k)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.mask, ctx.scale, ctx.block_q, ctx.block_k = mask, scale, block_q, block_k
        return out, lse

    @staticmethod
    def backward(ctx, grad_out, grad_lse):
        q, k, v, out, lse = ctx.saved_tensors
        grads = chunked_backward(q, k, v, out, lse, grad_out, grad_lse, ctx.mask, ctx.scale, ctx.block_q, ctx.block_k)
        return (*grads, None, None, None, None)


def attention_chunked(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: AttentionMask | None = None,
    scale: float | None = None,
    block_q: int = 512,
    block_k: int = 512,
) -> tuple[Tensor, Tensor]:
    """Online-softmax attention over (block_q × block_k) tiles; memory O(N·D + block_q·block_k) per head.

    Same shapes and results as :func:`attention_ref`; both outputs are differentiable (the custom backward recomputes
    each tile instead of storing the probabilities).
    """
    _check_shapes(q, k, v)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    return _ChunkedAttention.apply(q, k, v, mask or AttentionMask(), scale, block_q, block_k)


# --------------------------------------------------------------------------------------------------------------------
# Fused kernels
# --------------------------------------------------------------------------------------------------------------------


def attention_sdpa(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: AttentionMask | None = None,
    scale: float | None = None,
    return_lse: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """PyTorch SDPA. A plain causal/no mask goes to the fused kernel; any other mask is passed densely.

    With ``return_lse`` the log-sum-exp comes from the CPU flash kernel and carries no gradient: asking for it while
    inputs require grad raises (use the chunked path, whose lse is differentiable).
    """
    groups = _check_shapes(q, k, v)
    mask = mask or AttentionMask()
    n, m = q.shape[2], k.shape[2]
    causal = mask.causal
    attn_mask = None
    if not mask.is_plain or (causal and n != m and n != 1):
        # SDPA's is_causal aligns to the top-left corner; a KV cache needs bottom-right, so pass it densely.
        attn_mask = mask.dense(n, m, q.device)
        attn_mask = None if attn_mask is None else attn_mask[:, None]
        causal = False
    elif causal and n == 1:
        causal = False  # one query at the end sees every key
    if return_lse:
        if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
            raise ValueError(
                "attention backend 'sdpa' returns a log-sum-exp without gradient; use backend='chunked' (or 'auto') "
                "when the log-sum-exp must be differentiated"
            )
        if attn_mask is None and q.device.type == "cpu":
            kk = k.repeat_interleave(groups, 1) if groups > 1 else k
            vv = v.repeat_interleave(groups, 1) if groups > 1 else v
            out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, kk, vv, 0.0, causal, scale=scale)
            return out, lse.float()
        # The fused kernels do not expose the lse with a dense mask (or off CPU): this path is dense anyway.
        return attention_ref(q, k, v, mask, scale)
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=attn_mask, is_causal=causal, scale=scale, enable_gqa=groups > 1
    )
    if attn_mask is not None:
        # SDPA gives NaN (math path) or garbage for rows with no visible key; the convention here is 0.
        empty = ~attn_mask.any(-1, keepdim=True)
        if _any(empty):
            out = out.masked_fill(empty, 0.0)
    return out, None


def _flash_available(q: Tensor) -> bool:
    return q.is_cuda and flash_attn() is not None and q.dtype in (torch.float16, torch.bfloat16)


def _rows_sorted(ids: Tensor) -> bool:
    return ids.shape[1] < 2 or bool((ids.diff(dim=1) >= 0).all())


def varlen_cu_seqlens(q_segment_ids: Tensor, kv_segment_ids: Tensor) -> tuple[Tensor, Tensor, int, int]:
    """Sorted segment ids ``(B, N)`` / ``(B, M)`` → flash-attn's (cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
    max_seqlen_k) for the batch flattened into one packed row: one sequence per (row, id) present in either, in order,
    so that a sequence with keys but no queries (or the reverse) keeps its place with length 0."""
    if not (_rows_sorted(q_segment_ids) and _rows_sorted(kv_segment_ids)):
        raise ValueError("packed sequences for flash-attn need segment ids that do not decrease along each row")
    lo = int(torch.minimum(q_segment_ids.min(), kv_segment_ids.min()))
    span = int(torch.maximum(q_segment_ids.max(), kv_segment_ids.max())) - lo + 1
    rows_q = torch.arange(q_segment_ids.shape[0], device=q_segment_ids.device)[:, None]
    qkey = (q_segment_ids.long() - lo + rows_q * span).flatten()
    kkey = (kv_segment_ids.long() - lo + rows_q * span).flatten()
    keys = torch.cat((qkey, kkey)).unique(sorted=True)
    counts_q = torch.bincount(torch.searchsorted(keys, qkey), minlength=len(keys))
    counts_k = torch.bincount(torch.searchsorted(keys, kkey), minlength=len(keys))
    cu_q = F.pad(counts_q.cumsum(0), (1, 0)).to(torch.int32)
    cu_k = F.pad(counts_k.cumsum(0), (1, 0)).to(torch.int32)
    return cu_q, cu_k, int(counts_q.max()), int(counts_k.max())


def attention_flash(
    q: Tensor, k: Tensor, v: Tensor, mask: AttentionMask | None = None, scale: float | None = None,
    return_lse: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """flash-attn (CUDA, fp16/bf16): causal and windows bottom-right aligned, q > k and GQA natively.

    Packed sequences (segment ids sorted along each row) go to ``flash_attn_varlen_func`` with the batch flattened
    into one row, so the per-sequence alignment is flash-attn's own.
    """
    fa = flash_attn()
    if fa is None or not q.is_cuda:
        raise RuntimeError("attention backend 'flash' needs the flash-attn package and CUDA tensors ([cuda] extra)")
    if q.dtype not in (torch.float16, torch.bfloat16):
        raise RuntimeError(f"attention backend 'flash' needs fp16/bf16 inputs, got {q.dtype}")
    mask = mask or AttentionMask()
    if mask.mask_mod is not None:
        raise ValueError("attention backend 'flash' cannot take a mask_mod; use 'chunked'")
    _check_shapes(q, k, v)
    window = (-1 if mask.window_left is None else mask.window_left,
              -1 if mask.window_right is None or mask.causal else mask.window_right)
    qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))  # flash-attn wants (B, N, H, D)
    b, n, hq, d = qt.shape
    if mask.q_segment_ids is not None:
        cu_q, cu_k, max_q, max_k = varlen_cu_seqlens(mask.q_segment_ids, mask.kv_segment_ids)
        res = fa.flash_attn_varlen_func(
            qt.reshape(b * n, hq, d), kt.reshape(-1, *kt.shape[2:]), vt.reshape(-1, *vt.shape[2:]), cu_q, cu_k,
            max_q, max_k, softmax_scale=scale, causal=mask.causal, window_size=window, return_attn_probs=return_lse,
        )
        out, lse = (res[0], res[1]) if return_lse else (res, None)
        out = out.view(b, n, hq, d).transpose(1, 2)
        # varlen's lse is (H, total_q)
        return out, (lse.float().view(hq, b, n).transpose(0, 1) if lse is not None else None)
    res = fa.flash_attn_func(
        qt, kt, vt, softmax_scale=scale, causal=mask.causal, window_size=window, return_attn_probs=return_lse
    )
    out, lse = (res[0], res[1]) if return_lse else (res, None)
    return out.transpose(1, 2), (lse.float() if lse is not None else None)


# --------------------------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------------------------


def resolve_backend(backend: str, q: Tensor, k: Tensor, mask: AttentionMask, need_lse_grad: bool) -> str:
    """The path ``attention`` takes for these inputs; ``auto`` explained in the module docstring."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    n, m = q.shape[2], k.shape[2]
    if _flash_available(q) and mask.mask_mod is None and not need_lse_grad:
        segs_ok = mask.q_segment_ids is None or (
            _rows_sorted(mask.q_segment_ids) and _rows_sorted(mask.kv_segment_ids)
        )
        if segs_ok:
            return "flash"
    if q.is_cuda and flash_attn() is None:
        log_fallback_once("attention auto", "flash-attn is not installed; using SDPA/chunked")
    if need_lse_grad:
        return "chunked"
    plain = mask.is_plain and not (mask.causal and n != m and n != 1)  # SDPA's is_causal is top-left aligned
    if plain:
        return "sdpa"
    return "sdpa" if n * m <= DENSE_MASK_MAX_ELEMENTS else "chunked"


def attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    causal: bool = False,
    segment_ids: Tensor | None = None,
    kv_segment_ids: Tensor | None = None,
    cu_seqlens: Tensor | None = None,
    cu_seqlens_q: Tensor | None = None,
    cu_seqlens_k: Tensor | None = None,
    window: int | None = None,
    window_size: tuple[int, int] | None = None,
    mask_mod: MaskMod | None = None,
    mask: AttentionMask | None = None,
    scale: float | None = None,
    sink: Tensor | None = None,
    return_lse: bool = False,
    backend: Backend = "auto",
) -> Tensor | tuple[Tensor, Tensor]:
    """Attention of q ``(B, Hq, N, D)`` over k, v ``(B, Hkv, M, D)``; returns out, or (out, lse) with ``return_lse``.

    Give the mask either as keywords (causal, segment_ids / kv_segment_ids or cu_seqlens_q / cu_seqlens_k, window or
    window_size, mask_mod; see :func:`make_mask`) or as a prebuilt ``mask``. N may exceed M: causal rows that see no
    key give 0 (lse −inf), as in flash-attn.
    ``sink`` ``(Hq,)``: a learned logit per head that joins every softmax as a key with zero value (gpt-oss style
    attention sink), so a head can attend to "nothing" without parking its mass on a token at some distance.
    """
    keywords = (segment_ids, kv_segment_ids, cu_seqlens, cu_seqlens_q, cu_seqlens_k, window, window_size, mask_mod)
    if mask is None:
        mask = make_mask(
            causal=causal, segment_ids=segment_ids, kv_segment_ids=kv_segment_ids, cu_seqlens=cu_seqlens,
            cu_seqlens_q=cu_seqlens_q, cu_seqlens_k=cu_seqlens_k, window=window, window_size=window_size,
            mask_mod=mask_mod, n_q=q.shape[2], n_k=k.shape[2],
        )
    elif causal or any(x is not None for x in keywords):
        raise ValueError("pass either mask= or the mask keywords (causal, segment_ids, …), not both")
    user_lse = return_lse
    return_lse = return_lse or sink is not None
    grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (q, k, v, sink))
    need_lse_grad = return_lse and grad
    path = resolve_backend(backend, q, k, mask, need_lse_grad)
    if path == "ref":
        out, lse = attention_ref(q, k, v, mask, scale)
    elif path == "chunked":
        out, lse = attention_chunked(q, k, v, mask, scale)
    elif path == "sdpa":
        out, lse = attention_sdpa(q, k, v, mask, scale, return_lse)
    else:
        out, lse = attention_flash(q, k, v, mask, scale, return_lse)
    if sink is not None:
        out, lse = apply_sink(out, lse, sink)
    return (out, lse) if user_lse else out


def attention_varlen(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    cu_seqlens_q: Tensor,
    cu_seqlens_k: Tensor,
    max_seqlen_q: int | None = None,
    max_seqlen_k: int | None = None,
    *,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    return_lse: bool = False,
    backend: Backend = "auto",
) -> Tensor | tuple[Tensor, Tensor]:
    """``flash_attn_varlen_func``'s calling convention on every backend: q ``(total_q, Hq, D)``, k and v
    ``(total_k, Hkv, D)``, sequence i being rows ``cu_seqlens_q[i]:cu_seqlens_q[i+1]`` of q and
    ``cu_seqlens_k[i]:cu_seqlens_k[i+1]`` of k/v. Causality and the window are aligned bottom-right within each
    sequence. Returns out ``(total_q, Hq, D)`` and, with ``return_lse``, lse ``(Hq, total_q)`` fp32 (flash-attn's
    varlen layout). ``max_seqlen_*`` are accepted for call compatibility and checked, not needed."""
    if q.dim() != 3 or k.dim() != 3 or v.dim() != 3:
        raise ValueError(f"attention_varlen expects q, k, v as (total_tokens, heads, head_dim); got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    for name, cu, limit in (("q", cu_seqlens_q, max_seqlen_q), ("k", cu_seqlens_k, max_seqlen_k)):
        if limit is not None and len(cu) > 1 and int((cu[1:] - cu[:-1]).max()) > limit:
            raise ValueError(f"max_seqlen_{name}={limit} but cu_seqlens_{name} has a sequence of length "
                             f"{int((cu[1:] - cu[:-1]).max())}")
    res = attention(
        q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None], causal=causal,
        cu_seqlens_q=cu_seqlens_q, cu_seqlens_k=cu_seqlens_k, window_size=tuple(window_size), scale=softmax_scale,
        return_lse=return_lse, backend=backend,
    )
    out, lse = res if return_lse else (res, None)
    out = out[0].transpose(0, 1)
    return (out, lse[0]) if return_lse else out


def apply_sink(out: Tensor, lse: Tensor, sink: Tensor) -> tuple[Tensor, Tensor]:
    """Add a zero-value key with logit ``sink`` ``(Hq,)`` to a finished softmax: rescale out by
    exp(lse − logaddexp(lse, sink)). Exact, because the sink contributes to the denominator only."""
    new_lse = torch.logaddexp(lse, sink.float()[None, :, None].expand_as(lse))
    return (out.float() * torch.exp(lse - new_lse)[..., None]).to(out.dtype), new_lse


def merge_attention_partials(outs: list[Tensor], lses: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Combine attention over disjoint key sets: lse = logsumexp(lse_i), out = Σ exp(lse_i − lse) · out_i."""
    lse = torch.logsumexp(torch.stack(lses), dim=0)
    safe = lse.masked_fill(torch.isinf(lse), 0.0)
    out = sum(torch.exp(l - safe)[..., None] * o.float() for o, l in zip(outs, lses))
    return out.to(outs[0].dtype), lse


__all__ = [
    "AttentionMask", "BACKENDS", "attention", "attention_chunked", "attention_flash", "attention_ref", "attention_sdpa",
    "attention_varlen", "make_mask", "merge_attention_partials", "resolve_backend", "segment_ids_from_cu_seqlens",
    "sequence_aligned_positions", "varlen_cu_seqlens",
]
