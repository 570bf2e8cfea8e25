"""Hyena operator (order 2, as in HyenaDNA): in_proj to (v, x1, x2) → short causal depthwise conv (width 3) →
y = x2 · longconv(x1 · v, h) → out_proj, where the long filter h is *implicit*: a small MLP with sine activations
maps positional features of t to one filter value per channel, damped by an exponential-decay window. The long
convolution is an FFT (``zoo.kernels.fftconv``), O(L log L).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from zoo.kernels.causal_conv1d import causal_conv1d
from zoo.kernels.fftconv import fftconv, fftconv_ref

from ..block import SeqContext
from ..registry import register_mixer


class Sin(nn.Module):
    """sin(freq · x) with a learnable per-channel frequency (initialised to w)."""

    def __init__(self, dim: int, w: float = 10.0):
        super().__init__()
        self.freq = nn.Parameter(w * torch.ones(1, dim))

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(self.freq * x)


def positional_features(length: int, emb_dim: int, device=None) -> tuple[Tensor, Tensor]:
    """HyenaDNA's features: (t in [0, 1], cos and sin of (emb_dim − 1) // 2 frequencies) → (L, emb_dim), and t."""
    if emb_dim < 3 or emb_dim % 2 == 0:
        raise ValueError(f"emb_dim must be odd and ≥ 3 (t plus cos/sin pairs), got {emb_dim}")
    # an explicit device: transformers 5 can leave torch.linspace patched to default to the CPU (seen after a
    # sharded from_pretrained), which broke building this filter on the meta device
    device = torch.get_default_device() if device is None else device
    t = torch.linspace(0, 1, length, device=device)[:, None]
    bands = (emb_dim - 1) // 2
    w = 2 * math.pi * torch.arange(length, device=device)[:, None] / length
    f = torch.linspace(1e-4, bands - 1, bands, device=device)[None]
    z = torch.cat((t, torch.cos(f * w), -torch.sin(f * w)), dim=-1)
    return z, t


class HyenaFilter(nn.Module):
    """Implicit long filter: features (L, emb_dim) → MLP with Sin → (d_model, L), times exp(−|δ_d| t) + shift.

    ``l_max``: as HyenaDNA does, compute the positional features once for ``l_max`` positions and use their first L
    (so a filter for L < l_max is the start of the l_max one); they are then stored with the weights (buffers ``z``,
    ``t`` and ``deltas``), as HyenaDNA's checkpoints store them. Without it the features are recomputed for each
    length, spanning [0, 1] whatever L is.
    """

    def __init__(self, d_model: int, emb_dim: int = 5, filter_order: int = 64, n_inner: int = 2, w: float = 10.0,
                 fast_decay_pct: float = 0.3, slow_decay_pct: float = 1.5, target: float = 1e-2, shift: float = 0.0,
                 l_max: int | None = None):
        super().__init__()
        self.emb_dim, self.l_max = emb_dim, l_max
        # one Sin (one learned frequency) after every hidden layer, as in hyena-dna: the original builds a single
        # activation module and places it three times, so its checkpoints hold one parameter under three keys
        act = Sin(filter_order, w)
        layers: list[nn.Module] = [nn.Linear(emb_dim, filter_order), act]
        for _ in range(n_inner):
            layers += [nn.Linear(filter_order, filter_order), act]
        layers.append(nn.Linear(filter_order, d_model, bias=False))
        self.mlp = nn.Sequential(*layers)
        max_decay = math.log(target) / fast_decay_pct
        min_decay = math.log(target) / slow_decay_pct
        self.register_buffer("deltas", torch.linspace(min_decay, max_decay, d_model,
                                                      device=torch.get_default_device())[None],
                             persistent=l_max is not None)
        if l_max is not None:
            z, t = positional_features(l_max, emb_dim)
            self.register_buffer("z", z)
            self.register_buffer("t", t)
        self.shift = shift
        self.bias = nn.Parameter(torch.randn(d_model))

    def forward(self, length: int) -> Tensor:
        if self.l_max is None:
            z, t = positional_features(length, self.emb_dim, self.bias.device)
        elif length > self.l_max:
            raise ValueError(f"this Hyena filter was built for at most l_max={self.l_max} positions, got {length}")
        else:
            z, t = self.z[:length], self.t[:length]
        h = self.mlp(z) * (torch.exp(-t * self.deltas.abs()) + self.shift)  # (L, d_model)
        return h.t()


@register_mixer("hyena")
class Hyena(nn.Module):
    def __init__(self, d_model: int, short_filter_order: int = 3, fft: bool = True, **filter_kwargs):
        super().__init__()
        self.d_model, self.fft = d_model, fft
        self.in_proj = nn.Linear(d_model, 3 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.short_filter = nn.Conv1d(3 * d_model, 3 * d_model, short_filter_order, groups=3 * d_model,
                                      padding=short_filter_order - 1)
        self.filter = HyenaFilter(d_model, **filter_kwargs)

    def forward(self, hidden: Tensor, ctx: SeqContext, state: dict | None = None) -> Tensor:
        if state is not None:
            raise ValueError("the Hyena mixer has no generation cache; run it on the whole sequence")
        if ctx.segment_ids is not None:
            raise ValueError("the Hyena mixer does not take packed segment_ids (its filter spans documents)")
        length = hidden.shape[1]
        u = self.in_proj(hidden).transpose(1, 2)  # (B, 3d, L)
        u = causal_conv1d(u, self.short_filter.weight[:, 0], self.short_filter.bias)
        x1, x2, v = u.split(self.d_model, dim=1)
        h = self.filter(length)
        conv = fftconv if self.fft else fftconv_ref
        y = x2 * conv(x1 * v, h, self.filter.bias)
        return self.out_proj(y.transpose(1, 2))
