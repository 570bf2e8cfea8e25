"""causal_conv1d_torch against causal_conv1d_ref: outputs and gradients; causality."""

import pytest
import torch

from zoo.kernels.causal_conv1d import causal_conv1d, causal_conv1d_ref, causal_conv1d_torch


@pytest.mark.parametrize("activation", [None, "silu"])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("width", [2, 4])
def test_torch_path_matches_ref_with_grads(activation, with_bias, width):
    x = torch.randn(2, 6, 33, requires_grad=True)
    w = torch.randn(6, width, requires_grad=True)
    b = torch.randn(6, requires_grad=True) if with_bias else None
    leaves = [t for t in (x, w, b) if t is not None]
    ref = causal_conv1d_ref(x, w, b, activation)
    got = causal_conv1d_torch(x, w, b, activation)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(ref)
    for a, r in zip(torch.autograd.grad((got * g).sum(), leaves), torch.autograd.grad((ref * g).sum(), leaves)):
        torch.testing.assert_close(a, r, atol=1e-5, rtol=1e-5)


def test_output_at_t_ignores_inputs_after_t():
    x = torch.randn(1, 3, 20)
    w = torch.randn(3, 4)
    y1 = causal_conv1d(x, w)
    x2 = x.clone()
    x2[:, :, 12:] = 5.0
    assert torch.equal(causal_conv1d(x2, w)[:, :, :12], y1[:, :, :12])


def test_ref_matches_the_formula():
    x = torch.arange(1.0, 6.0).view(1, 1, 5)
    w = torch.tensor([[1.0, 10.0]])  # out_t = x_{t-1} + 10 x_t
    assert causal_conv1d_ref(x, w).flatten().tolist() == [10.0, 21.0, 32.0, 43.0, 54.0]


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"needs x \(B, D, L\) and weight \(D, W\)"):
        causal_conv1d(torch.randn(1, 3, 5), torch.randn(4, 2))
    with pytest.raises(ValueError, match="activation must be None, 'silu' or 'swish'; got 'relu'"):
        causal_conv1d_ref(torch.randn(1, 3, 5), torch.randn(3, 2), activation="relu")
    with pytest.raises(RuntimeError, match="'cuda' needs the causal-conv1d package"):
        causal_conv1d(torch.randn(1, 3, 5), torch.randn(3, 2), backend="cuda")
