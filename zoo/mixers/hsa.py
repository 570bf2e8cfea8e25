"""HSA mixer (hierarchical sparse attention, RAMba's retrieval layer) and its landmark chunk encoder.

Each token retrieves the ``top_k`` most relevant *complete past* chunks of ``chunk_size`` tokens by scoring their
landmarks with ``Linear(RMSNorm(h))`` (split into ``n_kv_head`` retrieval groups), attends within each chosen chunk,
and mixes the per-chunk results with stick-breaking (or softmax) weights; the math is in :mod:`zoo.kernels.hsa`.
There are no positions inside HSA on purpose: retrieval by content is what lets RAMba's HSA extrapolate far beyond its
training length; local order comes from the Mamba layers around it. A hybrid stack is a layout string, e.g.
``layout: "mamba*7,hsa"`` (RAMba: one HSA layer per 8).

With a generation cache the mixer keeps K/V, the landmarks of complete chunks, and the (normalised) hidden states of
the incomplete tail chunk; when the tail fills up, its landmark is encoded. Stepping gives the full forward's outputs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from zoo.kernels.hsa import WEIGHTINGS, hsa, hsa_ref

from ..block import Block, SeqContext
from ..layers import RMSNorm
from ..registry import register_mixer
from .attention import head_geometry

BACKENDS = ("blocked", "ref")


class ChunkEncoder(nn.Module):
    """Landmark per chunk: (B, C, S, d) → (B, C, out_dim).

    The chunk's S tokens plus one learned landmark token go through ``n_layer`` bidirectional attention blocks (no
    positions); the landmark token's output, normed and projected, is the landmark. ``n_layer=0`` mean-pools instead.
    """

    def __init__(self, d_model: int, out_dim: int, n_layer: int = 1, n_head: int = 4):
        super().__init__()
        self.landmark_token = nn.Parameter(torch.randn(d_model) * 0.02) if n_layer else None
        self.blocks = nn.ModuleList(
            Block(d_model, "attention", {"n_head": n_head, "causal": False}, d_ff=2 * d_model) for _ in range(n_layer)
        )
        self.norm = RMSNorm(d_model)
        self.proj = nn.Linear(d_model, out_dim, bias=False)

    def forward(self, chunks: Tensor) -> Tensor:
        b, c, s, d = chunks.shape
        if not self.blocks:
            return self.proj(self.norm(chunks.mean(dim=2)))
        x = torch.cat((chunks.reshape(b * c, s, d), self.landmark_token.expand(b * c, 1, d).to(chunks.dtype)), dim=1)
        ctx = SeqContext()
        for block in self.blocks:
            x = block(x, ctx)
        return self.proj(self.norm(x[:, -1])).view(b, c, -1)


@register_mixer("hsa")
class HSA(nn.Module):
    def __init__(
        self,
        d_model: int,
        n_head: int,
        n_kv_head: int = 1,
        head_dim: int | None = None,
        chunk_size: int = 64,
        top_k: int = 8,
        weighting: str = "stick_breaking",
        retrieval_dim: int | None = None,
        encoder_layers: int = 1,
        encoder_heads: int | None = None,
        block_q: int = 256,
        backend: str = "blocked",
    ):
        super().__init__()
        n_kv_head, head_dim = head_geometry(d_model, n_head, n_kv_head, head_dim, "HSA: ")
        retrieval_dim = retrieval_dim or d_model
        if retrieval_dim % n_kv_head:
            raise ValueError(f"HSA: retrieval_dim ({retrieval_dim}) must be divisible by n_kv_head ({n_kv_head})")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"HSA: weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        if backend not in BACKENDS:
            raise ValueError(f"HSA: backend must be one of {BACKENDS}, got {backend!r}")
        if chunk_size < 1 or top_k < 1:
            raise ValueError(f"HSA: chunk_size and top_k must be ≥ 1, got {chunk_size} and {top_k}")
        self.n_head, self.n_kv_head, self.head_dim = n_head, n_kv_head, head_dim
        self.chunk_size, self.top_k, self.weighting = chunk_size, top_k, weighting
        self.retrieval_head_dim = retrieval_dim // n_kv_head
        self.block_q, self.backend = block_q, backend
        self.q_proj = nn.Linear(d_model, n_head * head_dim, bias=False)
        self.k_proj = nn.Linear(d_model, n_kv_head * head_dim, bias=False)
        self.v_proj = nn.Linear(d_model, n_kv_head * head_dim, bias=False)
        self.o_proj = nn.Linear(n_head * head_dim, d_model, bias=False)
        self.retrieval_norm = RMSNorm(d_model)
        self.retrieval_proj = nn.Linear(d_model, retrieval_dim, bias=False)
        enc_heads = encoder_heads or max(1, d_model // 64)
        self.encoder = ChunkEncoder(d_model, retrieval_dim, encoder_layers, enc_heads)

    def landmarks(self, chunks: Tensor) -> Tensor:
        """(B, C, S, d) hidden states of complete chunks → (B, C, G, R) landmarks."""
        b, c = chunks.shape[:2]
        if c == 0:
            return chunks.new_zeros(b, 0, self.n_kv_head, self.retrieval_head_dim)
        return self.encoder(chunks).view(b, c, self.n_kv_head, self.retrieval_head_dim)

    def forward(self, x: Tensor, ctx: SeqContext, state: dict | None = None) -> Tensor:
        if ctx.segment_ids is not None:
            raise ValueError("the HSA mixer does not take packed segment_ids (its chunks would span documents)")
        b, n, d_model = x.shape
        s = self.chunk_size
        q = self.q_proj(x).view(b, n, self.n_head, self.head_dim)
        k = self.k_proj(x).view(b, n, self.n_kv_head, self.head_dim)
        v = self.v_proj(x).view(b, n, self.n_kv_head, self.head_dim)
        q_r = self.retrieval_proj(self.retrieval_norm(x)).view(b, n, self.n_kv_head, self.retrieval_head_dim)
        pending = x  # hidden states not yet in an encoded chunk
        if state is not None and "k" in state:
            k, v = torch.cat((state["k"], k), dim=1), torch.cat((state["v"], v), dim=1)
            pending = torch.cat((state["tail"], x), dim=1)
        n_new = pending.shape[1] // s
        landmarks = self.landmarks(pending[:, : n_new * s].reshape(b, n_new, s, d_model))
        if state is not None:
            if "landmarks" in state:
                landmarks = torch.cat((state["landmarks"], landmarks), dim=1)
            state.update(k=k, v=v, landmarks=landmarks, tail=pending[:, n_new * s:])
        fn = hsa if self.backend == "blocked" else hsa_ref
        kwargs = {"block_q": self.block_q} if self.backend == "blocked" else {}
        out = fn(q, k, v, q_r, landmarks, self.chunk_size, self.top_k, self.weighting, q_offset=k.shape[1] - n,
                 **kwargs)
        return self.o_proj(out.reshape(b, n, self.n_head * self.head_dim))
