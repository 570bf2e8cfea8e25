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


SHORT = [("video_0.mov", 3), ("unordered.mov", 4)]


@pytest.mark.parametrize("backend", BOTH)
@pytest.mark.parametrize("name,length", SHORT)
def test_more_frames_than_the_clip_has_is_refused_by_default(backend, name, length):
    with pytest.raises(ValueError, match=rf"{name}: num_frames=16 asked for, but the clip has only {length} frames; "
                                         r"pass on_short='cap' .* or on_short='repeat'"):
        read_frames(DATA / name, num_frames=16, backend=backend)
    with pytest.raises(ValueError, match=rf"{name}: on_short must be one of \('error', 'cap', 'repeat'\)"):
        read_frames(DATA / name, num_frames=16, backend=backend, on_short="pad")


@pytest.mark.parametrize("name,length", SHORT)
def test_cap_takes_every_frame_once_on_both_backends_and_says_so(name, length, caplog):
    every = {b: read_frames(DATA / name, backend=b) for b in BOTH}
    for backend in BOTH:
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            frames, ts = read_frames(DATA / name, num_frames=16, backend=backend, on_short="cap")
        assert f"{name}: num_frames=16 asked for, but the clip has only {length} frames; using all {length}" \
            in caplog.text
        assert frames.shape[0] == len(ts) == length
        np.testing.assert_array_equal(frames, every[backend][0])
        np.testing.assert_array_equal(ts, every[backend][1])
    np.testing.assert_array_equal(every["decord"][0], every["pyav"][0])
    np.testing.assert_allclose(every["decord"][1], every["pyav"][1], atol=1e-6)


@pytest.mark.parametrize("name,length", SHORT)
def test_repeat_is_lmms_eval_linspace_on_both_backends(name, length):
    idx = np.linspace(0, length - 1, 16, dtype=int)  # lmms-eval: repeats indices when the clip is short
    got = {b: read_frames(DATA / name, num_frames=16, backend=b, on_short="repeat") for b in BOTH}
    for backend, (frames, ts) in got.items():
        every, every_ts = read_frames(DATA / name, backend=backend)
        assert frames.shape[0] == len(ts) == 16
        np.testing.assert_array_equal(frames, every[idx])
        np.testing.assert_array_equal(ts, every_ts[idx])
    np.testing.assert_array_equal(got["decord"][0], got["pyav"][0])
    np.testing.assert_allclose(got["decord"][1], got["pyav"][1], atol=1e-6)


@pytest.mark.parametrize("backend", BOTH)
def test_repeat_decodes_each_distinct_frame_once(backend, monkeypatch):
    from zoo.modalities.video import frames as frames_module

    reader = {"decord": frames_module._DecordReader, "pyav": frames_module._PyAVReader}[backend]
    asked = []
    original = reader.read

    def read(self, indices, skip_bad_frames):
        asked.append(indices.tolist())
        return original(self, indices, skip_bad_frames)

    monkeypatch.setattr(reader, "read", read)
    frames, _ = read_frames(DATA / "video_0.mov", num_frames=2000, backend=backend, on_short="repeat")
    assert asked == [[0, 1, 2]] and frames.shape == (2000, 320, 568, 3)


@pytest.mark.parametrize("backend", BOTH)
def test_short_time_window_follows_on_short_and_rate_sampling_never_repeats(backend):
    # 0.5–0.6 s of the 30 fps pancake clip holds 4 frames
    with pytest.raises(ValueError, match=r"flipping_a_pancake.mkv: num_frames=8 asked for, but the clip has only "
                                         r"4 frames in \[0.5, 0.6\] s"):
        read_frames(PANCAKE, num_frames=8, start=0.5, end=0.6, backend=backend)
    _, capped = read_frames(PANCAKE, num_frames=8, start=0.5, end=0.6, backend=backend, on_short="cap")
    assert len(capped) == 4 and len(np.unique(capped)) == 4
    # a rate above the clip's own and a max_frames above its length take every frame once, whatever on_short says
    for kw in ({"fps": 1000}, {"fps": 1000, "max_frames": 100}):
        frames, ts = read_frames(DATA / "video_0.mov", backend=backend, **kw)
        assert frames.shape[0] == 3
        np.testing.assert_allclose(ts, [0, 1 / 30, 2 / 30], atol=1e-6)


@pytest.mark.parametrize("backend", BOTH)
def test_repeat_with_skipped_bad_frames_drops_every_repeat_of_the_bad_one(backend, caplog):
    idx = np.linspace(0, 49, 100, dtype=int)  # corrupted.mp4: 50 frames, frame 28 broken
    with caplog.at_level(logging.WARNING):
        frames, ts = read_frames(DATA / "corrupted.mp4", num_frames=100, backend=backend, on_short="repeat",
                                 skip_bad_frames=True)
    kept = idx[idx != 28]
    assert len(frames) == len(ts) == len(kept) == 98
    np.testing.assert_allclose(ts, kept / 10, atol=1e-6)
    assert "corrupted.mp4: skip" in caplog.text
