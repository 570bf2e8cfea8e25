"""The shared long-sequence block: pre-norm → mixer → residual → pre-norm → MLP → residual.

``norm_position="post"`` gives the original-Transformer order instead (mixer → residual → norm → MLP → residual →
norm), which Timer / Timer-XL checkpoints use. ``dropout`` drops the mixer and MLP outputs before each residual add.
``residual_in_fp32`` (pre-norm only; Mamba checkpoints' residual_in_fp32) keeps the residual stream in float32 in a
half-precision model: each sub-layer sees its norm of it cast to the norm's dtype, and adds its output to it in fp32.

Mixers (attention, and later Mamba, HSA, Hyena) live in the mixer registry; a model's mixer pattern is data:
``layout: "attention"`` or ``["mamba"] * 7 + ["hsa"]`` or the string ``"mamba*7,hsa"``, repeated to fill n_layer.
Every mixer is called as ``mixer(x, ctx, state)`` where ``ctx`` is the per-forward :class:`SeqContext` and ``state``
is this layer's slot in the generation cache (a dict the mixer owns) or None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from .layers import make_mlp, make_norm
from .registry import MIXERS

if TYPE_CHECKING:
    from zoo.sequence_parallel.context import SequenceParallel


@dataclass(frozen=True)
class VariableLayout:
    """``n_vars`` variables × ``n_patches`` patches, variable-major. ``dependency`` ``(n_vars, n_vars)`` bool:
    row c lists the variables that variable c may attend to (None = all of them, the multivariate case)."""

    n_vars: int
    n_patches: int
    dependency: Tensor | None = None

    def variable_ids(self, device=None) -> Tensor:
        return torch.arange(self.n_vars * self.n_patches, device=device) // self.n_patches

    def patch_ids(self, device=None) -> Tensor:
        return torch.arange(self.n_vars * self.n_patches, device=device) % self.n_patches

    def mask_mod(self):
        """(q_pos, k_pos) → may attend: the variable dependency ⊗ causal-over-patches Kronecker mask."""
        n, dep = self.n_patches, self.dependency

        def kronecker(qp: Tensor, kp: Tensor) -> Tensor:
            ok = kp % n <= qp % n
            if dep is not None:
                ok = ok & dep.to(qp.device)[qp // n, kp // n]
            return ok

        return kronecker


@dataclass
class SeqContext:
    """What every mixer may need about the sequence, computed once per forward."""

    rope: tuple[Tensor, Tensor] | None = None  # cos, sin (B, N, head_dim)
    segment_ids: Tensor | None = None  # (B, N) packed-document ids of the queries
    kv_segment_ids: Tensor | None = None  # (B, M) ids of all keys incl. cached ones
    # set by CausalLM.forward(sequence_parallel=...): attention mixers run ring / Ulysses over the whole sequence
    sequence_parallel: SequenceParallel | None = None
    variables: VariableLayout | None = None  # multivariate patch layout for time_attention (Timer-XL)


def expand_layout(layout: str | list[str], n_layer: int) -> list[str]:
    """``"mamba*7,hsa"`` or ``["mamba", "mamba", "hsa"]`` → one mixer name per layer, the pattern repeated."""
    if isinstance(layout, str):
        names: list[str] = []
        for part in layout.replace(" ", "").split(","):
            if not part:
                continue
            name, _, count = part.partition("*")
            if count and not count.isdigit():
                raise ValueError(f"layout entry {part!r} should look like 'name' or 'name*count'")
            names += [name] * (int(count) if count else 1)
    else:
        names = list(layout)
    if not names:
        raise ValueError("layout is empty")
    if n_layer % len(names):
        raise ValueError(f"layout pattern of {len(names)} layers {names} does not divide n_layer={n_layer}")
    for name in set(names):
        MIXERS.get(name)  # raises with the registered names
    return names * (n_layer // len(names))


def checkpointed(block: nn.Module, fn, *args):
    """``fn(*args)``, under activation checkpointing when ``block.checkpointing`` is on and it is training.

    Non-reentrant: the arguments carry tensors inside objects (SeqContext: RoPE, segment ids, the SP context), and
    dropout's RNG state is replayed so that the recomputation equals the first pass. Every block type with a
    ``checkpointing`` switch (zoo.parallel.set_activation_checkpointing) runs its body through this.
    """
    if block.checkpointing and block.training and torch.is_grad_enabled():
        return torch.utils.checkpoint.checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


class Block(nn.Module):
    def __init__(
        self,
        d_model: int,
        mixer: str,
        mixer_kwargs: dict | None = None,
        mlp: str = "swiglu",
        d_ff: int | None = None,
        norm: str = "rmsnorm",
        norm_eps: float = 1e-6,
        mlp_bias: bool = False,
        norm_position: str = "pre",
        dropout: float = 0.0,
        residual_in_fp32: bool = False,
    ):
        super().__init__()
        if norm_position not in ("pre", "post"):
            raise ValueError(f"norm_position must be 'pre' or 'post', got {norm_position!r}")
        if residual_in_fp32 and norm_position == "post":
            raise ValueError("residual_in_fp32 needs norm_position='pre' (a post-norm block has no residual stream)")
        self.residual_in_fp32 = residual_in_fp32
        self.post_norm = norm_position == "post"
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.norm1 = make_norm(norm, d_model, norm_eps)
        self.mixer = MIXERS.get(mixer)(d_model=d_model, **(mixer_kwargs or {}))
        self.mlp = make_mlp(mlp, d_model, d_ff or 4 * d_model, mlp_bias)
        self.norm2 = make_norm(norm, d_model, norm_eps) if self.mlp is not None else None
        # activation checkpointing (zoo.parallel.set_activation_checkpointing): in training, keep only this block's
        # input and recompute its activations in the backward pass
        self.checkpointing = False

    def forward(self, x: Tensor, ctx: SeqContext, state: dict | None = None) -> Tensor:
        if state is not None:  # generation: nothing to recompute
            return self._forward(x, ctx, state)
        return checkpointed(self, self._forward, x, ctx, None)

    def _forward(self, x: Tensor, ctx: SeqContext, state: dict | None) -> Tensor:
        if self.post_norm:
            x = self.norm1(x + self.dropout(self.mixer(x, ctx, state)))
            if self.mlp is not None:
                x = self.norm2(x + self.dropout(self.mlp(x)))
            return x
        if self.residual_in_fp32:  # as transformers' MambaBlock: norm(x.to(norm dtype)), residual added in fp32
            x = x.float() + self.dropout(self.mixer(self.norm1(x.to(self.norm1.weight.dtype)), ctx, state))
            if self.mlp is not None:
                x = x + self.dropout(self.mlp(self.norm2(x.to(self.norm2.weight.dtype))))
            return x
        x = x + self.dropout(self.mixer(self.norm1(x), ctx, state))
        if self.mlp is not None:
            x = x + self.dropout(self.mlp(self.norm2(x)))
        return x
