"""Group-bias attention (Timer-XL's same/other-variable bias) as merged passes against dense biased scores."""

import pytest
import torch

from zoo.kernels.attention import attention, make_mask
from zoo.kernels.group_bias_attention import group_bias_attention, group_bias_attention_ref

TOL = dict(atol=1e-5, rtol=1e-5)
N_VARS, N_PATCHES = 3, 11


def _kronecker(qp, kp):
    return kp % N_PATCHES <= qp % N_PATCHES


def _inputs(hq=4, hkv=4, n=N_VARS * N_PATCHES, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(2, hq, n, d, generator=g, requires_grad=True)
    k = torch.randn(2, hkv, n, d, generator=g, requires_grad=True)
    v = torch.randn(2, hkv, n, d, generator=g, requires_grad=True)
    bias = (torch.randn(hq, 2, generator=g) * 2).requires_grad_()
    return q, k, v, bias


def _out_and_grads(fn, tensors):
    out = fn()
    go = torch.randn(out.shape, generator=torch.Generator().manual_seed(3))
    grads = torch.autograd.grad((out * go).sum(), tensors)
    return [out.detach(), *grads]


@pytest.mark.parametrize("backend", ["auto", "chunked", "ref"])
@pytest.mark.parametrize("hkv", [4, 2])
@pytest.mark.parametrize("kronecker", [True, False])
def test_merged_passes_match_dense_bias_with_all_gradients(backend, hkv, kronecker):
    q, k, v, bias = _inputs(hkv=hkv)
    groups = torch.arange(N_VARS * N_PATCHES) // N_PATCHES
    mask = make_mask(mask_mod=_kronecker) if kronecker else make_mask()
    got = _out_and_grads(lambda: group_bias_attention(q, k, v, groups, bias, mask, backend=backend), (q, k, v, bias))
    want = _out_and_grads(lambda: group_bias_attention_ref(q, k, v, groups, bias, mask), (q, k, v, bias))
    for name, a, b in zip(("out", "dq", "dk", "dv", "dbias"), got, want):
        torch.testing.assert_close(a, b, **TOL, msg=lambda m: f"{name}: {m}")
    assert want[-1].abs().min() > 1e-4  # the bias really is trained


def test_equal_biases_reduce_to_plain_attention():
    q, k, v, _ = _inputs()
    groups = torch.arange(N_VARS * N_PATCHES) // N_PATCHES
    bias = torch.full((4, 2), 0.7)
    mask = make_mask(mask_mod=_kronecker)
    torch.testing.assert_close(group_bias_attention(q, k, v, groups, bias, mask), attention(q, k, v, mask=mask), **TOL)


def test_shapes_are_checked():
    q, k, v, bias = _inputs()
    with pytest.raises(ValueError, match=r"groups must be \(M,\) = \(33,\) group ids"):
        group_bias_attention(q, k, v, torch.zeros(5, dtype=torch.long), bias)
    with pytest.raises(ValueError, match=r"bias must be \(n_head, 2\) = \(4, 2\), got \(4,\)"):
        group_bias_attention(q, k, v, torch.zeros(33, dtype=torch.long), bias[:, 0])
