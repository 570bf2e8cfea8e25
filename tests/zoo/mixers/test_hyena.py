"""Hyena mixer: FFT path equals the direct-convolution path, causality, and use from a layout."""

import pytest
import torch

from zoo.block import SeqContext
from zoo.lm import CausalLM, LMConfig
from zoo.mixers.hyena import Hyena


def test_fft_and_direct_paths_agree_with_gradients():
    mixer = Hyena(16, filter_order=16)
    x = torch.randn(2, 300, 16, requires_grad=True)
    out_fft = mixer(x, SeqContext())
    mixer.fft = False
    out_ref = mixer(x, SeqContext())
    torch.testing.assert_close(out_fft, out_ref, atol=1e-4, rtol=1e-4)
    params = [x] + list(mixer.parameters())
    g = torch.randn_like(out_ref)
    mixer.fft = True
    grads_fft = torch.autograd.grad((mixer(x, SeqContext()) * g).sum(), params)
    mixer.fft = False
    grads_ref = torch.autograd.grad((mixer(x, SeqContext()) * g).sum(), params)
    for a, b in zip(grads_fft, grads_ref):
        torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)


def test_outputs_up_to_t_ignore_later_tokens():
    mixer = Hyena(8, filter_order=8).eval()
    x = torch.randn(1, 64, 8)
    x2 = x.clone()
    x2[:, 40:] = torch.randn(1, 24, 8)
    with torch.no_grad():
        a, b = mixer(x, SeqContext()), mixer(x2, SeqContext())
    torch.testing.assert_close(a[:, :40], b[:, :40], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(a[:, 40:], b[:, 40:])


def test_hyena_lm_from_layout_trains_one_step():
    cfg = LMConfig(vocab_size=16, d_model=16, n_layer=2, n_head=1, layout="hyena", mixer_kwargs={
        "hyena": {"filter_order": 8}})
    model = CausalLM(cfg)
    ids = torch.randint(0, 16, (2, 32))
    loss0 = model(ids, labels=ids).loss
    loss0.backward()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    opt.step()
    assert model(ids, labels=ids).loss < loss0
    with pytest.raises(ValueError, match="emb_dim must be odd and ≥ 3"):
        Hyena(8, emb_dim=4)(torch.randn(1, 4, 8), SeqContext())
