"""Timer-XL's TimeAttention: attention over (variable, patch) tokens with a Kronecker mask and a learned per-head bias
for same- versus other-variable pairs.

The model lays tokens out variable-major (token ``c · n_patches + t`` is patch t of variable c) and passes the layout
in ``ctx.variables``, a :class:`VariableLayout`. The mask is ``dependency[c_q, c_k] ∧ t_k ≤ t_q``: a token
sees every earlier or simultaneous patch of the variables it depends on and no future patch of any variable. RoPE
(``ctx.rope``) carries the patch index t, so position is temporal only; which variable a key belongs to reaches the
scores through the bias alone, which keeps the model equivariant to the order of variables.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from zoo.kernels.attention import attention, make_mask
from zoo.kernels.group_bias_attention import group_bias_attention

from ..block import SeqContext, VariableLayout  # noqa: F401  (VariableLayout: also imported from here)
from ..registry import register_mixer
from .attention import Attention


@register_mixer("time_attention")
class TimeAttention(Attention):
    masked_attention = False  # its Kronecker mask ignores segment ids, and it has no sequence-parallel path

    def __init__(self, d_model: int, n_head: int, variable_bias: bool = True, **kwargs):
        if kwargs.get("causal"):
            raise ValueError("time_attention builds its own Kronecker mask; do not pass causal=True")
        super().__init__(d_model, n_head, causal=False, **kwargs)
        # column 0: key of another variable, column 1: key of the same variable (OpenLTM's BinaryAttentionBias)
        self.variable_bias = nn.Parameter(torch.zeros(n_head, 2)) if variable_bias else None

    def forward(self, x: Tensor, ctx: SeqContext, state: dict | None = None) -> Tensor:
        layout = ctx.variables
        if layout is None:
            raise ValueError("time_attention needs ctx.variables (a VariableLayout) from its model")
        if x.shape[1] != layout.n_vars * layout.n_patches:
            raise ValueError(
                f"time_attention got {x.shape[1]} tokens for {layout.n_vars} variables × {layout.n_patches} patches"
            )
        if state is not None:
            raise ValueError("time_attention has no KV cache: rolling forecasts re-encode the window")
        q, k, v = self.project(x, ctx, state)
        mask = make_mask(mask_mod=layout.mask_mod())
        if self.variable_bias is None or layout.n_vars == 1:  # one variable: the bias is a constant, softmax drops it
            return self.merge_heads(attention(q, k, v, mask=mask, backend=self.backend))
        groups = layout.variable_ids(x.device)
        return self.merge_heads(group_bias_attention(q, k, v, groups, self.variable_bias, mask, backend=self.backend))
