"""Multi-head attention mixer: grouped-query heads, optional biases, RoPE, packed documents, KV cache."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from zoo.kernels.attention import BACKENDS, attention, make_mask

from ..block import SeqContext
from ..positions import apply_rotary
from ..registry import register_mixer


def head_geometry(d_model: int, n_head: int, n_kv_head: int, head_dim: int | None, who: str = "") -> tuple[int, int]:
    """Check grouped-query head counts and default head_dim to d_model / n_head → (n_kv_head, head_dim).
    ``who`` prefixes the error messages (e.g. "HSA: ")."""
    if n_head % n_kv_head:
        raise ValueError(f"{who}n_head ({n_head}) must be a multiple of n_kv_head ({n_kv_head})")
    if head_dim is None:
        if d_model % n_head:
            raise ValueError(f"{who}d_model ({d_model}) must be divisible by n_head ({n_head}) or give head_dim")
        head_dim = d_model // n_head
    return n_kv_head, head_dim


@register_mixer("attention")
class Attention(nn.Module):
    # tokens meet only through the mask built from ctx: padding (segment id -1) and sequence-parallel attention
    # reach inside it. A mixer with state or its own mask leaves this False (the default for any mixer).
    masked_attention = True

    def __init__(
        self,
        d_model: int,
        n_head: int,
        n_kv_head: int | None = None,
        head_dim: int | None = None,
        qkv_bias: bool = False,
        out_bias: bool = False,
        k_bias: bool | None = None,
        causal: bool = True,
        window: int | None = None,
        window_size: tuple[int, int] | None = None,
        sink: bool = False,
        backend: str = "auto",
    ):
        super().__init__()
        n_kv_head, head_dim = head_geometry(d_model, n_head, n_kv_head or n_head, head_dim)
        if backend not in BACKENDS:
            raise ValueError(f"attention backend must be one of {BACKENDS}, got {backend!r}")
        self.n_head, self.n_kv_head, self.head_dim = n_head, n_kv_head, head_dim
        self.causal, self.window, self.backend = causal, window, backend
        # flash-attn's (left, right), -1 = unbounded, so its configs carry over; `window` is the same as a width
        self.window_size = None if window_size is None else tuple(window_size)
        make_mask(causal=causal, window=window, window_size=self.window_size)  # refuse a bad pair now, not at step 1
        self.q_proj = nn.Linear(d_model, n_head * head_dim, bias=qkv_bias)
        # Whisper-style encoders bias q and v but not k (a key bias shifts every score of a query equally)
        self.k_proj = nn.Linear(d_model, n_kv_head * head_dim, bias=qkv_bias if k_bias is None else k_bias)
        self.v_proj = nn.Linear(d_model, n_kv_head * head_dim, bias=qkv_bias)
        self.o_proj = nn.Linear(n_head * head_dim, d_model, bias=out_bias)
        # gpt-oss-style learned per-head "attend to nothing" logit (off by default; Qwen2/Llama have none)
        self.sink_logits = nn.Parameter(torch.zeros(n_head)) if sink else None

    def project(self, x: Tensor, ctx: SeqContext, state: dict | None) -> tuple[Tensor, Tensor, Tensor]:
        """x ``(B, N, d_model)`` → q ``(B, Hq, N, D)``, k and v ``(B, Hkv, M, D)``: rotated, with the cache prepended."""
        b, n, _ = x.shape
        q = self.q_proj(x).view(b, n, self.n_head, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, n, self.n_kv_head, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, n, self.n_kv_head, self.head_dim).transpose(1, 2)
        if ctx.rope is not None:
            cos, sin = ctx.rope
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if state is not None:
            if "k" in state:
                k = torch.cat((state["k"], k), dim=2)
                v = torch.cat((state["v"], v), dim=2)
            state["k"], state["v"] = k, v
        return q, k, v

    def merge_heads(self, out: Tensor) -> Tensor:
        b, _, n, _ = out.shape
        return self.o_proj(out.transpose(1, 2).reshape(b, n, self.n_head * self.head_dim))

    def forward(self, x: Tensor, ctx: SeqContext, state: dict | None = None) -> Tensor:
        n = x.shape[1]
        q, k, v = self.project(x, ctx, state)
        sp = ctx.sequence_parallel
        if sp is not None:  # the sequence is split over ranks: ring / Ulysses attention over the whole of it
            if state is not None or self.window is not None or self.window_size is not None \
                    or self.sink_logits is not None:
                raise ValueError("sequence-parallel attention takes no KV cache, window or sink")
            return self.merge_heads(sp.attention(q, k, v, ctx.segment_ids, self.causal))
        mask = make_mask(
            causal=self.causal,
            segment_ids=ctx.segment_ids,
            kv_segment_ids=ctx.kv_segment_ids,
            window=self.window,
            window_size=self.window_size,
            n_q=n,
            n_k=k.shape[2],
        )
        return self.merge_heads(attention(q, k, v, mask=mask, sink=self.sink_logits, backend=self.backend))
