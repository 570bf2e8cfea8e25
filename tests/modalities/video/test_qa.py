"""answer() on clips too short for num_frames and on zero frames: one ValueError saying what is wrong, raised before
anything is decoded or generated (also with stream=True), instead of a reshape error deep in the model."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from zoo.modalities.video import LongVA, LongVAConfig, answer, read_frames

ROOT = Path(__file__).resolve().parents[3]
CLIP = ROOT / "tests" / "data" / "video" / "video_0.mov"  # 3 frames


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    fields = yaml.safe_load((ROOT / "configs" / "longva.yaml").read_text())["model"]["init_args"]["model"]
    return LongVA(LongVAConfig(**fields))


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("video", [np.array([]), np.zeros((0, 32, 32, 3), np.uint8),
                                   torch.zeros(0, 32, 32, 3, dtype=torch.uint8), []])
def test_zero_frames_are_refused_by_name(model, video, stream):
    shape = tuple(np.shape(video))
    with pytest.raises(ValueError, match=rf"answer\(\) needs at least one video frame, got an empty array of shape "
                                         rf"{re.escape(str(shape))}"):
        answer(model, video, "q", stream=stream)


@pytest.mark.parametrize("video", [CLIP, np.zeros((2, 32, 32, 3), np.uint8)])
def test_num_frames_zero_is_refused_by_name(model, video):
    with pytest.raises(ValueError, match=r"answer\(\) needs at least one video frame: num_frames must be ≥ 1, got 0"):
        answer(model, video, "q", num_frames=0)
    with pytest.raises(ValueError, match=r"answer\(\) needs at least one video frame: max_frames must be ≥ 1, got 0"):
        answer(model, video, "q", fps=1, max_frames=0)


def test_a_clip_shorter_than_num_frames_is_refused_unless_capped_or_repeated(model):
    with pytest.raises(ValueError, match=r"video_0.mov: num_frames=16 asked for, but the clip has only 3 frames"):
        answer(model, CLIP, "q", max_new_tokens=2)
    every, _ = read_frames(CLIP)
    assert answer(model, CLIP, "q", max_new_tokens=2, on_short="cap") == answer(model, every, "q", max_new_tokens=2)
    repeated = every[np.linspace(0, 2, 16, dtype=int)]
    assert answer(model, CLIP, "q", max_new_tokens=2, on_short="repeat") == \
        answer(model, repeated, "q", max_new_tokens=2)
