"""RoPE frequencies and scaling against transformers' rope initialisation functions; float and per-band positions."""

import math

import pytest
import torch
from transformers import LlamaConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from zoo.positions import RopeScaling, RotaryEmbedding, apply_rotary, band_position_ids, rope_inv_freq

HEAD_DIM = 64


def _hf(rope: dict, max_pos: int = 4096):
    theta = 500000.0
    cfg = LlamaConfig(hidden_size=HEAD_DIM * 4, num_attention_heads=4, max_position_embeddings=max_pos,
                      rope_parameters={"rope_theta": theta, **rope})
    return cfg, theta


@pytest.mark.parametrize(
    "hf_rope, zoo_scaling, seq_len",
    [
        ({"rope_type": "default"}, None, None),
        ({"rope_type": "linear", "factor": 4.0}, {"type": "linear", "factor": 4.0}, None),
        ({"rope_type": "dynamic", "factor": 2.0}, {"type": "dynamic", "factor": 2.0,
                                                   "original_max_position_embeddings": 4096}, 16384),
        ({"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 4096},
         {"type": "yarn", "factor": 8.0, "original_max_position_embeddings": 4096}, None),
        ({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 2048, "beta_fast": 16,
          "beta_slow": 2, "truncate": False},
         {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 2048, "beta_fast": 16, "beta_slow": 2,
          "truncate": False}, None),
    ],
)
def test_inv_freq_and_attention_factor_match_transformers(hf_rope, zoo_scaling, seq_len):
    cfg, theta = _hf(hf_rope)
    fn = ROPE_INIT_FUNCTIONS[hf_rope["rope_type"]] if hf_rope["rope_type"] != "default" else None
    if fn is None:
        want = 1.0 / theta ** (torch.arange(0, HEAD_DIM, 2).float() / HEAD_DIM)
        want_factor = 1.0
    else:
        want, want_factor = fn(cfg, "cpu", seq_len) if seq_len else fn(cfg, "cpu")
    got, got_factor = rope_inv_freq(HEAD_DIM, theta, RopeScaling.from_dict(zoo_scaling), seq_len)
    torch.testing.assert_close(got, want.float(), atol=0, rtol=1e-6)
    assert got_factor == pytest.approx(want_factor, rel=1e-6)


def test_static_ntk_divides_lowest_frequency_by_factor_and_keeps_highest():
    base, _ = rope_inv_freq(HEAD_DIM, 10000.0)
    ntk, _ = rope_inv_freq(HEAD_DIM, 10000.0, RopeScaling(type="ntk", factor=8.0))
    assert ntk[0] == base[0]
    assert ntk[-1].item() == pytest.approx(base[-1].item() / 8.0, rel=1e-5)
    assert torch.all(ntk <= base)


def test_yarn_keeps_high_frequencies_and_interpolates_low_ones():
    base, _ = rope_inv_freq(HEAD_DIM, 10000.0)
    yarn, factor = rope_inv_freq(HEAD_DIM, 10000.0, RopeScaling(type="yarn", factor=4.0,
                                                                original_max_position_embeddings=512))
    torch.testing.assert_close(yarn[:4], base[:4])
    torch.testing.assert_close(yarn[-4:], base[-4:] / 4.0)
    assert factor == pytest.approx(0.1 * math.log(4.0) + 1.0)


def test_rotary_matches_transformers_llama_rotary_embedding():
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

    cfg, theta = _hf({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024})
    hf_rope = LlamaRotaryEmbedding(cfg)
    zoo_rope = RotaryEmbedding(HEAD_DIM, theta, {"type": "yarn", "factor": 4.0,
                                                 "original_max_position_embeddings": 1024})
    pos = torch.arange(3000)[None]
    x = torch.randn(1, 2, 3000, HEAD_DIM)
    cos_h, sin_h = hf_rope(x, pos)
    cos_z, sin_z = zoo_rope(pos)
    torch.testing.assert_close(cos_z, cos_h, atol=1e-5, rtol=1e-5)
    q_h, k_h = apply_rotary_pos_emb(x, x, cos_h, sin_h)
    torch.testing.assert_close(apply_rotary(x, cos_z, sin_z), q_h, atol=1e-5, rtol=1e-5)


def test_float_positions_interpolate_between_integer_rotations():
    """V2PE needs fractional positions: a step of 1/4 four times lands exactly on the next integer position."""
    rope = RotaryEmbedding(16)
    frac = rope(torch.tensor([[0.0, 0.25, 0.5, 0.75, 1.0]]))[0]
    whole = rope(torch.tensor([[0.0, 1.0]]))[0]
    torch.testing.assert_close(frac[0, [0, 4]], whole[0])
    assert not torch.allclose(frac[0, 1], whole[0, 0])


def test_relative_property_holds_for_float_positions():
    """q·k after rotation depends only on the position difference, also for non-integer positions."""
    rope = RotaryEmbedding(32)
    q, k = torch.randn(1, 1, 1, 32), torch.randn(1, 1, 1, 32)

    def score(pq, pk):
        cq, sq = rope(torch.tensor([[pq]]))
        ck, sk = rope(torch.tensor([[pk]]))
        return (apply_rotary(q, cq, sq) * apply_rotary(k, ck, sk)).sum()

    torch.testing.assert_close(score(10.3, 4.05), score(106.3, 100.05), atol=1e-4, rtol=1e-4)


def test_band_positions_rotate_only_low_frequency_pairs_with_remapped_positions():
    rope = RotaryEmbedding(16)  # 8 frequency pairs
    orig = torch.arange(10.0)[None]
    remapped = orig / 4
    pos = band_position_ids(orig, remapped, start_dim=5, n_freq=8)
    assert pos.shape == (1, 10, 8)
    cos, _ = rope(pos)
    cos_orig, _ = rope(orig)
    cos_remap, _ = rope(remapped)
    torch.testing.assert_close(cos[..., :5], cos_orig[..., :5])  # high-frequency pairs keep positions
    torch.testing.assert_close(cos[..., 5:8], cos_remap[..., 5:8])  # low-frequency pairs take remapped ones
    torch.testing.assert_close(cos[..., 8 + 5:], cos_remap[..., 8 + 5:])


def test_bad_scaling_config_names_the_field():
    with pytest.raises(ValueError, match="rope_scaling.type must be one of"):
        RopeScaling.from_dict({"type": "yarnn", "factor": 2})
    with pytest.raises(ValueError, match="needs original_max_position_embeddings"):
        RopeScaling.from_dict({"type": "yarn", "factor": 2})
    with pytest.raises(ValueError, match=r"unknown keys \['fator'\]"):
        RopeScaling.from_dict({"type": "linear", "fator": 2})


# ---- positions under bf16 ("When Precision Meets Position: BFloat16 Breaks Down RoPE in Long-Context Training") ----

FAR = torch.tensor([[0.0, 1.0, 4097.0, 65_537.0, 100_000.0, 100_001.0]])


def test_bf16_positions_would_drift_and_the_zoos_do_not():
    rope = RotaryEmbedding(HEAD_DIM, 500000.0)
    want_cos, want_sin = rope(FAR)
    # what a bf16 computation gives: bf16 steps by 512 at 100,000 and rounds every frequency to 8 bits
    drift = (FAR.bfloat16()[..., None] * rope.inv_freq.bfloat16()).float().cos()
    assert (drift - want_cos[..., : HEAD_DIM // 2]).abs().max() > 0.5
    # the zoo's under each way a model is put in bf16: cast (bf16-true), autocast (bf16-mixed), bf16 default dtype
    cast = RotaryEmbedding(HEAD_DIM, 500000.0).to(torch.bfloat16)
    assert cast.inv_freq.dtype == torch.float32
    for run in (lambda: cast(FAR), lambda: _autocast(rope, FAR), lambda: _default_bf16(cast, FAR)):
        cos, sin = run()
        assert cos.dtype == sin.dtype == torch.float32
        assert torch.equal(cos, want_cos) and torch.equal(sin, want_sin)


def _autocast(rope, pos):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return rope(pos)


def _default_bf16(rope, pos):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # what Lightning's bf16-true does around forward
    try:
        return rope(pos)
    finally:
        torch.set_default_dtype(previous)


def test_rotary_frequencies_follow_devices_but_stay_fp32_in_a_bf16_model():
    from zoo.lm import CausalLM, LMConfig

    lm = CausalLM(LMConfig(vocab_size=50, d_model=32, n_layer=1, n_head=2)).to(torch.bfloat16)
    assert lm.embed.weight.dtype == torch.bfloat16 and lm.rotary.inv_freq.dtype == torch.float32
    lm.half()
    assert lm.rotary.inv_freq.dtype == torch.float32
    fresh = RotaryEmbedding(lm.config.head_dim, lm.config.rope_theta)
    assert torch.equal(lm.rotary.inv_freq, fresh.inv_freq)


def test_half_precision_position_ids_are_refused():
    rope = RotaryEmbedding(HEAD_DIM)
    with pytest.raises(ValueError, match="position_ids are torch.bfloat16, which cannot hold positions exactly"):
        rope(FAR.bfloat16())
