"""HSA mixer: blocked and dense backends agree on outputs and every parameter's gradient, stepping with a cache equals
the full forward, a "mamba*3,hsa" stack is causal, and bad settings fail by name."""

import pytest
import torch

from zoo.block import SeqContext
from zoo.lm import CausalLM, KVCache, LMConfig
from zoo.mixers.hsa import HSA


def _mixer(**kw):
    torch.manual_seed(0)
    args = dict(d_model=32, n_head=4, n_kv_head=2, chunk_size=8, top_k=3, encoder_layers=1, encoder_heads=2)
    return HSA(**{**args, **kw}).double()


@pytest.mark.parametrize("weighting, encoder_layers", [("stick_breaking", 1), ("softmax", 0), ("stick_breaking", 2)])
def test_blocked_and_ref_backends_agree_with_all_gradients(weighting, encoder_layers):
    mixer = _mixer(weighting=weighting, encoder_layers=encoder_layers, block_q=13)
    x = torch.randn(2, 77, 32, dtype=torch.float64, requires_grad=True)
    params = [x] + list(mixer.parameters())
    g = torch.randn(2, 77, 32, dtype=torch.float64)
    mixer.backend = "blocked"
    out_blocked = mixer(x, SeqContext())
    grads_blocked = torch.autograd.grad((out_blocked * g).sum(), params, allow_unused=True)
    mixer.backend = "ref"
    out_ref = mixer(x, SeqContext())
    grads_ref = torch.autograd.grad((out_ref * g).sum(), params, allow_unused=True)
    torch.testing.assert_close(out_blocked, out_ref, atol=1e-10, rtol=1e-10)
    names = ["x"] + [n for n, _ in mixer.named_parameters()]
    for name, a, b in zip(names, grads_blocked, grads_ref):
        assert (a is None) == (b is None), name
        if a is not None:
            torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10, msg=lambda m, name=name: f"{name}: {m}")
    # every parameter learns: the landmark encoder and retrieval projection get gradient through the chunk weights
    assert all(a is not None and a.abs().sum() > 0 for a in grads_blocked[1:])


def test_stepping_with_a_cache_equals_the_full_forward():
    mixer = _mixer().eval()
    x = torch.randn(2, 45, 32, dtype=torch.float64)
    with torch.no_grad():
        full = mixer(x, SeqContext())
        state: dict = {}
        outs = [mixer(x[:, :11], SeqContext(), state)]  # a prompt that ends inside the second chunk
        outs += [mixer(x[:, t:t + 1], SeqContext(), state) for t in range(11, 45)]
    torch.testing.assert_close(torch.cat(outs, 1), full, atol=1e-12, rtol=0)
    assert state["landmarks"].shape[1] == 45 // 8 and state["tail"].shape[1] == 45 % 8


def test_hybrid_layout_is_causal_and_generates_like_recomputing():
    torch.manual_seed(0)
    cfg = LMConfig(vocab_size=40, d_model=32, n_layer=4, n_head=4, layout="mamba*3,hsa",
                   mixer_kwargs={"hsa": {"chunk_size": 8, "top_k": 2, "encoder_heads": 2}})
    model = CausalLM(cfg).eval()
    assert [type(b.mixer).__name__ for b in model.blocks] == ["Mamba", "Mamba", "Mamba", "HSA"]
    ids = torch.randint(0, 40, (2, 60))
    ids2 = ids.clone()
    ids2[:, 35:] = torch.randint(0, 40, (2, 25))
    with torch.no_grad():
        a, b = model(ids).logits, model(ids2).logits
        torch.testing.assert_close(a[:, :35], b[:, :35], atol=0, rtol=0)
        assert not torch.allclose(a[:, 35:], b[:, 35:])
        cache = KVCache.empty(cfg.n_layer)
        steps = [model(ids[:, :20], cache=cache).logits]
        steps += [model(ids[:, t:t + 1], cache=cache).logits for t in range(20, 60)]
    torch.testing.assert_close(torch.cat(steps, 1), a, atol=1e-5, rtol=1e-5)


def test_bad_settings_and_packed_inputs_fail_by_name():
    with pytest.raises(ValueError, match=r"HSA: n_head \(4\) must be a multiple of n_kv_head \(3\)"):
        HSA(32, n_head=4, n_kv_head=3)
    with pytest.raises(ValueError, match="HSA: weighting must be one of"):
        HSA(32, n_head=4, weighting="argmax")
    with pytest.raises(ValueError, match="HSA: backend must be one of"):
        HSA(32, n_head=4, backend="flash")
    with pytest.raises(ValueError, match="does not take packed segment_ids"):
        HSA(32, n_head=4)(torch.randn(1, 8, 32), SeqContext(segment_ids=torch.zeros(1, 8, dtype=torch.long)))
