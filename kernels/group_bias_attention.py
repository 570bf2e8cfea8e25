"""Attention with a learned per-head bias that depends only on whether query and key are in the same group.

Timer-XL adds such a bias (same variable vs other variable) to every attention score. A bias with two values is
exact as two attention passes over disjoint key sets — keys of the query's own group and keys of other groups — whose
log-sum-exps are shifted by the two biases before merging:

    softmax(s + b[same])·v  =  merge((out_same, lse_same + b_same), (out_other, lse_other + b_other))

so every attention path (SDPA, the chunked kernel with its linear-memory masks, flash where it applies) serves it and
no dense (N × M) bias tensor is built. The gradient of the biases flows through the merge. ``group_bias_attention_ref``
adds the bias to dense scores; tests compare the two.

Shapes: q ``(B, Hq, N, D)``, k and v ``(B, Hkv, M, D)``; ``groups`` ``(M,)`` integer group id of every absolute
position (queries sit at positions ``M - N … M - 1``, as in :mod:`zoo.kernels.attention`); ``bias`` ``(Hq, 2)`` with
column 0 for pairs in different groups and column 1 for pairs in the same group. Output ``(B, Hq, N, D)``.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from .attention import AttentionMask, MaskMod, attention, merge_attention_partials


def _check(q: Tensor, k: Tensor, groups: Tensor, bias: Tensor) -> None:
    if groups.dim() != 1 or groups.shape[0] != k.shape[2]:
        raise ValueError(f"groups must be (M,) = ({k.shape[2]},) group ids of the key positions, got {tuple(groups.shape)}")
    if bias.shape != (q.shape[1], 2):
        raise ValueError(f"bias must be (n_head, 2) = ({q.shape[1]}, 2), got {tuple(bias.shape)}")


def _and(a: MaskMod | None, b: MaskMod) -> MaskMod:
    return b if a is None else (lambda qp, kp: a(qp, kp) & b(qp, kp))


def group_bias_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    groups: Tensor,
    bias: Tensor,
    mask: AttentionMask | None = None,
    scale: float | None = None,
    backend: str = "auto",
) -> Tensor:
    """softmax(q·kᵀ·scale + bias[:, same_group] + mask)·v as two masked passes merged in log space (exact)."""
    _check(q, k, groups, bias)
    mask = mask or AttentionMask()
    same = replace(mask, mask_mod=_and(mask.mask_mod, lambda qp, kp: groups[qp] == groups[kp]))
    other = replace(mask, mask_mod=_and(mask.mask_mod, lambda qp, kp: groups[qp] != groups[kp]))
    out_same, lse_same = attention(q, k, v, mask=same, scale=scale, return_lse=True, backend=backend)
    out_other, lse_other = attention(q, k, v, mask=other, scale=scale, return_lse=True, backend=backend)
    b = bias.float()
    out, _ = merge_attention_partials(
        [out_same, out_other], [lse_same + b[None, :, 1, None], lse_other + b[None, :, 0, None]]
    )
    return out


def group_bias_attention_ref(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    groups: Tensor,
    bias: Tensor,
    mask: AttentionMask | None = None,
    scale: float | None = None,
) -> Tensor:
    """The same, with the bias added to dense fp32 scores. O(N·M) memory; the oracle for the merged version."""
    _check(q, k, groups, bias)
    n, m = q.shape[2], k.shape[2]
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    rep = q.shape[1] // k.shape[1]
    kf = k.float().repeat_interleave(rep, dim=1)
    vf = v.float().repeat_interleave(rep, dim=1)
    s = (q.float() @ kf.transpose(-1, -2)) * scale
    same = (groups[m - n:, None] == groups[None, :]).to(s.device)  # (N, M)
    s = s + torch.where(same[None, None], bias.float()[None, :, 1, None, None], bias.float()[None, :, 0, None, None])
    dense = (mask or AttentionMask()).dense(n, m, q.device)
    if dense is not None:
        s = s.masked_fill(~dense[:, None], float("-inf"))
    p = torch.softmax(s, dim=-1).nan_to_num(0.0)  # rows with no visible key give 0, as on the other paths
    return (p @ vf).to(q.dtype)


__all__ = ["group_bias_attention", "group_bias_attention_ref"]
