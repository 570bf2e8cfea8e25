"""Long causal convolution (Hyena's): y[b, d, t] = Σ_{s ≤ t} k[d, s] · u[b, d, t − s] + D[d] · u[b, d, t].

    u: (B, D, L)   k: (D, L) or (D, Lk ≤ L)   D: (D,) or None   →   y: (B, D, L), in u's dtype

``fftconv_ref`` computes the sum directly (a depthwise conv1d over the left-padded input, O(L²)); ``fftconv`` zero-pads
to 2L so that the FFT's circular convolution equals the linear one, O(L log L), in fp32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _check(u: Tensor, k: Tensor) -> None:
    if u.dim() != 3 or k.dim() != 2 or k.shape[0] != u.shape[1] or k.shape[1] > u.shape[2]:
        raise ValueError(f"fftconv needs u (B, D, L) and k (D, Lk ≤ L); got {tuple(u.shape)}, {tuple(k.shape)}")


def fftconv_ref(u: Tensor, k: Tensor, D: Tensor | None = None) -> Tensor:
    _check(u, k)
    taps = k.shape[1]
    y = F.conv1d(F.pad(u.float(), (taps - 1, 0)), k.float().flip(-1)[:, None], groups=u.shape[1])
    if D is not None:
        y = y + u.float() * D.float()[:, None]
    return y.to(u.dtype)


def fftconv(u: Tensor, k: Tensor, D: Tensor | None = None) -> Tensor:
    _check(u, k)
    length = u.shape[-1]
    n = 2 * length
    y = torch.fft.irfft(torch.fft.rfft(u.float(), n=n) * torch.fft.rfft(k.float(), n=n), n=n)[..., :length]
    if D is not None:
        y = y + u.float() * D.float()[:, None]
    return y.to(u.dtype)
