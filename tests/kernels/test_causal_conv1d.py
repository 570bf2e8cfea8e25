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


# causal-conv1d's own test tolerances: (rtol, atol) on out and dx per input dtype, and (1e-3, 1e-3) on fp32
# dweight/dbias. Weights in the input's half dtype get that dtype's tolerance (their gradient is rounded to it).
CONV_TOL = {torch.float32: (3e-4, 1e-3), torch.float16: (3e-3, 5e-3), torch.bfloat16: (1e-2, 5e-2)}
WEIGHT_TOL = (1e-3, 1e-3)
SHAPES = [(1, 8, 1), (2, 40, 2), (2, 8, 33), (1, 24, 130), (2, 64, 257)]  # (batch, dim, seqlen)


@pytest.mark.parametrize("itype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("wtype", ["fp32", "itype"])
@pytest.mark.parametrize("width", [2, 3, 4])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("activation", [None, "silu"])
def test_dtype_grid_matches_ref(itype, wtype, width, with_bias, activation):
    if wtype == "itype" and itype == torch.float32:
        pytest.skip("same as wtype=fp32")
    wdt = torch.float32 if wtype == "fp32" else itype
    rtol, atol = CONV_TOL[itype]
    rtolw, atolw = WEIGHT_TOL if wdt == torch.float32 else CONV_TOL[wdt]
    gen = torch.Generator().manual_seed(width)
    for bsz, dim, length in SHAPES:
        x = torch.randn(bsz, dim, length, generator=gen).to(itype).requires_grad_()
        w = torch.randn(dim, width, generator=gen).to(wdt).requires_grad_()
        b = torch.randn(dim, generator=gen).to(wdt).requires_grad_() if with_bias else None
        leaves = [t for t in (x, w, b) if t is not None]
        got = causal_conv1d(x, w, b, activation, backend="torch")
        ref = causal_conv1d_ref(x, w, b, activation)
        assert got.dtype == itype
        torch.testing.assert_close(got, ref, rtol=rtol, atol=atol)
        g = torch.randn(ref.shape, generator=gen).to(itype)
        grads = torch.autograd.grad(got, leaves, g)
        grads_ref = torch.autograd.grad(ref, leaves, g)
        assert [t.dtype for t in grads] == [t.dtype for t in leaves]
        torch.testing.assert_close(grads[0], grads_ref[0], rtol=rtol, atol=atol)
        for gw, gw_ref in zip(grads[1:], grads_ref[1:]):
            torch.testing.assert_close(gw, gw_ref, rtol=rtolw, atol=atolw)


def test_half_weight_gradient_is_accumulated_in_fp32():
    """dweight sums B·L products: in bf16 that sum drifts by O(1); accumulated in fp32 it stays within 1e-3 of fp64."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 16, 2048, generator=gen)
    w = torch.randn(16, 4, generator=gen, requires_grad=True)
    g = torch.randn(2, 16, 2048, generator=gen)
    xb = x.to(torch.bfloat16).requires_grad_()
    (dw,) = torch.autograd.grad(causal_conv1d(xb, w, activation=None, backend="torch"), [w], g.to(torch.bfloat16))
    # the oracle: dweight[d, k] = Σ_{b,t} g[b, d, t] · x[b, d, t − 3 + k], summed in fp64 on the same bf16 values
    xp = torch.nn.functional.pad(xb.detach().double(), (3, 0))
    gd = g.to(torch.bfloat16).double()
    dw64 = torch.stack([(gd * xp[:, :, k : k + 2048]).sum((0, 2)) for k in range(4)], dim=1)
    assert dw.dtype == torch.float32
    torch.testing.assert_close(dw.double(), dw64, rtol=1e-3, atol=1e-3)
