"""One model protocol (zoo.registry.ZooModel, register_architecture) and one Lightning base module (zoo.module)."""

from __future__ import annotations

import pytest
import torch

from zoo.lm import CausalLM, LMConfig
from zoo.loading import load_pretrained
from zoo.module import MODEL_PREFIX, ZOO_MODEL_KEY, ZooModule
from zoo.plugins import MODEL_GROUP, discover
from zoo.published import PUBLISHED
from zoo.registry import ARCHITECTURES, HF_FAMILIES, ZOO_MODEL_METHODS, HFExport, register_architecture

TINY_LM = LMConfig(vocab_size=64, d_model=32, n_layer=2, n_head=2, d_ff=64, qkv_bias=True)


def test_register_architecture_refuses_a_class_missing_part_of_the_protocol_and_names_what():
    class Half(torch.nn.Module):
        arch = "half"

        def config_dict(self):
            return {}

    with pytest.raises(TypeError, match=r"Half does not implement the ZooModel protocol: missing from_config_dict, "
                                        r"from_hf, state_dict_from_hf, hf_model_types \(a tuple of str"):
        register_architecture(Half)
    assert "half" not in ARCHITECTURES


def test_every_architecture_implements_the_protocol_and_owns_exactly_its_hf_model_types():
    discover(MODEL_GROUP)
    owners = {}
    for name in ARCHITECTURES.names():
        cls = ARCHITECTURES.get(name)
        assert cls.arch == name
        assert all(callable(getattr(cls, m)) for m in ZOO_MODEL_METHODS), name
        owners.update({t: cls for t in cls.hf_model_types})
    assert {t: HF_FAMILIES.get(t) for t in HF_FAMILIES.names()} == owners
    assert {"causal_lm", "caduceus", "longva", "qwen2_audio", "timer_xl"} <= set(ARCHITECTURES.names())
    assert owners["qwen2"] is owners["llama"] is owners["mamba"] is CausalLM


def test_a_published_size_is_a_named_config_of_a_registered_architecture():
    discover(MODEL_GROUP)
    for entry in PUBLISHED.values():
        assert entry.arch in ARCHITECTURES, entry.name


def test_architectures_that_write_hf_layout_declare_all_of_it():
    discover(MODEL_GROUP)
    writers = {n for n in ARCHITECTURES.names() if issubclass(ARCHITECTURES.get(n), HFExport)}
    assert writers == {"causal_lm", "longva", "qwen2_audio"}


class TinyLMModule(ZooModule):
    def __init__(self, model: LMConfig, lr: float = 1e-3, pretrained: str | None = None):
        super().__init__()
        self.init_model(CausalLM, model, pretrained=pretrained, hparams={"lr": lr})


def test_base_module_records_the_checkpoint_metadata_of_the_model_it_built():
    module = TinyLMModule(TINY_LM, lr=3e-4)
    assert module.hparams[ZOO_MODEL_KEY] == {"arch": "causal_lm", "config": TINY_LM.to_dict(), "prefix": MODEL_PREFIX}
    assert module.hparams.lr == 3e-4
    assert all(k.startswith(MODEL_PREFIX) for k in module.state_dict())


def test_base_module_pretrained_takes_the_checkpoints_config_and_weights(tmp_path):
    torch.manual_seed(0)
    source = CausalLM(TINY_LM).eval()
    source.save_pretrained(tmp_path / "hf")
    module = TinyLMModule(LMConfig(vocab_size=64, d_model=16, n_layer=1, n_head=1), pretrained=str(tmp_path / "hf"))
    assert module.model.training  # handed back for training, not in load_pretrained's eval mode
    assert module.hparams[ZOO_MODEL_KEY]["config"] == source.config_dict()
    ids = torch.randint(0, 64, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(module.model.eval()(ids).logits, source(ids).logits, atol=0, rtol=0)


def test_every_modality_module_takes_pretrained_from_a_zoo_checkpoint(tmp_path):
    """--model.init_args.pretrained works for every module: a .ckpt written with one module's metadata rebuilds
    its network in a second module whose YAML asks for another shape."""
    from zoo.modalities.genomic import GenomicLMModule
    from zoo.modalities.text import LMModule

    first = LMModule(TINY_LM)
    ckpt = tmp_path / "run.ckpt"
    torch.save({"state_dict": first.state_dict(), "hyper_parameters": dict(first.hparams)}, ckpt)
    small = LMConfig(vocab_size=64, d_model=16, n_layer=1, n_head=1)
    for module_cls in (LMModule, GenomicLMModule):
        second = module_cls(small, pretrained=str(ckpt))
        assert second.model.config == first.model.config
        for k, v in first.state_dict().items():
            torch.testing.assert_close(second.state_dict()[k], v, atol=0, rtol=0)
    assert load_pretrained(ckpt).config == first.model.config


def test_base_module_pretrained_of_another_architecture_is_refused_by_name(tmp_path):
    from zoo.modalities.timeseries import ForecastModule, TimerXLConfig

    CausalLM(TINY_LM).save_pretrained(tmp_path / "hf")
    with pytest.raises(ValueError, match=rf"pretrained='{tmp_path / 'hf'}' holds a CausalLM, not a TimerXL "
                                         r"\(timer_xl\) model"):
        ForecastModule(TimerXLConfig(), pretrained=str(tmp_path / "hf"))
