"""Reading audio files: ``load_audio(path, sample_rate=16000)`` → mono float32 numpy array in [-1, 1].

soundfile (libsndfile) reads wav / flac / ogg; PyAV reads everything else (mp3, m4a, opus, and the audio track of a
video container). Stereo is mixed down by averaging the channels; the rate is converted with torchaudio's windowed-sinc
resampler. A file that is missing, empty, truncated or not audio raises :class:`AudioDecodeError` naming the file —
nothing is padded or replaced silently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

SOUNDFILE_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif"}


class AudioDecodeError(RuntimeError):
    """An audio file could not be decoded; the message names the file and the reason."""


def _read_soundfile(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        expected = sf.info(str(path)).frames
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (frames, channels)
    except (RuntimeError, sf.LibsndfileError) as e:
        raise AudioDecodeError(f"{path}: not readable as audio by libsndfile ({e})") from e
    if 0 < expected and len(data) < expected:  # libsndfile stops early at a truncated FLAC/WAV body without raising
        raise AudioDecodeError(f"{path}: truncated: its header promises {expected} samples, only {len(data)} decode")
    return data.T, rate


def _read_pyav(path: Path) -> tuple[np.ndarray, int]:
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise AudioDecodeError(f"{path}: not a media file PyAV can open ({e})") from e
    with container:
        if not container.streams.audio:
            raise AudioDecodeError(f"{path}: has no audio stream")
        stream = container.streams.audio[0]
        # planar float32 at the stream's own rate and layout; channels mixed below
        resampler = av.AudioResampler(format="fltp", layout=stream.layout.name, rate=stream.rate)
        chunks = []
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
        except av.error.FFmpegError as e:
            raise AudioDecodeError(f"{path}: audio stream is corrupted after {sum(c.shape[1] for c in chunks)} "
                                   f"samples ({e})") from e
        rate = stream.rate
    if not chunks:
        raise AudioDecodeError(f"{path}: the audio stream holds no samples")
    return np.concatenate(chunks, axis=1).astype(np.float32), rate


def resample(audio: np.ndarray | torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """torchaudio's band-limited sinc resampling along the last axis (float32)."""
    import torchaudio.functional as AF

    x = torch.as_tensor(audio, dtype=torch.float32)
    if orig_rate == new_rate:
        return x
    return AF.resample(x, orig_rate, new_rate)


def load_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """Mono float32 samples of ``path`` at ``sample_rate`` (1-D numpy array)."""
    path = Path(path)
    if not path.is_file():
        raise AudioDecodeError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioDecodeError(f"{path}: the file is empty")
    if path.suffix.lower() in SOUNDFILE_SUFFIXES:
        data, rate = _read_soundfile(path)
    else:
        data, rate = _read_pyav(path)
    if data.shape[1] == 0:
        raise AudioDecodeError(f"{path}: holds no audio samples")
    if not np.isfinite(data).all():
        raise AudioDecodeError(f"{path}: decoded samples contain NaN or infinity")
    mono = data.mean(axis=0)
    return resample(mono, rate, sample_rate).numpy()
