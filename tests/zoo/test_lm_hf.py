"""zoo's Qwen2/Llama/Mamba LM against transformers: logits (fp32, ≤ 1e-4), greedy generation with KV cache,
save/load."""

import json

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, MambaConfig, MambaForCausalLM, Qwen2Config, Qwen2ForCausalLM

import zoo
from zoo.lm import CausalLM, LMConfig
from zoo.loading import CheckpointError

VOCAB = 101


def _tiny_hf(kind: str, **extra):
    common = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=512, bos_token_id=None, eos_token_id=None,
                  pad_token_id=None)
    common.update(extra)
    if kind == "qwen2":
        return Qwen2ForCausalLM(Qwen2Config(**common)).eval()
    return LlamaForCausalLM(LlamaConfig(**common)).eval()


HF_CASES = {
    "qwen2": ("qwen2", {}),
    "qwen2_tied": ("qwen2", {"tie_word_embeddings": True}),
    "llama": ("llama", {}),
    "llama_bias_yarn": ("llama", {"attention_bias": True, "rope_parameters": {
        "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 128, "rope_theta": 10000.0}}),
}


@pytest.fixture(params=list(HF_CASES))
def hf_dir(request, tmp_path):
    kind, extra = HF_CASES[request.param]
    hf = _tiny_hf(kind, **extra)
    hf.save_pretrained(tmp_path)
    return hf, tmp_path


def test_against_hf_logits(hf_dir):
    hf, path = hf_dir
    model = zoo.load_pretrained(path)
    assert not model.training
    ids = torch.randint(0, VOCAB, (2, 300))
    with torch.no_grad():
        want = hf(ids).logits
        got = model(input_ids=ids).logits
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_against_hf_greedy_generate_with_kv_cache(hf_dir):
    hf, path = hf_dir
    model = zoo.load_pretrained(path)
    prompt = torch.randint(0, VOCAB, (2, 12))
    want = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=24, do_sample=False)
    got = model.generate(prompt, max_new_tokens=24)
    assert torch.equal(got, want)


def test_kv_cache_steps_equal_full_forward():
    model = zoo.create_model("lm-tiny", vocab_size=VOCAB, n_kv_head=2).eval()
    ids = torch.randint(0, VOCAB, (1, 40))
    from zoo.lm import KVCache

    with torch.no_grad():
        full = model(ids).logits
        cache = KVCache.empty(len(model.blocks))
        parts = [model(ids[:, :25], cache=cache).logits] + [model(ids[:, i : i + 1], cache=cache).logits
                                                             for i in range(25, 40)]
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", ["qwen2", "llama"])
def test_save_pretrained_round_trips_through_transformers(tmp_path, family):
    cfg = LMConfig(vocab_size=VOCAB, d_model=64, n_layer=2, n_head=4, n_kv_head=2, d_ff=96, family=family,
                   qkv_bias=family == "qwen2", tie_word_embeddings=family == "qwen2")
    model = CausalLM(cfg).eval()
    # max_shard_size small enough to force a sharded checkpoint with an index
    model.save_pretrained(tmp_path, max_shard_size="40KB")
    assert (tmp_path / "model.safetensors.index.json").exists()
    hf = (Qwen2ForCausalLM if family == "qwen2" else LlamaForCausalLM).from_pretrained(tmp_path).eval()
    again = zoo.load_pretrained(tmp_path)
    ids = torch.randint(0, VOCAB, (1, 50))
    with torch.no_grad():
        torch.testing.assert_close(hf(ids).logits, model(ids).logits, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(again(ids).logits, model(ids).logits, atol=0, rtol=0)


def test_packed_documents_match_separate_forwards():
    """A packed row with segment ids gives each document exactly the logits it gets alone."""
    model = zoo.create_model("lm-tiny", vocab_size=VOCAB).eval()
    a, b = torch.randint(0, VOCAB, (1, 30)), torch.randint(0, VOCAB, (1, 45))
    seg = torch.tensor([[0] * 30 + [1] * 45])
    with torch.no_grad():
        packed = model(torch.cat((a, b), 1), segment_ids=seg).logits
        torch.testing.assert_close(packed[:, :30], model(a).logits, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(packed[:, 30:], model(b).logits, atol=1e-5, rtol=1e-5)


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    from safetensors.torch import load_file, save_file

    hf = _tiny_hf("qwen2")
    hf.save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    state.pop("model.layers.1.mlp.up_proj.weight")
    state["model.layers.1.mlp.extra.weight"] = torch.zeros(1)
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError) as err:
        zoo.load_pretrained(tmp_path)
    msg = str(err.value)
    assert "missing keys (1): blocks.1.mlp.up_proj.weight" in msg
    assert "unexpected keys (1): blocks.1.mlp.extra.weight" in msg


def test_shape_mismatch_and_bad_directories_raise(tmp_path):
    hf = _tiny_hf("llama")
    hf.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["intermediate_size"] = 128
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"shape mismatches .*mlp.down_proj.weight: checkpoint \(64, 96\)"):
        zoo.load_pretrained(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(CheckpointError, match="has no config.json"):
        zoo.load_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="nope/model.ckpt: no such file or directory"):
        zoo.load_pretrained(tmp_path / "nope" / "model.ckpt")


def test_pytorch_bin_loads_with_weights_only(tmp_path):
    hf = _tiny_hf("qwen2")
    hf.config.save_pretrained(tmp_path)
    torch.save(hf.state_dict(), tmp_path / "pytorch_model.bin")
    model = zoo.load_pretrained(tmp_path)
    ids = torch.randint(0, VOCAB, (1, 20))
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, hf(ids).logits, atol=1e-4, rtol=1e-4)
    # a pickle that is not plain tensors is refused by weights_only=True
    torch.save({"x": object()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"pytorch_model.bin: it pickles an object of type object, which the "
                                              r"safe loader \(weights_only=True\) refuses"):
        zoo.load_pretrained(tmp_path)


def test_unknown_override_is_named(tmp_path):
    _tiny_hf("qwen2").save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"unknown override\(s\) \['rope_scalling'\]"):
        zoo.load_pretrained(tmp_path, rope_scalling={"type": "yarn"})
    model = zoo.load_pretrained(tmp_path, rope_scaling={"type": "linear", "factor": 2.0})
    assert model.rotary.scaling.type == "linear" and model.rotary.scaling.factor == 2.0


def test_sink_lm_cache_matches_full_forward_and_has_no_hf_layout(tmp_path):
    from zoo.lm import KVCache

    model = zoo.create_model("lm-tiny", vocab_size=VOCAB, attn_sink=True).eval()
    with torch.no_grad():
        for blk in model.blocks:
            blk.mixer.sink_logits.normal_()
        ids = torch.randint(0, VOCAB, (1, 30))
        full = model(ids).logits
        cache = KVCache.empty(len(model.blocks))
        steps = [model(ids[:, :20], cache=cache).logits] + [model(ids[:, i:i + 1], cache=cache).logits
                                                             for i in range(20, 30)]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="attention sinks / extra mixer_kwargs have no Qwen2/Llama"):
        model.save_pretrained(tmp_path)


# ---- transformers' calling conventions: attention_mask, padding, eos/pad, sampling ------------------------------


def _left_pad(prompts, pad=0):
    n = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), n), pad, dtype=torch.long)
    mask = torch.zeros(len(prompts), n, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, n - len(p):], mask[i, n - len(p):] = p, 1
    return ids, mask


@pytest.fixture(params=["qwen2", "llama"])
def hf_pair(request, tmp_path):
    torch.manual_seed(0)
    hf = _tiny_hf(request.param)
    hf.save_pretrained(tmp_path)
    return hf, zoo.load_pretrained(tmp_path)


def test_against_hf_left_padded_batch_generate(hf_pair):
    hf, model = hf_pair
    prompts = [torch.randint(1, VOCAB, (n,)) for n in (9, 4, 13)]
    ids, mask = _left_pad(prompts)
    want = hf.generate(ids, attention_mask=mask, max_new_tokens=16, do_sample=False, pad_token_id=0)
    got = model.generate(ids, attention_mask=mask, max_new_tokens=16)
    assert torch.equal(got, want)
    # and each row is what it generates alone, without padding
    for i, p in enumerate(prompts):
        alone = model.generate(p[None], max_new_tokens=16)
        assert torch.equal(got[i, ids.shape[1]:], alone[0, len(p):])


def test_against_hf_padded_forward_logits_on_real_tokens(hf_pair):
    hf, model = hf_pair
    prompts = [torch.randint(1, VOCAB, (n,)) for n in (20, 7)]
    left, left_mask = _left_pad(prompts)
    right = torch.zeros_like(left)
    right_mask = torch.zeros_like(left_mask)
    for i, p in enumerate(prompts):
        right[i, :len(p)], right_mask[i, :len(p)] = p, 1
    with torch.no_grad():
        got_left = model(left, attention_mask=left_mask).logits
        got_right = model(right, attention_mask=right_mask).logits
        pos = (left_mask.cumsum(-1) - 1).clamp(min=0)  # transformers' generate positions; its forward needs them given
        want_left = hf(left, attention_mask=left_mask, position_ids=pos).logits
        want_right = hf(right, attention_mask=right_mask).logits
    for i, p in enumerate(prompts):
        n = left.shape[1]
        torch.testing.assert_close(got_left[i, n - len(p):], want_left[i, n - len(p):], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(got_right[i, :len(p)], want_right[i, :len(p)], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(got_left[i, n - len(p):], got_right[i, :len(p)], atol=1e-5, rtol=1e-5)


def test_against_hf_finished_rows_emit_pad_token(hf_pair):
    hf, model = hf_pair
    ids, mask = _left_pad([torch.randint(1, VOCAB, (n,)) for n in (6, 10)])
    free = model.generate(ids, attention_mask=mask, max_new_tokens=12)
    eos = int(free[0, ids.shape[1] + 2])  # row 0 emits it at step 3, so it finishes early
    for pad in (7, None):  # None: transformers pads with the eos id
        want = hf.generate(ids, attention_mask=mask, max_new_tokens=12, do_sample=False, eos_token_id=eos,
                           pad_token_id=pad if pad is not None else eos)
        got = model.generate(ids, attention_mask=mask, max_new_tokens=12, eos_token_id=eos, pad_token_id=pad)
        assert torch.equal(got, want)
        assert int(got[0, ids.shape[1] + 3]) == (pad if pad is not None else eos)


def test_right_padded_generate_is_refused(hf_pair):
    _, model = hf_pair
    ids = torch.randint(1, VOCAB, (2, 6))
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    with pytest.raises(ValueError, match=r"attention_mask has padding at the end of a row: .* left-pad the prompts"):
        model.generate(ids, attention_mask=mask, max_new_tokens=3)
    with pytest.raises(ValueError, match=r"attention_mask must be \(2, 6\) like the prompt, got \(2, 5\)"):
        model.generate(ids, attention_mask=mask[:, :5], max_new_tokens=3)


def test_bad_sampling_arguments_are_named():
    model = zoo.create_model("lm-tiny", vocab_size=VOCAB, n_layer=1).eval()
    ids = torch.randint(0, VOCAB, (1, 4))
    for kwargs, msg in ((dict(top_p=0.0), r"top_p must lie in \(0, 1\] or be None, got 0.0"),
                        (dict(top_k=0), r"top_k must be an int ≥ 1 or None, got 0"),
                        (dict(temperature=0.0), r"temperature must be > 0 when sampling, got 0.0"),
                        (dict(max_new_tokens=-1), r"max_new_tokens must be an int ≥ 0, got -1")):
        with pytest.raises(ValueError, match=msg):
            model.generate(ids, **{"max_new_tokens": 2, "do_sample": True, **kwargs})


def test_top_p_filter_matches_its_definition():
    from zoo.lm import filter_logits

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 50, generator=g) * 3
    for top_p in (0.05, 0.5, 0.9, 0.999):
        kept = filter_logits(logits, top_p=top_p).isfinite()
        for row, keep in zip(logits.softmax(-1), kept):
            # the definition: walk the tokens from the most likely, stop once the kept mass reaches top_p
            want, mass = torch.zeros_like(keep), 0.0
            for j in row.argsort(descending=True).tolist():
                want[j] = True
                mass += float(row[j])
                if mass >= top_p:
                    break
            assert torch.equal(keep, want)
    both = filter_logits(logits, top_k=3, top_p=0.999).isfinite()
    assert both.sum(-1).tolist() == [3] * 6


def test_top_p_sampling_draws_only_from_the_nucleus(hf_pair):
    _, model = hf_pair
    ids = torch.randint(1, VOCAB, (4, 5))
    g = torch.Generator().manual_seed(1)
    out = model.generate(ids, max_new_tokens=1, do_sample=True, top_p=0.3, temperature=0.7, generator=g)
    again = model.generate(ids, max_new_tokens=1, do_sample=True, top_p=0.3, temperature=0.7,
                           generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, again)  # seeded: reproducible
    from zoo.lm import filter_logits

    with torch.no_grad():
        nucleus = filter_logits(model(ids).logits[:, -1] / 0.7, top_p=0.3).isfinite()
    assert bool(nucleus.gather(1, out[:, -1:]).all())


def test_mamba_lm_refuses_left_padding():
    model = CausalLM(LMConfig(vocab_size=VOCAB, d_model=32, n_layer=1, layout="mamba", mlp="none")).eval()
    ids, mask = _left_pad([torch.randint(1, VOCAB, (n,)) for n in (5, 3)])
    with pytest.raises(ValueError, match=r"attention_mask has padding before real tokens, but this stack has "
                                         r"\['Mamba'\] layers"):
        model(ids, attention_mask=mask)
    with pytest.raises(ValueError, match=r"this stack has \['Mamba'\] layers"):
        model.generate(ids, attention_mask=mask, max_new_tokens=2)
    # right padding cannot reach the real tokens of a causal recurrence: accepted, and exact on them
    right = torch.tensor([[1, 2, 3, 0, 0]])
    with torch.no_grad():
        torch.testing.assert_close(model(right, attention_mask=(right > 0).long()).logits[:, :3],
                                   model(right[:, :3]).logits, atol=1e-5, rtol=1e-5)


def test_packed_documents_with_padding_match_the_unpadded_packed_row():
    model = zoo.create_model("lm-tiny", vocab_size=VOCAB, n_layer=2).eval()
    ids = torch.randint(1, VOCAB, (1, 20))
    seg = torch.tensor([[0] * 8 + [1] * 12])
    padded = torch.cat((torch.zeros(1, 5, dtype=torch.long), ids), 1)
    mask = torch.tensor([[0] * 5 + [1] * 20])
    with torch.no_grad():
        want = model(ids, segment_ids=seg).logits
        got = model(padded, segment_ids=torch.cat((torch.zeros(1, 5, dtype=torch.long), seg), 1),
                    attention_mask=mask).logits
    torch.testing.assert_close(got[:, 5:], want, atol=1e-5, rtol=1e-5)


# ---- Mamba (MambaForCausalLM): every MambaConfig field that shapes the weights or the computation -----------------

# transformers' MambaModelTester.get_config (tests/models/mamba/test_modeling_mamba.py), its stray keys included:
# intermediate_size 32 is not expand (2) × hidden_size (32)
MAMBA_MODEL_TESTER = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, intermediate_size=32,
                          activation_function="silu", n_positions=512, type_vocab_size=16, use_cache=True,
                          bos_token_id=98, eos_token_id=98, pad_token_id=98, gradient_checkpointing=False,
                          tie_word_embeddings=True)
MAMBA_CASES = {
    "model_tester": MAMBA_MODEL_TESTER,
    "layout_fields": dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, expand=2, intermediate_size=48,
                          time_step_rank=5, conv_kernel=3, state_size=8, use_bias=True, use_conv_bias=False,
                          tie_word_embeddings=False, layer_norm_epsilon=1e-3, residual_in_fp32=False,
                          time_step_min=2e-3, time_step_max=0.05, time_step_floor=1e-3, time_step_scale=0.5,
                          time_step_init_scheme="constant", initializer_range=0.05, bos_token_id=None,
                          eos_token_id=None, pad_token_id=None),
}
# the config.json fields a round trip through zoo keeps (the rest are transformers' bookkeeping)
MAMBA_FIELDS = ["vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size", "expand", "state_size",
                "conv_kernel", "time_step_rank", "use_bias", "use_conv_bias", "hidden_act", "layer_norm_epsilon",
                "residual_in_fp32", "tie_word_embeddings", "time_step_min", "time_step_max", "time_step_floor",
                "time_step_scale", "time_step_init_scheme", "initializer_range", "rescale_prenorm_residual",
                "bos_token_id", "eos_token_id", "pad_token_id"]


def _tiny_mamba(**config):
    torch.manual_seed(0)
    hf = MambaForCausalLM(MambaConfig(use_mambapy=False, **config)).eval()
    with torch.no_grad():  # transformers initialises the biases to zero: make them count
        for name, p in hf.named_parameters():
            if name.endswith("bias") and "dt_proj" not in name:
                p.normal_(0, 0.1)
    return hf


@pytest.fixture(params=list(MAMBA_CASES))
def mamba_dir(request, tmp_path):
    hf = _tiny_mamba(**MAMBA_CASES[request.param])
    hf.save_pretrained(tmp_path / "hf")
    return hf, tmp_path


def test_against_hf_mamba_logits_generation_and_round_trip(mamba_dir):
    hf, path = mamba_dir
    model = zoo.load_pretrained(path / "hf")
    mixer = model.blocks[0].mixer
    assert (mixer.d_inner, mixer.dt_rank, mixer.d_conv, mixer.d_state) == (
        hf.config.intermediate_size, hf.config.time_step_rank, hf.config.conv_kernel, hf.config.state_size)
    ids = torch.randint(0, hf.config.vocab_size, (2, 40))
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, hf(ids).logits, atol=1e-4, rtol=1e-4)
    prompt = ids[:1, :6]
    want = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=12, do_sample=False,
                       eos_token_id=None)
    assert torch.equal(model.generate(prompt, max_new_tokens=12, eos_token_id=None), want)
    model.save_pretrained(path / "zoo")
    again = MambaForCausalLM.from_pretrained(path / "zoo").eval()
    with torch.no_grad():
        torch.testing.assert_close(again(ids).logits, hf(ids).logits, atol=1e-5, rtol=1e-5)
    assert {k: getattr(again.config, k) for k in MAMBA_FIELDS} == {k: getattr(hf.config, k) for k in MAMBA_FIELDS}


def test_mamba_config_fields_build_a_fresh_model_as_transformers_would():
    """The init-only fields (time_step_*, initializer_range) shape a fresh zoo model from the same config."""
    from zoo.lm import lm_config_from_hf

    hf_cfg = {**MAMBA_CASES["layout_fields"], "model_type": "mamba"}
    model = CausalLM(lm_config_from_hf(hf_cfg))
    assert model.config.init_std == 0.05 and model.config.residual_in_fp32 is False
    for block in model.blocks:
        m = block.mixer
        assert torch.equal(m.dt_proj.weight, torch.full_like(m.dt_proj.weight, 0.5 / 5 ** 0.5))  # "constant"
        dt = torch.nn.functional.softplus(m.dt_proj.bias)
        assert float(dt.min()) >= 2e-3 * (1 - 1e-4) and float(dt.max()) <= 0.05 * (1 + 1e-4)
        assert torch.equal(m.A_log, torch.log(torch.arange(1, 9.0)).repeat(48, 1)) and bool((m.D == 1).all())
    floored = CausalLM(lm_config_from_hf({**hf_cfg, "time_step_min": 1e-5, "time_step_max": 2e-5}))
    dt = torch.nn.functional.softplus(floored.blocks[0].mixer.dt_proj.bias)
    torch.testing.assert_close(dt, torch.full_like(dt, 1e-3))  # clamped at time_step_floor
    # the LM's generic init (normal, zero bias) no longer wipes dt_proj: default scheme "random" is uniform ±1/√rank
    fresh = CausalLM(lm_config_from_hf({**hf_cfg, "time_step_init_scheme": "random"})).blocks[0].mixer
    assert float(fresh.dt_proj.weight.abs().max()) <= 0.5 / 5 ** 0.5 and float(fresh.dt_proj.bias.min()) < -3


@pytest.mark.parametrize("residual_in_fp32", [True, False])
def test_mamba_residual_in_fp32_keeps_the_stream_in_fp32_in_bfloat16(tmp_path, residual_in_fp32):
    hf = _tiny_mamba(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, residual_in_fp32=residual_in_fp32)
    hf.save_pretrained(tmp_path)
    model = zoo.load_pretrained(tmp_path, dtype=torch.bfloat16)
    hf = hf.to(torch.bfloat16)
    outs = []
    for block in model.blocks:
        block.register_forward_hook(lambda mod, args, out: outs.append(out))
    ids = torch.randint(0, VOCAB, (2, 30))
    with torch.no_grad():
        want = hf(ids, output_hidden_states=True)
        got = model(ids).logits
    for ours, theirs in zip(outs, want.hidden_states[:2]):  # transformers' hidden states after each layer
        assert ours.dtype == theirs.dtype == (torch.float32 if residual_in_fp32 else torch.bfloat16)
        torch.testing.assert_close(ours.float(), theirs.float(), atol=5e-2, rtol=5e-2)
    torch.testing.assert_close(got.float(), want.logits.float(), atol=5e-2, rtol=5e-2)


@pytest.mark.parametrize("field, value, message", [
    ("hidden_act", "gelu", "config.json hidden_act='gelu': zoo's Mamba mixer applies silu after its conv"),
    ("time_step_init_scheme", "xavier", "config.json time_step_init_scheme='xavier': zoo's Mamba mixer initialises "
                                        "dt_proj 'random' or 'constant'"),
])
def test_mamba_unsupported_config_values_are_refused(tmp_path, field, value, message):
    _tiny_mamba(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1).save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, field: value}))
    with pytest.raises(ValueError) as err:
        zoo.load_pretrained(tmp_path)
    assert str(err.value) == message


def test_mamba_mixer_d_inner_overrides_expand_and_bad_dt_init_is_refused():
    from zoo.mixers.mamba import Mamba

    m = Mamba(16, expand=2, d_inner=24, d_state=4)
    assert m.d_inner == 24 and m.expand == 2 and m.in_proj.weight.shape == (48, 16) and m.A_log.shape == (24, 4)
    assert Mamba(16, expand=3, d_state=4).d_inner == 48
    with pytest.raises(ValueError) as err:
        Mamba(16, dt_init="xavier")
    assert str(err.value) == "Mamba dt_init must be 'random' or 'constant', got 'xavier'"
