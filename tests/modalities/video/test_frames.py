"""Frame sampling on real files (tests/data/video, copied from decord's test videos): uniform and fps sampling,
time windows, rotation metadata, variable-frame-rate / oddly ordered files, the two backends agreeing, and corrupted
files failing by name (or skipping, logged, when asked)."""

import logging
from pathlib import Path

import numpy as np
import pytest

from zoo.modalities.video import VideoDecodeError, read_frames, sample_indices

DATA = Path(__file__).resolve().parents[2] / "data" / "video"
PANCAKE = DATA / "flipping_a_pancake.mkv"  # 310 frames at 30 fps, no frame count in its header
decord = pytest.importorskip("decord", reason="decord is the default backend; install it to test both backends")
BOTH = ["decord", "pyav"]


@pytest.mark.parametrize("backend", BOTH)
def test_uniform_sampling_is_lmms_eval_linspace(backend):
    frames, ts = read_frames(PANCAKE, num_frames=16, backend=backend)
    idx = np.linspace(0, 309, 16, dtype=int)
    vr = decord.VideoReader(str(PANCAKE))
    assert frames.dtype == np.uint8 and frames.shape == (16, 240, 426, 3)
    np.testing.assert_allclose(ts, vr.get_frame_timestamp(idx)[:, 0], atol=2e-3)
    if backend == "decord":
        np.testing.assert_array_equal(frames, vr.get_batch(idx.tolist()).asnumpy())


def test_backends_decode_the_same_pixels():
    for name, kw in [("flipping_a_pancake.mkv", {"num_frames": 7}), ("unordered.mov", {}), ("video_0.mov", {})]:
        a, ta = read_frames(DATA / name, backend="decord", **kw)
        b, tb = read_frames(DATA / name, backend="pyav", **kw)
        assert a.shape == b.shape, name
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 1.0, name
        np.testing.assert_allclose(ta, tb, atol=2e-3)
        assert np.all(np.diff(ta) > 0), f"{name}: timestamps must ascend"


@pytest.mark.parametrize("backend", BOTH)
def test_rotation_metadata_is_applied(backend):
    upright, _ = read_frames(DATA / "video_0.mov", backend=backend)
    rotated, _ = read_frames(DATA / "video_90.mov", backend=backend)
    assert upright.shape[1:3] == (320, 568)
    assert rotated.shape[1:3] == (568, 320)  # displayed portrait, as decord returns it
    if backend == "pyav":
        np.testing.assert_array_equal(rotated, read_frames(DATA / "video_90.mov", backend="decord")[0])


@pytest.mark.parametrize("backend", BOTH)
def test_fps_sampling_with_a_frame_cap_and_a_time_window(backend):
    _, ts = read_frames(PANCAKE, fps=2, backend=backend)
    assert len(ts) == 21 and np.allclose(np.diff(ts), 0.5, atol=0.01)  # every 15th of 310 frames at 30 fps
    _, capped = read_frames(PANCAKE, fps=2, max_frames=8, backend=backend)
    np.testing.assert_allclose(capped, ts[np.linspace(0, 20, 8, dtype=int)])
    _, window = read_frames(PANCAKE, num_frames=5, start=2.0, end=4.0, backend=backend)
    assert window[0] >= 2.0 and window[-1] <= 4.0 and len(window) == 5


@pytest.mark.parametrize("backend", BOTH)
def test_corrupted_file_names_the_file_and_first_bad_frame(backend):
    with pytest.raises(VideoDecodeError, match=r"corrupted\.mp4: frame 28 could not be decoded"):
        read_frames(DATA / "corrupted.mp4", backend=backend)


@pytest.mark.parametrize("backend", BOTH)
def test_skipping_bad_frames_only_when_asked_and_logged(backend, caplog):
    with caplog.at_level(logging.WARNING):
        frames, ts = read_frames(DATA / "corrupted.mp4", backend=backend, skip_bad_frames=True)
    # FFmpeg loses only the broken packet (frame 28) and conceals the damage in the frames after it; decord's own
    # read-ahead cannot say which frame broke, so after a failed batch PyAV decodes the file for both backends
    assert len(frames) == len(ts) == 49
    np.testing.assert_allclose(ts, np.delete(np.arange(50), 28) / 10, atol=1e-6)
    assert "corrupted.mp4: skip" in caplog.text


def test_auto_uses_decord_and_bad_arguments_fail_by_name(tmp_path):
    frames, _ = read_frames(DATA / "unordered.mov")
    assert frames.shape == (4, 50, 50, 3)
    with pytest.raises(FileNotFoundError, match="video file not found: .*missing.mp4"):
        read_frames(tmp_path / "missing.mp4")
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("not a video")
    with pytest.raises(VideoDecodeError, match="notes.mp4: PyAV cannot open it"):
        read_frames(not_video)
    with pytest.raises(ValueError, match="give num_frames .* or fps .*, not both"):
        read_frames(PANCAKE, num_frames=4, fps=1)
    with pytest.raises(ValueError, match=r"no frame lies in \[20.0, 30.0\] s"):
        sample_indices(np.arange(10) / 10, 10.0, num_frames=2, start=20.0, end=30.0)
    with pytest.raises(ValueError, match="backend must be one of"):
        read_frames(PANCAKE, backend="opencv")
