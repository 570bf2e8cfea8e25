"""LongVA against transformers: a tiny checkpoint written in LongVA's own layout (random Qwen2ForCausalLM and
CLIPVisionModel weights) loads with zoo.load_pretrained; text logits equal Qwen2's and visual features equal CLIP's
second-to-last hidden states. Also: placeholder expansion, label masking, pooling, V2PE positions."""

import json

import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.modalities.video import IMAGE_TOKEN_INDEX, LongVA, LongVAConfig, preprocess_frames, v2pe_positions

transformers = pytest.importorskip("transformers")

CLIP = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, image_size=32,
            patch_size=8, projection_dim=16, hidden_act="quick_gelu", layer_norm_eps=1e-5)


@pytest.fixture(scope="module")
def longva_dir(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("longva")
    qwen_cfg = transformers.Qwen2Config(vocab_size=100, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, rope_theta=1e9,
                                        max_position_embeddings=4096, tie_word_embeddings=False)
    qwen = transformers.Qwen2ForCausalLM(qwen_cfg).eval()
    clip = transformers.CLIPVisionModel(transformers.CLIPVisionConfig(**CLIP)).eval()
    (root / "clip").mkdir()
    clip.config.to_json_file(root / "clip" / "config.json")
    projector = torch.nn.Sequential(torch.nn.Linear(32, 48), torch.nn.GELU(), torch.nn.Linear(48, 48))
    state = dict(qwen.state_dict())
    state.update({f"model.vision_tower.vision_tower.{k}": v for k, v in clip.state_dict().items()})
    state.update({f"model.mm_projector.{k}": v for k, v in projector.state_dict().items()})
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, root / "model.safetensors")
    config = qwen_cfg.to_dict()
    config.update(model_type="llava_qwen", architectures=["LlavaQwenForCausalLM"], mm_vision_tower=str(root / "clip"),
                  mm_vision_select_layer=-2, mm_vision_select_feature="patch", mm_projector_type="mlp2x_gelu",
                  mm_hidden_size=32, mm_patch_merge_type="unires", mm_spatial_pool_stride=2,
                  mm_spatial_pool_mode="average", tokenizer_model_max_length=224000)
    (root / "config.json").write_text(json.dumps(config))
    return root, qwen, clip, projector


def test_text_logits_equal_transformers_qwen2(longva_dir):
    root, qwen, _, _ = longva_dir
    model = zoo.load_pretrained(root)
    assert isinstance(model, LongVA)
    ids = torch.randint(0, 100, (2, 37))
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, qwen(ids).logits, atol=1e-4, rtol=1e-4)


def test_visual_features_equal_clip_second_to_last_layer_and_pool_after_projector(longva_dir):
    root, _, clip, projector = longva_dir
    model = zoo.load_pretrained(root)
    pixels = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        want = clip(pixel_values=pixels, output_hidden_states=True).hidden_states[-2][:, 1:]
        torch.testing.assert_close(model.vision_features(pixels), want, atol=1e-4, rtol=1e-4)
        grid = projector(want).view(3, 4, 4, 48).permute(0, 3, 1, 2)
        pooled = F.avg_pool2d(grid, 2).flatten(2).transpose(1, 2)  # (3, 4, 48): 2×2 tokens per frame
        torch.testing.assert_close(model.encode_frames(pixels), pooled, atol=1e-4, rtol=1e-4)
    assert model.tokens_per_frame == 4


def test_placeholder_expands_to_frame_tokens_and_masks_their_labels(longva_dir):
    root, _, _, _ = longva_dir
    model = zoo.load_pretrained(root)
    ids = torch.tensor([[5, 6, IMAGE_TOKEN_INDEX, 7, 8, 9]])
    video = torch.randn(5, 3, 32, 32)  # 5 frames × 4 tokens
    embeds, labels, pos, vis = model.build_inputs(ids, [video], labels=ids.clone())
    assert embeds.shape == (1, 2 + 20 + 3, 48)
    assert vis[0].tolist() == [False] * 2 + [True] * 20 + [False] * 3
    assert labels[0, 2:22].eq(-100).all() and labels[0, 22:].tolist() == [7, 8, 9]
    with torch.no_grad():
        torch.testing.assert_close(embeds[0, 2:22], model.encode_frames(video).flatten(0, 1))
        torch.testing.assert_close(embeds[0, :2], model.lm.embed(ids[0, :2]))
        out = model(ids, [video], labels=ids.clone())
    assert out.logits.shape == (1, 25, 100) and torch.isfinite(out.loss)
    with pytest.raises(ValueError, match="input_ids hold 1 image placeholders but 2 videos were given"):
        model.build_inputs(ids, [video, video])


def test_v2pe_positions_step_by_delta_and_text_resumes_after_ceil():
    vis = torch.tensor([False, False, True, True, True, True, True, False, False])
    pos = v2pe_positions(vis, 0.25)
    assert pos.tolist() == [0, 1, 2, 2.25, 2.5, 2.75, 3.0, 4, 5]
    pos = v2pe_positions(torch.tensor([False, True, True, True, False]), 0.5)
    assert pos.tolist() == [0, 1, 1.5, 2.0, 3]  # ceil(2.0) + 1
    assert v2pe_positions(vis, 1.0).tolist() == list(range(9))  # δ = 1 is plain positions
    with pytest.raises(ValueError, match=r"v2pe_delta must lie in \(0, 1\]"):
        LongVAConfig(v2pe_delta=2.0)


def test_preprocess_resizes_short_side_and_centre_crops():
    frames = torch.zeros(2, 40, 80, 3, dtype=torch.uint8)
    frames[:, :, 20:60] = 255  # a white band in the middle: the centre crop sees only white
    x = preprocess_frames(frames, 32)
    assert x.shape == (2, 3, 32, 32)
    white = (1 - torch.tensor([0.48145466, 0.4578275, 0.40821073])) / torch.tensor([0.26862954, 0.26130258, 0.27577711])
    torch.testing.assert_close(x[0, :, 16, 16], white, atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match=r"frames must be uint8 \(T, H, W, 3\)"):
        preprocess_frames(torch.zeros(2, 3, 32, 32), 32)


def test_longva_7b_config_has_the_published_parameter_count_on_the_meta_device():
    import yaml

    from pathlib import Path

    path = Path(__file__).resolve().parents[3] / "configs" / "longva_7b.yaml"
    cfg = yaml.safe_load(path.read_text())["model"]["init_args"]["model"]
    with torch.device("meta"):
        model = LongVA(LongVAConfig(**cfg))
    count = sum(p.numel() for p in model.parameters())
    assert abs(count - 7_935_646_208) <= 0.01 * 7_935_646_208, count  # published: 7,935,646,208
    assert sum(p.numel() for p in model.mm_projector.parameters()) == 16_522_240
    assert model.tokens_per_frame == 144


def test_module_with_pretrained_takes_the_checkpoint_weights_and_architecture(longva_dir):
    from zoo.modalities.video import LongVAModule

    root, qwen, _, _ = longva_dir
    module = LongVAModule(LongVAConfig(v2pe_delta=0.25), pretrained=str(root))
    assert module.model.config.v2pe_delta == 0.25 and module.model.lm.config.d_model == 48
    assert module.hparams.zoo_model["config"]["lm"]["d_model"] == 48
    ids = torch.randint(0, 100, (1, 9))
    with torch.no_grad():
        torch.testing.assert_close(module.model.eval()(ids).logits, qwen(ids).logits, atol=1e-4, rtol=1e-4)


def test_timm_tower_takes_the_same_layer_as_clip_second_to_last_block_without_prefix_tokens():
    pytest.importorskip("timm")
    cfg = LongVAConfig(lm=dict(vocab_size=260, d_model=32, n_layer=1, n_head=2), vision_tower="timm",
                       vision=dict(model_name="vit_tiny_patch16_224", img_size=32, patch_size=8, depth=3))
    model = LongVA(cfg).eval()
    x = torch.randn(2, 3, 32, 32)
    tower = model.vision_tower
    with torch.no_grad():
        h = tower.norm_pre(tower.patch_drop(tower._pos_embed(tower.patch_embed(x))))
        for block in tower.blocks[:2]:  # depth 3: layer −2 is the output of block 2
            h = block(h)
        torch.testing.assert_close(model.vision_features(x), h[:, tower.num_prefix_tokens:], atol=1e-6, rtol=1e-6)
        assert model.encode_frames(x).shape == (2, 4, 32)
    with pytest.raises(ValueError, match="timm tower needs model_name, img_size and patch_size"):
        LongVAConfig(vision_tower="timm", vision=dict(model_name="vit_tiny_patch16_224"))


def test_mm_vision_tower_errors_name_the_tower(tmp_path):
    from zoo.modalities.video.longva import _clip_config

    assert _clip_config("openai/clip-vit-large-patch14-336", None)["image_size"] == 336  # known: no download
    with pytest.raises(ValueError, match="mm_vision_tower './nowhere': not a directory with a CLIP config.json"):
        _clip_config("./nowhere", tmp_path)
    with pytest.raises(ValueError, match="config.json has no mm_vision_tower"):
        LongVA.from_hf({"model_type": "llava_qwen"})


def test_unknown_pool_mode_in_a_checkpoint_config_is_refused_not_replaced():
    cfg = {"model_type": "llava_qwen", "mm_vision_tower": "openai/clip-vit-large-patch14-336",
           "mm_spatial_pool_mode": "bilinear", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
           "num_hidden_layers": 1, "num_attention_heads": 2}
    with pytest.raises(ValueError, match="spatial_pool_mode must be 'average' or 'max', got 'bilinear'"):
        LongVA.from_hf(cfg)


def _left_pad(rows):
    n = max(len(r) for r in rows)
    ids = torch.tensor([[0] * (n - len(r)) + r for r in rows])
    return ids, torch.tensor([[0] * (n - len(r)) + [1] * len(r) for r in rows])


@pytest.mark.parametrize("delta", [None, 0.25])
def test_left_padded_batch_generate_equals_each_row_alone(longva_dir, delta):
    from zoo.modalities.video.qa import generate_tokens

    root, _, _, _ = longva_dir
    model = zoo.load_pretrained(root, v2pe_delta=delta)
    torch.manual_seed(1)
    rows = [[5, IMAGE_TOKEN_INDEX, 7, 8], [9, 10, 11, 12, 13, IMAGE_TOKEN_INDEX, 14], [15, 16]]
    videos = [torch.randn(3, 3, 32, 32), torch.randn(1, 3, 32, 32)]  # 12 and 4 frame tokens
    ids, mask = _left_pad(rows)
    got = model.generate(ids, videos, attention_mask=mask, max_new_tokens=6)
    assert got.shape == (3, ids.shape[1] + 6) and torch.equal(got[:, :ids.shape[1]], ids)
    for i, (row, vids) in enumerate(zip(rows, ([videos[0]], [videos[1]], []))):
        alone = list(generate_tokens(model, torch.tensor([row]), vids, 6, eos_token_id=None))
        assert got[i, ids.shape[1]:].tolist() == alone


def test_text_only_generate_equals_transformers_qwen2(longva_dir):
    root, qwen, _, _ = longva_dir
    model = zoo.load_pretrained(root)
    ids, mask = _left_pad([[3, 4, 5, 6, 7, 8], [9, 10, 11]])
    want = qwen.generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=False, pad_token_id=0)
    assert torch.equal(model.generate(ids, attention_mask=mask, max_new_tokens=8), want)
    with pytest.raises(ValueError, match=r"attention_mask has padding at the end of a row: .* left-pad the prompts"):
        model.generate(ids, attention_mask=mask.flip(1), max_new_tokens=2)


def test_save_pretrained_writes_the_longva_layout_that_loads_again_exactly(longva_dir, tmp_path):
    from safetensors.torch import load_file

    root, _, _, _ = longva_dir
    model = zoo.load_pretrained(root, v2pe_delta=0.5)
    model.save_pretrained(tmp_path / "saved")
    assert set(load_file(tmp_path / "saved" / "model.safetensors")) == set(load_file(root / "model.safetensors"))
    cfg = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert cfg["model_type"] == "llava_qwen" and cfg["mm_vision_tower"] == "vision_tower"
    again = zoo.load_pretrained(tmp_path / "saved")
    assert again.config == model.config
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in model.state_dict().items())
    ids = torch.tensor([[5, 6, IMAGE_TOKEN_INDEX, 7, 8]])
    video = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(again(ids, [video]).logits, model(ids, [video]).logits, atol=0, rtol=0)


def test_timm_tower_has_no_longva_layout_and_writes_nothing(tmp_path):
    pytest.importorskip("timm")
    lm = dict(vocab_size=50, d_model=32, n_layer=1, n_head=2, qkv_bias=True)
    model = LongVA(LongVAConfig(lm=lm, vision_tower="timm", vision=dict(
        model_name="vit_tiny_patch16_224", img_size=32, patch_size=16)))
    with pytest.raises(ValueError, match="a timm vision tower has no LongVA checkpoint layout"):
        model.save_pretrained(tmp_path / "out")
    assert not (tmp_path / "out").exists()
