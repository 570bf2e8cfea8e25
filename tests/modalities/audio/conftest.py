"""Audio files written on the fly for the loading tests: a tone in noise, encoded by PyAV (FFmpeg's encoders and
muxers) or soundfile (libsndfile) into any container the tests need."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest


def tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    """(channels, samples) float32: 440 Hz (660 Hz on a second channel) at 0.3 with a little noise."""
    t = np.arange(round(seconds * rate)) / rate
    noise = 0.02 * np.random.default_rng(0).standard_normal((channels, len(t)))
    freqs = np.array([440.0, 660.0][:channels])[:, None]
    return (0.3 * np.sin(2 * np.pi * freqs * t) + noise).astype(np.float32)


def encode_pyav(path: Path, samples: np.ndarray, rate: int, codec: str, fmt: str | None = None,
                options: dict | None = None, video: bool = False) -> Path:
    """Encode ``samples`` (channels, n) with FFmpeg's ``codec`` into ``path``, fed in 1000-sample frames.

    ``video=True`` interleaves an MPEG-4 video track, as in a screen recording: 160 × 120 noise at 10 fps, whose
    packets are far larger than the audio's, so that most cuts fall inside a video packet."""
    import av

    layout = "mono" if samples.shape[0] == 1 else "stereo"
    with av.open(str(path), "w", format=fmt, options=options or {}) as c:
        if video:
            v = c.add_stream("mpeg4", rate=10)
            v.width, v.height, v.pix_fmt = 160, 120, "yuv420p"
        a = c.add_stream(codec, rate=rate, layout=layout)
        rng = np.random.default_rng(1)
        next_video = 0
        for i in range(0, samples.shape[1], 1000):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, i: i + 1000]), format="fltp",
                                               layout=layout)
            frame.sample_rate, frame.pts = rate, i
            c.mux(a.encode(frame))
            while video and next_video / 10 <= i / rate:
                img = av.VideoFrame.from_ndarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), format="rgb24")
                img.pts = next_video
                c.mux(v.encode(img))
                next_video += 1
        c.mux(a.encode(None))
        if video:
            c.mux(v.encode(None))
    return path


def encode_soundfile(path: Path, samples: np.ndarray, rate: int, subtype: str | None = None,
                     fmt: str | None = None) -> Path:
    import soundfile as sf

    sf.write(str(path), samples.T, rate, subtype=subtype, format=fmt)
    return path


def cut(path: Path, fraction: float, out: Path | None = None) -> Path:
    """The first ``fraction`` of ``path``'s bytes, as a file named ``cut_<name>`` beside it (or ``out``)."""
    out = out or path.with_name(f"cut_{path.name}")
    data = path.read_bytes()
    out.write_bytes(data[: int(len(data) * fraction)])
    return out


@pytest.fixture
def audio_files() -> SimpleNamespace:
    """The helpers above, for the tests in this folder (conftest modules are not importable by name)."""
    return SimpleNamespace(tone=tone, encode_pyav=encode_pyav, encode_soundfile=encode_soundfile, cut=cut)
