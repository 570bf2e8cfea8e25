"""Every published architecture builds on the meta device with its published parameter count (within 1%), from its
registry name and from its YAML through ``python -m zoo.plan --params``; exact oracles where one exists offline
(transformers' Llama for GENERator here; the original HyenaDNA checkpoint layout, loaded through
``zoo.create_model(name, pretrained=…)``, in tests/modalities/genomic/test_hyenadna.py)."""

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
