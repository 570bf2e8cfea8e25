"""Every published architecture builds on the meta device with its published parameter count (within 1%), from its
registry name and from its YAML through ``python -m zoo.plan --params``; exact oracles where one exists offline
(transformers' Llama for GENERator, the original HyenaDNA checkpoint layout); released-layout weights load through
``zoo.create_model(name, pretrained=…)`` and the wrong architecture is refused by name."""

import json
import math

import pytest
import torch

import zoo
from zoo.plan import main as plan_main
from zoo.published import PUBLISHED


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_parameter_count_on_the_meta_device(name, capsys):
    entry = PUBLISHED[name]
    model = zoo.create_model(name, device="meta")
    assert all(p.is_meta for p in model.parameters())
    count = sum(p.numel() for p in model.parameters())
    if name == "lc-plm":
        count += model.embed.weight.numel()  # LC-PLM's head is untied; the zoo's Caduceus ties it to the embedding
    assert abs(count - entry.parameters) <= 0.01 * entry.parameters, (
        f"{name}: {count:,} parameters vs published {entry.parameters:,} ({entry.source})")
    plan_main(["--config", entry.config, "--params"])
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed == f"parameters: {sum(p.numel() for p in model.parameters())}"


def test_generator_count_equals_transformers_llama_of_the_released_config():
    from transformers import LlamaConfig, LlamaForCausalLM

    hf_config = LlamaConfig(vocab_size=4128, hidden_size=2048, intermediate_size=5632, num_hidden_layers=26,
                            num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=16384,
                            rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=False)
    with torch.device("meta"):
        hf = LlamaForCausalLM(hf_config)
    ours = zoo.create_model("generator-eukaryote-1.2b", device="meta")
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in hf.parameters()) == 1_162_061_824


def _hyenadna_original(d, n_layer, l_max, emb=5, order=64, seed=0):
    """config.json and weights.ckpt state of the original layout (hyena-dna's standalone_hyenadna.py key names),
    random values; and how many of its tensors are parameters (buffers z, t, deltas excluded; the Sin freq shared by
    the filter MLP is one parameter stored under three keys)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g) * 0.1  # noqa: E731
    d_inner = 4 * d
    st = {"model.backbone.embeddings.word_embeddings.weight": r(16, d),
          "model.backbone.ln_f.weight": 1 + r(d), "model.backbone.ln_f.bias": r(d)}
    t = torch.linspace(0, 1, l_max)[None, :, None]
    w = 2 * math.pi * torch.linspace(0, l_max - 1, l_max)[None, :, None] / l_max
    f = torch.linspace(1e-4, (emb - 1) // 2 - 1, (emb - 1) // 2)[None, None]
    z = torch.exp(-1j * f * w)
    z = torch.cat([t, z.real, z.imag], dim=-1)
    params = 16 * d + 2 * d
    for i in range(n_layer):
        p = f"model.backbone.layers.{i}."
        layer = {p + "norm1.weight": 1 + r(d), p + "norm1.bias": r(d), p + "norm2.weight": 1 + r(d),
                 p + "norm2.bias": r(d), p + "mlp.fc1.weight": r(d_inner, d), p + "mlp.fc1.bias": r(d_inner),
                 p + "mlp.fc2.weight": r(d, d_inner), p + "mlp.fc2.bias": r(d),
                 p + "mixer.in_proj.weight": r(3 * d, d), p + "mixer.in_proj.bias": r(3 * d),
                 p + "mixer.out_proj.weight": r(d, d), p + "mixer.out_proj.bias": r(d),
                 p + "mixer.short_filter.weight": r(3 * d, 1, 3), p + "mixer.short_filter.bias": r(3 * d),
                 p + "mixer.filter_fn.bias": r(d)}
        for j, shape in ((0, (order, emb)), (2, (order, order)), (4, (order, order)), (6, (d, order))):
            layer[p + f"mixer.filter_fn.implicit_filter.{j}.weight"] = r(*shape)
            if j < 6:
                layer[p + f"mixer.filter_fn.implicit_filter.{j}.bias"] = r(shape[0])
        params += sum(v.numel() for v in layer.values()) + order  # + the one shared freq
        freq = 10 + r(1, order)
        for j in (1, 3, 5):
            layer[p + f"mixer.filter_fn.implicit_filter.{j}.freq"] = freq
        layer.update({p + "mixer.filter_fn.pos_emb.z": z.clone(), p + "mixer.filter_fn.pos_emb.t": t.clone(),
                      p + "mixer.filter_fn.modulation.deltas": torch.linspace(math.log(1e-2) / 1.5,
                                                                               math.log(1e-2) / 0.3, d)[None, None]})
        st.update(layer)
    config = {"d_model": d, "n_layer": n_layer, "d_inner": d_inner, "vocab_size": 12, "pad_vocab_size_multiple": 8,
              "resid_dropout": 0.0, "embed_dropout": 0.1, "layer_norm_epsilon": 1e-5,
              "layer": {"_name_": "hyena", "emb_dim": emb, "filter_order": order, "local_order": 3, "l_max": l_max,
                        "modulate": True, "w": 10, "lr": 6e-4, "wd": 0.0, "lr_pos_emb": 0.0}}
    return config, st, params


@pytest.mark.parametrize("name, d, n_layer, l_max", [("hyenadna-tiny-1k", 128, 2, 1026),
                                                     ("hyenadna-small-32k", 256, 4, 32770)])
def test_hyenadna_counts_equal_the_original_layout_and_its_weights_load(tmp_path, name, d, n_layer, l_max):
    config, state, params = _hyenadna_original(d, n_layer, l_max)
    model = zoo.create_model(name, device="meta")
    assert sum(p.numel() for p in model.parameters()) == params
    (tmp_path / "config.json").write_text(json.dumps(config))
    torch.save({"state_dict": state, "global_step": 1}, tmp_path / "weights.ckpt")
    loaded = zoo.create_model(name, pretrained=str(tmp_path))
    torch.testing.assert_close(loaded.embed.weight, state["model.backbone.embeddings.word_embeddings.weight"])
    other = "hyenadna-small-32k" if name == "hyenadna-tiny-1k" else "hyenadna-tiny-1k"
    with pytest.raises(ValueError, match=rf"holds a CausalLM of {params:,} parameters, not {other} \(CausalLM"):
        zoo.create_model(other, pretrained=str(tmp_path))
