"""Kernels: one file per op, each fast path beside its ``*_ref`` twin. GPU packages are probed in ``_optional``."""

from .attention import (
    BACKENDS,
    AttentionMask,
    attention,
    attention_chunked,
    attention_ref,
    attention_sdpa,
    make_mask,
    merge_attention_partials,
    segment_ids_from_cu_seqlens,
)

__all__ = [
    "BACKENDS", "AttentionMask", "attention", "attention_chunked", "attention_ref", "attention_sdpa", "make_mask",
    "merge_attention_partials", "segment_ids_from_cu_seqlens",
]
