"""Depthwise causal 1-D convolution (Mamba's short conv) with causal-conv1d's semantics.

    x: (B, D, L)   weight: (D, W)   bias: (D,) or None   activation: None | "silu" | "swish"
    out[b, d, t] = act(bias[d] + Σ_{k<W} weight[d, k] · x[b, d, t − (W − 1) + k])   (x before 0 is 0)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._optional import causal_conv1d as _causal_conv1d_pkg

CONV_BACKENDS = ("auto", "torch", "ref", "cuda")


def _activate(y: Tensor, activation: str | None) -> Tensor:
    if activation in ("silu", "swish"):
        return F.silu(y)
    if activation is None:
        return y
    raise ValueError(f"activation must be None, 'silu' or 'swish'; got {activation!r}")


def _check(x: Tensor, weight: Tensor) -> None:
    if x.dim() != 3 or weight.dim() != 2 or weight.shape[0] != x.shape[1]:
        raise ValueError(f"causal_conv1d needs x (B, D, L) and weight (D, W); got {tuple(x.shape)}, "
                         f"{tuple(weight.shape)}")


def causal_conv1d_ref(x: Tensor, weight: Tensor, bias: Tensor | None = None, activation: str | None = None) -> Tensor:
    """The sum in the module docstring, one tap at a time (fp32 accumulation, x's dtype out)."""
    _check(x, weight)
    width = weight.shape[1]
    xf = F.pad(x.float(), (width - 1, 0))
    length = x.shape[-1]
    y = sum(weight[:, k, None].float() * xf[:, :, k : k + length] for k in range(width))
    if bias is not None:
        y = y + bias.float()[:, None]
    return _activate(y, activation).to(x.dtype)


def causal_conv1d_torch(x: Tensor, weight: Tensor, bias: Tensor | None = None, activation: str | None = None) -> Tensor:
    """One grouped ``F.conv1d`` over the left-padded input, accumulated in fp32 (or wider) like causal-conv1d's
    reference: half-precision sums over W taps lose ~1e-2 per output and far more in the weight gradient, which sums
    over B·L. The output comes back in x's dtype; weight and bias gradients arrive in their own dtype."""
    _check(x, weight)
    width = weight.shape[1]
    acc = torch.promote_types(torch.promote_types(x.dtype, weight.dtype), torch.float32)
    b = bias.to(acc) if bias is not None else None
    y = F.conv1d(F.pad(x.to(acc), (width - 1, 0)), weight[:, None, :].to(acc), b, groups=x.shape[1])
    return _activate(y, activation).to(x.dtype)


def causal_conv1d(x: Tensor, weight: Tensor, bias: Tensor | None = None, activation: str | None = None,
                  backend: str = "auto") -> Tensor:
    """Dispatch: ``cuda`` = the causal-conv1d package (CUDA tensors), ``torch``, ``ref``; ``auto`` prefers ``cuda``."""
    if backend not in CONV_BACKENDS:
        raise ValueError(f"unknown causal-conv1d backend {backend!r}; choose one of {', '.join(CONV_BACKENDS)}")
    kernel_ok = x.is_cuda and _causal_conv1d_pkg() is not None
    if backend == "cuda" or (backend == "auto" and kernel_ok):
        if not kernel_ok:
            raise RuntimeError("causal-conv1d backend 'cuda' needs the causal-conv1d package and CUDA tensors")
        return _causal_conv1d_pkg().causal_conv1d_fn(x, weight, bias, activation)
    if backend == "ref":
        return causal_conv1d_ref(x, weight, bias, activation)
    return causal_conv1d_torch(x, weight, bias, activation)
