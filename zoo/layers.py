"""Small shared layers: norms and MLPs. Imported everywhere, never copied."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class RMSNorm(nn.Module):
    def __init__(self, d_model: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


def make_norm(kind: str, d_model: int, eps: float) -> nn.Module:
    if kind == "rmsnorm":
        return RMSNorm(d_model, eps)
    if kind == "layernorm":
        return nn.LayerNorm(d_model, eps=eps)
    raise ValueError(f"norm must be 'rmsnorm' or 'layernorm', got {kind!r}")


class SwiGLU(nn.Module):
    """down(silu(gate(x)) · up(x)) — the Llama/Qwen2 MLP."""

    def __init__(self, d_model: int, d_ff: int, bias: bool = False):
        super().__init__()
        self.gate_proj = nn.Linear(d_model, d_ff, bias=bias)
        self.up_proj = nn.Linear(d_model, d_ff, bias=bias)
        self.down_proj = nn.Linear(d_ff, d_model, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class GeluMLP(nn.Module):
    """down(gelu(up(x))) — the GPT/ViT MLP; ``approximate`` "tanh" (GPT-2) or "none" (exact erf: Whisper, BERT)."""

    def __init__(self, d_model: int, d_ff: int, bias: bool = True, approximate: str = "tanh"):
        super().__init__()
        self.approximate = approximate
        self.up_proj = nn.Linear(d_model, d_ff, bias=bias)
        self.down_proj = nn.Linear(d_ff, d_model, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.gelu(self.up_proj(x), approximate=self.approximate))


def _gelu_exact(d_model: int, d_ff: int, bias: bool = True) -> GeluMLP:
    return GeluMLP(d_model, d_ff, bias, approximate="none")


MLPS = {"swiglu": SwiGLU, "gelu": GeluMLP, "gelu_exact": _gelu_exact}


def make_mlp(kind: str, d_model: int, d_ff: int, bias: bool) -> nn.Module | None:
    if kind == "none":
        return None
    if kind not in MLPS:
        raise ValueError(f"mlp must be one of {sorted(MLPS) + ['none']}, got {kind!r}")
    return MLPS[kind](d_model, d_ff, bias=bias)
