"""Timer-XL: the Kronecker mask (no token sees a future patch of any variable), variable-order equivariance, rolling
forecasts, and Timer checkpoints (thuml/timer-base-84m layout) against a restatement of the original forward."""

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

import zoo
from zoo.block import SeqContext
from zoo.mixers.attention import Attention
from zoo.mixers.time_attention import TimeAttention, VariableLayout
from zoo.modalities.timeseries import TimerXL, TimerXLConfig

P = 8  # patch length of the tiny models


def tiny(**kw) -> TimerXL:
    cfg = dict(patch_len=P, d_model=32, n_layer=2, n_head=4, d_ff=48, dropout=0.0, init_std=0.2)
    model = TimerXL(TimerXLConfig(**{**cfg, **kw}))
    with torch.no_grad():  # a visibly non-zero variable bias, so the test covers it
        for block in model.blocks:
            if block.mixer.variable_bias is not None:
                block.mixer.variable_bias.normal_(0, 1.0)
    return model.eval()


def _input_grads(model, series, var, patch):
    """Gradient of the forecast made at token (var, patch) with respect to every input point."""
    x = series.clone().requires_grad_()
    out = model(x)
    out[:, patch * P:(patch + 1) * P, var].sum().backward()
    return x.grad[0]  # (L, C)


def test_no_token_sees_a_future_patch_of_any_variable():
    # instance norm is off: its lookback mean / std are a (deliberate, Timer-XL's) function of the whole window
    model = tiny(instance_norm=False)
    n_vars, n_patches = 3, 5
    series = torch.randn(1, n_patches * P, n_vars)
    for var in range(n_vars):
        for patch in range(n_patches):
            g = _input_grads(model, series, var, patch).abs().reshape(n_patches, P, n_vars).sum(1)  # (patch, var)
            assert g[patch + 1:].sum() == 0, f"token ({var}, {patch}) sees a later patch"
            assert (g[: patch + 1] > 0).all(), f"token ({var}, {patch}) misses an earlier patch of some variable"


def test_dependency_matrix_and_channel_independence_cut_other_variables():
    series = torch.randn(1, 4 * P, 3)
    dep = torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool)  # variable c sees variables ≤ c
    model = tiny(instance_norm=False)
    x = series.clone().requires_grad_()
    model(x, dependency=dep)[:, 3 * P:, 1].sum().backward()
    per_var = x.grad[0].abs().sum(0)
    assert per_var[2] == 0 and per_var[0] > 0 and per_var[1] > 0
    ci = tiny(instance_norm=False, channel_independent=True)
    g = _input_grads(ci, series, 1, 3).abs().sum(0)
    assert g[0] == 0 and g[2] == 0 and g[1] > 0


def test_channel_independent_model_forecasts_each_variable_on_its_own():
    model = tiny(channel_independent=True)
    series = torch.randn(2, 4 * P, 3)
    with torch.no_grad():
        joint = model(series)
        alone = torch.cat([model(series[..., c:c + 1]) for c in range(3)], dim=-1)
    torch.testing.assert_close(joint, alone, atol=1e-5, rtol=1e-5)


def test_forecasts_follow_a_permutation_of_the_variables():
    model = tiny()
    series = torch.randn(2, 4 * P, 4)
    perm = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        torch.testing.assert_close(model(series[..., perm]), model(series)[..., perm], atol=1e-5, rtol=1e-5)


def test_one_variable_time_attention_is_causal_attention():
    ta = TimeAttention(16, 2)
    ta.variable_bias.data.normal_()
    plain = Attention(16, 2, causal=True)
    plain.load_state_dict({k: v for k, v in ta.state_dict().items() if k != "variable_bias"})
    x = torch.randn(2, 9, 16)
    got = ta(x, SeqContext(variables=VariableLayout(1, 9)))
    torch.testing.assert_close(got, plain(x, SeqContext()), atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match=r"time_attention got 9 tokens for 2 variables × 5 patches"):
        ta(x, SeqContext(variables=VariableLayout(2, 5)))
    with pytest.raises(ValueError, match=r"time_attention needs ctx.variables \(a VariableLayout\)"):
        ta(x, SeqContext())


def test_rolling_forecast_feeds_back_its_own_patches():
    model = tiny()
    series = torch.randn(2, 3 * P, 2)
    long = model.forecast(series, 3 * P + 5)
    assert long.shape == (2, 3 * P + 5, 2)
    torch.testing.assert_close(long[:, :P], model.forecast(series, P))
    window = series
    with torch.no_grad():
        for step in range(3):
            nxt = model(window)[:, -P:]
            torch.testing.assert_close(long[:, step * P:(step + 1) * P], nxt)
            window = torch.cat((window[:, P:], nxt), 1)


def test_bad_shapes_name_the_problem():
    model = tiny()
    with pytest.raises(ValueError, match="series length 20 is not a positive multiple of patch_len 8"):
        model(torch.randn(1, 20, 2))
    with pytest.raises(ValueError, match=r"takes series as \(batch, time, variables\), got shape \(1, 16\)"):
        model(torch.randn(1, 16))


# ---- Timer checkpoints -------------------------------------------------------------------------------------------
# A restatement of thuml/timer-base-84m's forward (modeling_timer.py, revin off): patch embedding without bias; per
# layer h = norm1(h + attn(h)), h = norm2(h + mlp(h)) with causal attention, q/k/v biased, o not, Llama-style RoPE
# over patch positions and a SwiGLU MLP; a final LayerNorm; lm_heads.0 without bias.

HF_CONFIG = {"model_type": "timer", "architectures": ["TimerForPrediction"], "input_token_len": P, "hidden_size": 32,
             "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "hidden_act": "silu",
             "output_token_lens": [P], "rope_theta": 10000, "max_position_embeddings": 10000}


def _random_timer_state(cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    d, f, p = cfg["hidden_size"], cfg["intermediate_size"], cfg["input_token_len"]

    def r(*shape, scale=0.2):
        return torch.randn(*shape, generator=g) * scale

    state = {"model.embed_layer.emb.weight": r(d, p), "model.norm.weight": 1 + r(d), "model.norm.bias": r(d),
             "lm_heads.0.weight": r(p, d)}
    for i in range(cfg["num_hidden_layers"]):
        pre = f"model.layers.{i}."
        for name in "qkv":
            state[pre + f"self_attn.{name}_proj.weight"] = r(d, d)
            state[pre + f"self_attn.{name}_proj.bias"] = r(d)
        state[pre + "self_attn.o_proj.weight"] = r(d, d)
        state[pre + "ffn_layer.gate_proj.weight"] = r(f, d)
        state[pre + "ffn_layer.up_proj.weight"] = r(f, d)
        state[pre + "ffn_layer.down_proj.weight"] = r(d, f)
        for norm in ("norm1", "norm2"):
            state[pre + f"{norm}.weight"] = 1 + r(d)
            state[pre + f"{norm}.bias"] = r(d)
    return state


def _timer_reference(state, cfg, series):
    """series (B, L) → next-patch predictions (B, N, P)."""
    p, d, h = cfg["input_token_len"], cfg["hidden_size"], cfg["num_attention_heads"]
    hd = d // h
    x = series.unfold(-1, p, p) @ state["model.embed_layer.emb.weight"].T
    b, n, _ = x.shape
    inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2).float() / hd))
    freqs = torch.outer(torch.arange(n).float(), inv)
    cos, sin = torch.cat((freqs, freqs), -1).cos(), torch.cat((freqs, freqs), -1).sin()

    def rot(t):
        t1, t2 = t[..., : hd // 2], t[..., hd // 2:]
        return t * cos + torch.cat((-t2, t1), -1) * sin

    for i in range(cfg["num_hidden_layers"]):
        s = {k[len(f"model.layers.{i}."):]: v for k, v in state.items() if k.startswith(f"model.layers.{i}.")}

        def heads(name):
            return F.linear(x, s[f"self_attn.{name}_proj.weight"], s[f"self_attn.{name}_proj.bias"]).view(
                b, n, h, hd).transpose(1, 2)

        q, k, v = rot(heads("q")), rot(heads("k")), heads("v")
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, n, d)
        x = F.layer_norm(x + a @ s["self_attn.o_proj.weight"].T, (d,), s["norm1.weight"], s["norm1.bias"])
        m = (F.silu(x @ s["ffn_layer.gate_proj.weight"].T) * (x @ s["ffn_layer.up_proj.weight"].T))
        x = F.layer_norm(x + m @ s["ffn_layer.down_proj.weight"].T, (d,), s["norm2.weight"], s["norm2.bias"])
    x = F.layer_norm(x, (d,), state["model.norm.weight"], state["model.norm.bias"])
    return x @ state["lm_heads.0.weight"].T


def _write_timer_dir(tmp_path, cfg=HF_CONFIG):
    state = _random_timer_state(cfg)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    save_file(state, tmp_path / "model.safetensors")
    return state


def test_against_timer_checkpoint_layout(tmp_path):
    state = _write_timer_dir(tmp_path)
    model = zoo.load_pretrained(tmp_path, instance_norm=False)
    assert isinstance(model, TimerXL) and model.config.channel_independent and not model.config.variable_bias
    series = torch.randn(3, 5 * P)
    want = _timer_reference(state, HF_CONFIG, series)  # (B, N, P)
    with torch.no_grad():
        got = model(series[..., None])[..., 0].reshape(3, 5, P)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # the univariate checkpoint on 3 variables: each variable exactly as if it were alone
    multi = torch.randn(2, 5 * P, 3)
    with torch.no_grad():
        got = model(multi)
    for c in range(3):
        want = _timer_reference(state, HF_CONFIG, multi[..., c]).reshape(2, 5 * P)
        torch.testing.assert_close(got[..., c], want, atol=1e-5, rtol=1e-5)


def test_timer_checkpoint_with_instance_norm_denormalises_the_forecast(tmp_path):
    _write_timer_dir(tmp_path)
    model = zoo.load_pretrained(tmp_path)
    series = torch.randn(2, 4 * P, 2)
    with torch.no_grad():
        torch.testing.assert_close(model(series * 5 + 3), model(series) * 5 + 3, atol=1e-4, rtol=1e-4)


def test_timer_configs_it_cannot_reproduce_are_refused(tmp_path):
    _write_timer_dir(tmp_path, {**HF_CONFIG, "output_token_lens": [P, 2 * P]})
    with pytest.raises(ValueError, match=r"output_token_lens \[8, 16\]: only one head of input_token_len \(8\)"):
        zoo.load_pretrained(tmp_path)
    state = _random_timer_state(HF_CONFIG)
    state["model.layers.0.extra.weight"] = torch.zeros(1)
    (tmp_path / "config.json").write_text(json.dumps(HF_CONFIG))
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(zoo.loading.CheckpointError, match=r"unexpected keys \(1\): blocks.0.extra.weight"):
        zoo.load_pretrained(tmp_path)
