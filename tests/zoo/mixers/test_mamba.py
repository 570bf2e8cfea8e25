"""Mamba mixer: equal to transformers' MambaMixer on the same weights, and step mode equal to the full forward."""

import pytest
import torch

from zoo.block import SeqContext
from zoo.lm import CausalLM, KVCache, LMConfig
from zoo.mixers.mamba import Mamba


def test_against_hf_mamba_mixer():
    from transformers import MambaConfig
    from transformers.models.mamba.modeling_mamba import MambaMixer

    cfg = MambaConfig(hidden_size=32, state_size=8, conv_kernel=4, expand=2, time_step_rank=4, use_bias=False,
                      use_conv_bias=True, use_mambapy=False)
    hf = MambaMixer(cfg, layer_idx=0).eval()
    ours = Mamba(32, d_state=8, d_conv=4, expand=2, dt_rank=4).eval()
    ours.load_state_dict(hf.state_dict())
    x = torch.randn(2, 37, 32)
    with torch.no_grad():
        want = hf(x)  # transformers falls back to its PyTorch reference scan without mamba-ssm
        got = ours(x, SeqContext())
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_step_mode_equals_full_forward_in_a_hybrid_lm():
    cfg = LMConfig(vocab_size=50, d_model=32, n_layer=4, n_head=4, layout="mamba,attention", mlp="none")
    model = CausalLM(cfg).eval()
    ids = torch.randint(0, 50, (2, 30))
    with torch.no_grad():
        full = model(ids).logits
        cache = KVCache.empty(cfg.n_layer)
        parts = [model(ids[:, :2], cache=cache).logits] + [model(ids[:, i:i + 1], cache=cache).logits
                                                            for i in range(2, 30)]
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-4, rtol=1e-4)
    assert [type(b.mixer).__name__ for b in model.blocks] == ["Mamba", "Attention"] * 2


def test_gradients_reach_every_parameter_and_packed_ids_are_refused():
    mixer = Mamba(16, d_state=4)
    out = mixer(torch.randn(1, 20, 16), SeqContext())
    out.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mixer.parameters())
    with pytest.raises(ValueError, match="does not take packed segment_ids"):
        mixer(torch.randn(1, 4, 16), SeqContext(segment_ids=torch.zeros(1, 4, dtype=torch.long)))
