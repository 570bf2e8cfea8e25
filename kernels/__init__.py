"""Kernels: one file per op, each fast path beside its ``*_ref`` twin. GPU packages are probed in ``_optional``."""

from .attention import (
    BACKENDS,
    AttentionMask,
    attention,
    attention_chunked,
    attention_ref,
    attention_sdpa,
    attention_varlen,
    make_mask,
    merge_attention_partials,
    segment_ids_from_cu_seqlens,
)
from .causal_conv1d import causal_conv1d, causal_conv1d_ref
from .fftconv import fftconv, fftconv_ref
from .hsa import chunk_weights, hsa, hsa_ref, select_chunks
from .selective_scan import selective_scan, selective_scan_blocked, selective_scan_chunked, selective_scan_ref

__all__ = [
    "BACKENDS", "AttentionMask", "attention", "attention_chunked", "attention_ref", "attention_sdpa", "attention_varlen",
    "causal_conv1d",    "causal_conv1d_ref", "chunk_weights", "fftconv", "fftconv_ref", "hsa", "hsa_ref", "make_mask", "merge_attention_partials",
    "segment_ids_from_cu_seqlens", "select_chunks", "selective_scan", "selective_scan_blocked", "selective_scan_chunked", "selective_scan_ref",
]
