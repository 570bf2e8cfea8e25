"""fftconv (FFT, O(L log L)) against fftconv_ref (direct causal convolution): outputs and gradients."""

import pytest
import torch

from zoo.kernels.fftconv import fftconv, fftconv_ref


@pytest.mark.parametrize("length, taps", [(1, 1), (100, 100), (257, 40), (2048, 2048)])
def test_fft_matches_direct_convolution(length, taps):
    u = torch.randn(2, 6, length, requires_grad=True)
    k = (torch.randn(6, taps) * torch.exp(-torch.arange(taps) / 50.0)).requires_grad_()
    D = torch.randn(6, requires_grad=True)
    want, got = fftconv_ref(u, k, D), fftconv(u, k, D)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    g = torch.randn_like(want)
    for a, b in zip(torch.autograd.grad((got * g).sum(), (u, k, D)), torch.autograd.grad((want * g).sum(), (u, k, D))):
        torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-4)


def test_ref_is_the_causal_sum():
    u = torch.tensor([[[1.0, 2.0, 3.0]]])
    k = torch.tensor([[1.0, 10.0, 100.0]])  # y_t = u_t + 10 u_{t-1} + 100 u_{t-2}
    assert fftconv_ref(u, k).flatten().tolist() == [1.0, 12.0, 123.0]


def test_shape_errors():
    with pytest.raises(ValueError, match=r"needs u \(B, D, L\) and k \(D, Lk ≤ L\)"):
        fftconv(torch.randn(1, 2, 5), torch.randn(2, 6))
