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


@pytest.mark.parametrize("tied", [True, False])
def test_against_hf_mamba_for_causal_lm(tmp_path, tied):
    """A tiny random MambaForCausalLM saved by transformers loads with equal logits and greedy tokens, and
    save_pretrained writes a directory transformers loads back."""
    from transformers import MambaConfig, MambaForCausalLM

    import zoo

    cfg = MambaConfig(vocab_size=64, hidden_size=32, state_size=8, num_hidden_layers=2, conv_kernel=4, expand=2,
                      tie_word_embeddings=tied, use_mambapy=False, bos_token_id=None, eos_token_id=None,
                      pad_token_id=None)
    hf = MambaForCausalLM(cfg).eval()
    hf.save_pretrained(tmp_path / "hf")
    model = zoo.load_pretrained(tmp_path / "hf")
    ids = torch.randint(0, 64, (2, 40))
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, hf(ids).logits, atol=1e-4, rtol=1e-4)
    want = hf.generate(ids[:, :6], attention_mask=torch.ones_like(ids[:, :6]), max_new_tokens=12, do_sample=False)
    assert torch.equal(model.generate(ids[:, :6], max_new_tokens=12), want)
    model.save_pretrained(tmp_path / "zoo")
    again = MambaForCausalLM.from_pretrained(tmp_path / "zoo").eval()
    with torch.no_grad():
        torch.testing.assert_close(again(ids).logits, hf(ids).logits, atol=1e-5, rtol=1e-5)


def test_bimamba_with_all_weights_tied_is_reverse_equivariant():
    from zoo.mixers.mamba import BiMamba

    mixer = BiMamba(16, tie="all", d_state=4).eval()
    x = torch.randn(2, 25, 16)
    with torch.no_grad():
        torch.testing.assert_close(mixer(x.flip(1), SeqContext()), mixer(x, SeqContext()).flip(1),
                                   atol=1e-5, rtol=1e-5)


def test_bimamba_is_the_sum_of_both_directions_and_shares_projections():
    from zoo.mixers.mamba import BiMamba

    mixer = BiMamba(16, tie="projections", d_state=4).eval()
    assert mixer.rev.in_proj is mixer.fwd.in_proj and mixer.rev.out_proj is mixer.fwd.out_proj
    assert mixer.rev.x_proj is not mixer.fwd.x_proj
    n_params = sum(p.numel() for p in mixer.parameters())
    untied = sum(p.numel() for p in BiMamba(16, tie="none", d_state=4).parameters())
    shared = sum(p.numel() for m in (mixer.fwd.in_proj, mixer.fwd.out_proj) for p in m.parameters())
    assert n_params == untied - shared
    x = torch.randn(1, 12, 16)
    with torch.no_grad():
        want = mixer.fwd(x, SeqContext()) + mixer.rev(x.flip(1), SeqContext()).flip(1)
        torch.testing.assert_close(mixer(x, SeqContext()), want)
        # position 0 depends on the last token (through the reverse pass), unlike a causal mixer
        x2 = x.clone()
        x2[:, -1] += 1.0
        assert not torch.allclose(mixer(x2, SeqContext())[:, 0], mixer(x, SeqContext())[:, 0])
    with pytest.raises(ValueError, match="tie must be 'none', 'projections' or 'all'"):
        BiMamba(16, tie="some")
