"""One declarative key-map idiom (zoo.keymaps.KeyMap), both directions, for every Hugging Face layout the zoo
writes; the layouts themselves are checked against transformers in the models' own tests."""

from __future__ import annotations

import pytest
import torch

from zoo.keymaps import KeyMap, prefixed
from zoo.lm import MAMBA_KEYS, QWEN2_KEYS, CausalLM, LMConfig

TABLE = KeyMap([("model.layers.{i}.self_attn", "blocks.{i}.mixer"), ("model.norm", "norm"), ("lm_head", "head")],
               name="toy", read_only=[("old.norm", "norm")], ignore=[r"inv_freq$"])


def test_a_rule_keeps_the_rest_of_the_key_and_the_layer_number():
    assert TABLE.to_zoo("model.layers.12.self_attn.q_proj.weight") == "blocks.12.mixer.q_proj.weight"
    assert TABLE.to_hf("blocks.12.mixer.q_proj.weight") == "model.layers.12.self_attn.q_proj.weight"
    assert TABLE.to_zoo("lm_head") == "head"  # the path itself, not only what continues it


def test_a_path_matches_whole_names_only():
    assert TABLE.to_zoo("model.normalizer.weight") == "model.normalizer.weight"  # not "model.norm" + "alizer"
    assert TABLE.to_zoo("model.layers.x.self_attn.weight") == "model.layers.x.self_attn.weight"


def test_unknown_keys_pass_through_on_read_and_are_refused_on_write():
    assert TABLE.to_zoo("something.else") == "something.else"  # the strict loader names it
    with pytest.raises(ValueError, match=r"weight 'blocks.0.mlp.weight' has no place in the toy layout"):
        TABLE.to_hf("blocks.0.mlp.weight")


def test_read_only_names_are_read_and_never_written_and_ignored_entries_dropped():
    state = {"old.norm.weight": torch.ones(1), "model.layers.0.self_attn.rotary_emb.inv_freq": torch.ones(1)}
    assert set(TABLE.state_to_zoo(state)) == {"norm.weight"}
    assert TABLE.to_hf("norm.weight") == "model.norm.weight"


def test_prefixed_nests_a_table_and_an_empty_rule_maps_the_prefix_itself():
    rules = prefixed([("layers.{i}.fc1", "blocks.{i}.up"), ("", "")], hf="model.audio", zoo="audio")
    assert rules == [("model.audio.layers.{i}.fc1", "audio.blocks.{i}.up"), ("model.audio", "audio")]
    table = KeyMap(rules, name="nested")
    assert table.to_zoo("model.audio.conv1.weight") == "audio.conv1.weight"
    assert table.to_zoo("model.audio.layers.3.fc1.bias") == "audio.blocks.3.up.bias"


def _lm(family: str) -> CausalLM:
    if family == "mamba":
        return CausalLM(LMConfig(vocab_size=32, d_model=16, n_layer=2, layout="mamba", mlp="none", family="mamba",
                                 mixer_kwargs={"mamba": {"d_state": 4}}))
    return CausalLM(LMConfig(vocab_size=32, d_model=16, n_layer=2, n_head=2, d_ff=32, family=family,
                             qkv_bias=family == "qwen2", tie_word_embeddings=False))


@pytest.mark.parametrize("family, table", [("qwen2", QWEN2_KEYS), ("llama", QWEN2_KEYS), ("mamba", MAMBA_KEYS)])
def test_every_lm_weight_goes_to_hf_and_back_to_its_own_name(family, table):
    sd = _lm(family).state_dict()
    hf = table.state_to_hf(sd)
    assert len(set(hf)) == len(sd)
    assert table.state_to_zoo(hf).keys() == sd.keys()


def test_composite_models_round_trip_their_whole_state():
    from zoo.modalities.audio.qwen2_audio import QWEN2_AUDIO_KEYS, Qwen2Audio, Qwen2AudioConfig
    from zoo.modalities.video.longva import LONGVA_KEYS, LongVA, LongVAConfig

    for model, table in ((LongVA(LongVAConfig()), LONGVA_KEYS), (Qwen2Audio(Qwen2AudioConfig()), QWEN2_AUDIO_KEYS)):
        sd = model.state_dict()
        hf = table.state_to_hf(sd)
        assert len(set(hf)) == len(sd) and table.state_to_zoo(hf).keys() == sd.keys(), table.name
