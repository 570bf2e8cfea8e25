"""Synthetic V-NIAH: the haystack is a real video file, needles sit where the depth says, prompts label only the
answer, exact match under teacher forcing, the user's own haystack and needle, and the eval task's outputs."""

import json

import numpy as np
import pytest
import torch

from zoo.modalities.video import IMAGE_TOKEN_INDEX, LongVA, LongVAConfig, read_frames
from zoo.modalities.video.lightning import expanded_labels
from zoo.modalities.video.vniah import (Haystack, VNIAHSet, collate, encode_prompt, labels_exact_match,
                                        make_haystack_video, render_needle)

pytest.importorskip("av", reason="PyAV writes the synthetic haystack")


@pytest.fixture(scope="module")
def haystack(tmp_path_factory):
    path = make_haystack_video(tmp_path_factory.mktemp("vniah") / "hay.mp4", num_frames=48, size=64)
    return Haystack(32, path)


def test_haystack_is_a_real_video_without_needle_like_frames(haystack):
    frames, ts = read_frames(haystack.video, backend="pyav")
    assert frames.shape == (48, 64, 64, 3) and np.allclose(np.diff(ts), 1 / 8, atol=1e-3)
    white = render_needle("7", 64, np.random.default_rng(0))
    assert frames.reshape(48, -1).mean(1).max() < 200 < white.mean()  # needles stand out by content


def test_needles_sit_at_their_depth_and_prompts_label_only_the_answer(haystack):
    data = VNIAHSet(haystack, 12, depths=(0.0, 0.5, 1.0), n_per_depth=2, seed=3)
    again = VNIAHSet(haystack, 12, depths=(0.0, 0.5, 1.0), n_per_depth=2, seed=3)
    for item, same in zip(data.items, again.items):
        torch.testing.assert_close(item["video"], same["video"])  # reproducible from the seed
        at = round(item["depth"].item() * 11)
        assert item["needle_index"].item() == at
        brightness = item["video"].mean(dim=(1, 2, 3))
        assert brightness.argmax().item() == at  # the white needle frame
        answer = chr(item["labels"][-2].item())
        assert answer.isdigit() and item["labels"][-1].item() == 257
        assert (item["labels"][:-2] == -100).all() and (item["input_ids"] == IMAGE_TOKEN_INDEX).sum() == 1


def test_exact_match_counts_only_fully_correct_answers():
    labels = torch.tensor([[-100, -100, 5, 6], [-100, -100, 5, 6]])
    logits = torch.zeros(2, 4, 10)
    logits[0, 1, 5] = logits[0, 2, 6] = 1  # both answer tokens right
    logits[1, 1, 5] = logits[1, 2, 7] = 1  # second one wrong
    assert labels_exact_match(logits, labels).tolist() == [1.0, 0.0]


def test_expanded_labels_match_build_inputs(haystack):
    cfg = LongVAConfig(lm=dict(vocab_size=260, d_model=32, n_layer=1, n_head=2),
                       vision=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                                   image_size=32, patch_size=8))
    model = LongVA(cfg)
    batch = collate(VNIAHSet(haystack, 5, depths=(0.5,), n_per_depth=2).items)
    _, want, _, _ = model.build_inputs(batch["input_ids"], batch["videos"], batch["labels"])
    assert torch.equal(expanded_labels(model, batch), want)


def test_users_own_needle_image_and_answer(haystack, tmp_path):
    from PIL import Image

    Image.fromarray(render_needle("X", 64, np.random.default_rng(1))).save(tmp_path / "needle.png")
    own = Haystack(32, haystack.video, tmp_path / "needle.png", "X")
    item = own.sample(8, 1.0, np.random.default_rng(0))
    assert chr(item["labels"][-2].item()) == "X" and item["video"].mean(dim=(1, 2, 3)).argmax() == 7
    with pytest.raises(ValueError, match="give needle_image and needle_answer together"):
        Haystack(32, haystack.video, tmp_path / "needle.png")
    with pytest.raises(ValueError, match="49 frames asked for, but the haystack .* has 48"):
        own.sample(49, 0.5, np.random.default_rng(0))


def test_encode_prompt_round_trips_the_answer():
    ids, labels = encode_prompt("42")
    assert bytes(t for t in labels.tolist() if 0 <= t < 256) == b"42"
    assert ids[1].item() == IMAGE_TOKEN_INDEX and ids[0].item() == 256
