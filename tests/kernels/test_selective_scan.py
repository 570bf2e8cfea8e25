"""selective_scan_chunked against the sequential selective_scan_ref: outputs, last state and all gradients."""

import pytest
import torch

from zoo.kernels.selective_scan import selective_scan, selective_scan_chunked, selective_scan_ref

TOL = dict(atol=1e-4, rtol=1e-4)


def _inputs(bsz=2, dim=8, length=150, n=4, bc="token", groups=2, extras=True):
    t = lambda *s: torch.randn(*s, requires_grad=True)  # noqa: E731
    u, delta = t(bsz, dim, length), t(bsz, dim, length)
    A = (-torch.rand(dim, n) - 0.5).requires_grad_()
    shape = {"shared": (dim, n), "token": (bsz, n, length), "grouped": (bsz, groups, n, length)}[bc]
    B, C = t(*shape), t(*shape)
    D = t(dim) if extras else None
    z = t(bsz, dim, length) if extras else None
    delta_bias = t(dim) if extras else None
    return u, delta, A, B, C, D, z, delta_bias


@pytest.mark.parametrize("bc", ["shared", "token", "grouped"])
@pytest.mark.parametrize("extras", [True, False])
@pytest.mark.parametrize("length, chunk", [(150, 16), (64, 64), (7, 16)])
def test_chunked_matches_ref_outputs_state_and_grads(bc, extras, length, chunk):
    inputs = _inputs(length=length, bc=bc, extras=extras)
    leaves = [x for x in inputs if x is not None]
    out_r, h_r = selective_scan_ref(*inputs, delta_softplus=True, return_last_state=True)
    out_c, h_c = selective_scan_chunked(*inputs, delta_softplus=True, return_last_state=True, chunk_size=chunk)
    torch.testing.assert_close(out_c, out_r, **TOL)
    torch.testing.assert_close(h_c, h_r, **TOL)
    g_out = torch.randn_like(out_r)
    g_h = torch.randn_like(h_r)
    grads_r = torch.autograd.grad((out_r * g_out).sum() + (h_r * g_h).sum(), leaves)
    grads_c = torch.autograd.grad((out_c * g_out).sum() + (h_c * g_h).sum(), leaves)
    for gc, gr in zip(grads_c, grads_r):
        torch.testing.assert_close(gc, gr, **TOL)


def test_ref_is_the_recurrence_written_out():
    """Two steps by hand, no softplus: h1 = dt1·B·u1, h2 = exp(dt2·A)·h1 + dt2·B·u2, y = ⟨h, C⟩ + D·u."""
    u = torch.tensor([[[1.0, 2.0]]])
    delta = torch.tensor([[[0.5, 0.25]]])
    A, B, C, D = torch.tensor([[-1.0]]), torch.tensor([[2.0]]), torch.tensor([[3.0]]), torch.tensor([0.1])
    out = selective_scan_ref(u, delta, A, B, C, D)
    h1 = 0.5 * 2.0 * 1.0
    h2 = torch.exp(torch.tensor(-0.25)) * h1 + 0.25 * 2.0 * 2.0
    torch.testing.assert_close(out[0, 0], torch.stack([torch.tensor(3 * h1 + 0.1), 3 * h2 + 0.2]))


def test_long_sequence_with_strong_decay_stays_finite():
    """Large delta·|A| underflows the decays to 0; nothing is divided by them, so no inf/NaN appears."""
    inputs = _inputs(bsz=1, dim=4, length=300, extras=False)
    u, delta, A, B, C, *_ = inputs
    with torch.no_grad():
        delta.mul_(0).add_(30.0)
        out_r = selective_scan_ref(u, delta, A * 10, B, C)
        out_c = selective_scan_chunked(u, delta, A * 10, B, C)
    assert torch.isfinite(out_c).all()
    torch.testing.assert_close(out_c, out_r, **TOL)


def test_dispatch_errors():
    inputs = _inputs(length=8, extras=False)
    with pytest.raises(ValueError, match="unknown selective-scan backend 'fast'"):
        selective_scan(*inputs, backend="fast")
    with pytest.raises(RuntimeError, match="'cuda' needs the mamba-ssm package and CUDA tensors"):
        selective_scan(*inputs, backend="cuda")
    with pytest.raises(ValueError, match="B has 3 groups, which does not divide dim 8"):
        selective_scan_ref(*_inputs(length=8, bc="grouped", groups=3, extras=False))
    torch.testing.assert_close(selective_scan(*inputs, backend="auto"), selective_scan_ref(*inputs), **TOL)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mamba_ssm_kernel_matches_ref():
    pytest.importorskip("mamba_ssm", reason="needs the [cuda] extra (mamba-ssm)")
    inputs = [x.detach().cuda() if x is not None else None for x in _inputs(length=300)]
    want = selective_scan_ref(*inputs, delta_softplus=True)
    got = selective_scan(*inputs, delta_softplus=True, backend="cuda")
    torch.testing.assert_close(got, want, atol=1e-3, rtol=1e-3)
