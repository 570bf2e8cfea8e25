"""The attention mixer takes flash-attn's ``window_size=(left, right)`` as configs written for flash-attn give it."""

import pytest
import torch

from zoo.block import SeqContext
from zoo.kernels.attention import attention_ref, make_mask
from zoo.mixers.attention import Attention


def _mixer(**kw):
    torch.manual_seed(0)
    return Attention(32, n_head=4, n_kv_head=2, causal=False, **kw)


def test_window_size_reaches_the_kernel():
    x = torch.randn(2, 40, 32)
    mixer = _mixer(window_size=[6, 2])  # a YAML list
    got = mixer(x, SeqContext())
    q, k, v = mixer.project(x, SeqContext(), None)
    want, _ = attention_ref(q, k, v, make_mask(window_size=(6, 2)))
    torch.testing.assert_close(got, mixer.merge_heads(want), atol=1e-5, rtol=1e-5)
    # the zoo's width is the symmetric window_size, and an asymmetric one is not it
    torch.testing.assert_close(_mixer(window=5)(x, SeqContext()), _mixer(window_size=(4, 4))(x, SeqContext()))
    assert (got - _mixer(window_size=(2, 6))(x, SeqContext())).abs().max() > 1e-3


def test_bad_window_size_is_refused_when_built():
    with pytest.raises(ValueError, match=r"window_size entries must be ≥ 0, or -1 for unbounded; got \(-3, 1\)"):
        _mixer(window_size=(-3, 1))
    with pytest.raises(ValueError, match=r"give either window \(a width\) or window_size"):
        _mixer(window=4, window_size=(3, 3))
