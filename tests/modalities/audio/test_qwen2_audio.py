"""Qwen2-Audio: a tiny random transformers Qwen2AudioForConditionalGeneration, saved in its own layout (and in the
hub's older key names), loads into the zoo model, and logits for the same audio + text equal transformers' within
1e-4 — with and without padded audio frames and padded text. The real-size config has Qwen2-Audio-7B's count."""

import json
from pathlib import Path

import pytest
import torch

import zoo
from zoo.modalities.audio import Qwen2Audio, audio_features, load_audio
from zoo.modalities.audio.qwen2_audio import encoder_output_lengths

JFK = Path(__file__).resolve().parents[2] / "data" / "audio" / "jfk.flac"
AUDIO_TOKEN = 90


def _tiny_hf(tmp_path):
    from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration

    cfg = Qwen2AudioConfig(
        audio_config=dict(model_type="qwen2_audio_encoder", num_mel_bins=128, encoder_layers=2,
                          encoder_attention_heads=4, encoder_ffn_dim=64, d_model=32, max_source_positions=1500),
        text_config=dict(model_type="qwen2", vocab_size=100, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=4096, rope_theta=10000.0, rms_norm_eps=1e-6),
        audio_token_index=AUDIO_TOKEN,
    )
    torch.manual_seed(0)
    model = Qwen2AudioForConditionalGeneration(cfg).eval()
    with torch.no_grad():  # random non-zero biases and norms, so that a dropped or misplaced one shows
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.normal_(0, 0.1).add_(1.0 if "norm" in name and name.endswith("weight") else 0.0)
    model.save_pretrained(tmp_path / "hf", safe_serialization=True)
    return model


def _inputs(audio_seconds: list[float]):
    """A batch with one audio each (JFK cut to the given lengths), left-padded text, expanded audio tokens."""
    audio = load_audio(JFK)
    feats, masks, rows = [], [], []
    for sec in audio_seconds:
        f, m = audio_features(audio[: int(sec * 16000)])
        feats.append(f)
        masks.append(m)
        n_tokens = int(encoder_output_lengths(m.sum(-1))[1].sum())
        rows.append([1, 2, 3] + [AUDIO_TOKEN] * n_tokens + [5, 6, 7, 8])
    n = max(len(r) for r in rows)
    ids = torch.tensor([[0] * (n - len(r)) + r for r in rows])
    attention = torch.tensor([[0] * (n - len(r)) + [1] * len(r) for r in rows])
    return dict(input_ids=ids, input_features=torch.cat(feats), attention_mask=attention,
                feature_attention_mask=torch.cat(masks))


@pytest.mark.parametrize("layout", ["transformers", "hub"])
def test_against_hf_qwen2_audio_logits(tmp_path, layout):
    hf = _tiny_hf(tmp_path)
    if layout == "hub":  # the names of the published Qwen/Qwen2-Audio-7B safetensors
        from safetensors.torch import load_file, save_file

        state = load_file(tmp_path / "hf" / "model.safetensors")
        renamed = {}
        for k, v in state.items():
            if k.startswith("model.language_model."):
                k = "language_model.model." + k[len("model.language_model."):]
            elif k.startswith("lm_head."):
                k = "language_model." + k
            elif k.startswith("model."):
                k = k[len("model."):]
            renamed[k] = v
        assert any(k.startswith("audio_tower.layers.0.self_attn") for k in renamed)
        save_file(renamed, tmp_path / "hf" / "model.safetensors", metadata={"format": "pt"})
    model = zoo.load_pretrained(tmp_path / "hf")
    assert isinstance(model, Qwen2Audio)
    batch = _inputs([11.0, 4.3])  # the second has padded mel frames, and its text is left-padded
    with torch.no_grad():
        want = hf(**batch).logits
        got = model(**batch).logits
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(got[real], want[real], atol=1e-4, rtol=1e-4)


def test_wrong_audio_token_count_is_an_error(tmp_path):
    _tiny_hf(tmp_path)
    model = zoo.load_pretrained(tmp_path / "hf")
    batch = _inputs([3.0])
    batch["input_ids"] = torch.cat((batch["input_ids"][:, :3], batch["input_ids"][:, 4:]), 1)  # one audio token less
    batch["attention_mask"] = batch["attention_mask"][:, 1:]
    with pytest.raises(ValueError, match=r"the audio gives 75 tokens but input_ids hold 74 audio tokens \(id 90\)"):
        model(**batch)


def test_real_size_config_has_the_published_parameter_count():
    import yaml
    from transformers import Qwen2AudioConfig as HFConfig
    from transformers import Qwen2AudioForConditionalGeneration

    from zoo.modalities.audio import Qwen2AudioConfig

    path = Path(__file__).resolve().parents[3] / "configs" / "qwen2_audio_partial_yarn.yaml"
    cfg = yaml.safe_load(path.read_text())["model"]["init_args"]["model"]
    hf_cfg = HFConfig(  # Qwen/Qwen2-Audio-7B's config.json
        audio_config=dict(model_type="qwen2_audio_encoder", num_mel_bins=128, encoder_layers=32,
                          encoder_attention_heads=20, encoder_ffn_dim=5120, d_model=1280, max_source_positions=1500),
        text_config=dict(model_type="qwen2", vocab_size=156032, hidden_size=4096, intermediate_size=11008,
                         num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32, rms_norm_eps=1e-5,
                         max_position_embeddings=8192, rope_theta=10000.0),
    )
    with torch.device("meta"):
        model = Qwen2Audio(Qwen2AudioConfig(**cfg))
        hf = Qwen2AudioForConditionalGeneration(hf_cfg)
    n = sum(p.numel() for p in model.parameters())
    assert n == sum(p.numel() for p in hf.parameters()), n
    assert abs(n / 8.4e9 - 1) < 0.01, n  # Qwen/Qwen2-Audio-7B: "8.4B params"
    assert model.partial_yarn.start_dim == 32 and model.partial_yarn.temperature == 1.2


def test_vlat_training_draws_virtual_lengths_and_changes_the_audio_positions():
    import numpy as np
    import yaml

    from zoo.modalities.audio import AudioQAModule, Qwen2AudioConfig
    from zoo.modalities.audio.needle import NeedleTask, collate

    cfg = yaml.safe_load((Path(__file__).resolve().parents[3] / "configs" / "audio_qa.yaml").read_text())
    model_cfg = cfg["model"]["init_args"]["model"]
    model_cfg["audio"]["max_source_positions"] = 100  # 2 s windows, 50 tokens: fast
    model_cfg["partial_yarn"]["window"] = 50
    module = AudioQAModule(Qwen2AudioConfig(**model_cfg), vlat=True, vlat_factors=[1, 5, 10], vlat_max_tokens=400)
    drawn = {v for _ in range(50) for v in module._virtual_lengths(4)}
    assert drawn == {50, 250, 500} - {500}  # 10 × 50 = 500 is over the 400-token cap
    batch = collate([NeedleTask(2, 1, 259, 128, 2).sample(0.3, np.random.default_rng(i)) for i in range(2)])
    inputs = {k: batch[k] for k in ("input_ids", "input_features", "attention_mask", "feature_attention_mask")}
    with torch.no_grad():
        plain = module.model(**inputs, partial_yarn=False).logits
        same = module.model(**inputs, virtual_lengths=[50, 50]).logits  # virtual = real length: nothing changes
        spread = module.model(**inputs, virtual_lengths=[250, 250]).logits
    torch.testing.assert_close(same, plain)
    assert not torch.allclose(spread[:, -5:], plain[:, -5:], atol=1e-3)
    with pytest.raises(ValueError, match="no VLAT factor"):
        AudioQAModule(Qwen2AudioConfig(**model_cfg), vlat=True, vlat_max_tokens=10)


def test_module_with_pretrained_takes_the_checkpoint_weights_and_keeps_partial_yarn(tmp_path):
    from zoo.modalities.audio import AudioQAModule, Qwen2AudioConfig

    hf = _tiny_hf(tmp_path)
    yarn = {"start_dim": 2, "temperature": 1.5, "window": 750}
    module = AudioQAModule(Qwen2AudioConfig(partial_yarn=yarn), pretrained=str(tmp_path / "hf"))
    assert module.model.lm.config.d_model == 32 and module.model.partial_yarn.start_dim == 2
    assert module.hparams.zoo_model["config"]["partial_yarn"] == yarn
    batch = _inputs([2.0])
    with torch.no_grad():
        torch.testing.assert_close(module.model(**batch, partial_yarn=False).logits, hf(**batch).logits,
                                   atol=1e-4, rtol=1e-4)


def test_against_hf_qwen2_audio_left_padded_batch_generate(tmp_path):
    hf = _tiny_hf(tmp_path)
    model = zoo.load_pretrained(tmp_path / "hf")
    batch = _inputs([3.0, 1.2])  # different audio lengths: the second row is left-padded
    want = hf.generate(**batch, max_new_tokens=8, do_sample=False, pad_token_id=0)
    got = model.generate(**batch, max_new_tokens=8)
    assert torch.equal(got, want)
    row = {k: v[1:] for k, v in batch.items()}  # the padded row alone, without its padding
    real = batch["attention_mask"][1].bool()
    row["input_ids"], row["attention_mask"] = row["input_ids"][:, real], row["attention_mask"][:, real]
    assert torch.equal(model.generate(**row, max_new_tokens=8)[0, real.sum():], got[1, batch["input_ids"].shape[1]:])
    eos = int(got[1, -6])  # the padded row emits it at step 3: afterwards it emits pad_token_id, as transformers
    want = hf.generate(**batch, max_new_tokens=8, do_sample=False, eos_token_id=eos, pad_token_id=3)
    assert torch.equal(model.generate(**batch, max_new_tokens=8, eos_token_id=eos, pad_token_id=3), want)


def test_save_pretrained_round_trips_through_zoo_and_transformers(tmp_path):
    from transformers import Qwen2AudioForConditionalGeneration

    _tiny_hf(tmp_path)
    model = zoo.load_pretrained(tmp_path / "hf")
    model.save_pretrained(tmp_path / "saved")
    again = zoo.load_pretrained(tmp_path / "saved")
    assert again.state_dict().keys() == model.state_dict().keys()
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in model.state_dict().items())
    hf = Qwen2AudioForConditionalGeneration.from_pretrained(tmp_path / "saved").eval()
    batch = _inputs([2.5, 1.0])
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        got = model(**batch).logits
        torch.testing.assert_close(again(**batch).logits, got, atol=0, rtol=0)
        torch.testing.assert_close(hf(**batch).logits[real], got[real], atol=1e-4, rtol=1e-4)


def test_save_pretrained_keeps_partial_yarn_for_zoo(tmp_path):
    _tiny_hf(tmp_path)
    model = zoo.load_pretrained(tmp_path / "hf", partial_yarn={"start_dim": 2, "temperature": 1.5, "window": 20})
    model.save_pretrained(tmp_path / "saved")
    again = zoo.load_pretrained(tmp_path / "saved")
    assert again.config.partial_yarn == {"start_dim": 2, "temperature": 1.5, "window": 20}
    batch = _inputs([1.0])
    with torch.no_grad():
        torch.testing.assert_close(again(**batch).logits, model(**batch).logits, atol=0, rtol=0)
