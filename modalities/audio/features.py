"""Whisper's log-mel front end in torch (batched, on any device), and 30-second windowing of long audio.

``log_mel_spectrogram``: Hann-windowed STFT (n_fft 400, hop 160 at 16 kHz, centred with reflect padding), power
spectrum without the last frame, Slaney-normalised mel filters over 0–8 kHz, log10 clamped at 1e-10, floored at
(max − 8) per example, then (x + 4) / 4 — the same numbers as transformers' ``WhisperFeatureExtractor`` (a test
compares them). A 30 s window is 480,000 samples → 3,000 frames.

Long audio: :func:`split_windows` cuts it into consecutive 30 s windows (the last zero-padded) and returns how many
samples of each are real, so nothing is lost and the encoder can mask the padding. :func:`audio_features` computes all
windows at once; :func:`iter_audio_features` computes the same rows one window at a time, from samples or straight
from a file decoded progressively, so that hours of audio featurise in the memory of one window.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .io import iter_audio_windows

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
WINDOW_SECONDS = 30
WINDOW_SAMPLES = WINDOW_SECONDS * SAMPLE_RATE  # 480,000
WINDOW_FRAMES = WINDOW_SAMPLES // HOP_LENGTH  # 3,000


@lru_cache(maxsize=8)
def mel_filters(n_mels: int = 128, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE) -> Tensor:
    """(n_fft // 2 + 1, n_mels) Slaney-scale, Slaney-normalised triangular filters over 0 .. 8 kHz (Whisper's)."""
    import torchaudio.functional as AF

    return AF.melscale_fbanks(n_fft // 2 + 1, 0.0, 8000.0, n_mels, sample_rate, norm="slaney", mel_scale="slaney")


def log_mel_spectrogram(audio: Tensor | np.ndarray, n_mels: int = 128, n_fft: int = N_FFT,
                        hop_length: int = HOP_LENGTH) -> Tensor:
    """audio ``(T,)`` or ``(B, T)`` 16 kHz samples → log-mel ``(n_mels, T // hop)`` or ``(B, n_mels, T // hop)``.

    Pad or cut to :data:`WINDOW_SAMPLES` first (see :func:`pad_or_trim`) for the 3,000-frame windows Whisper-style
    encoders take. Computed in float32 on the input's device.
    """
    x = torch.as_tensor(audio, dtype=torch.float32)
    if x.dim() not in (1, 2):
        raise ValueError(f"audio must be (samples,) or (batch, samples), got shape {tuple(x.shape)}")
    if x.shape[-1] < n_fft:
        raise ValueError(f"audio of {x.shape[-1]} samples is shorter than one FFT window ({n_fft})")
    window = torch.hann_window(n_fft, device=x.device)
    stft = torch.stft(x, n_fft, hop_length, window=window, return_complex=True)
    power = (stft[..., :-1].abs() ** 2).contiguous()
    mel = mel_filters(n_mels, n_fft).to(x.device).T @ power
    log_spec = torch.clamp(mel, min=1e-10).log10()
    peak = log_spec.amax(dim=(-2, -1), keepdim=True)  # per example
    log_spec = torch.maximum(log_spec, peak - 8.0)
    return (log_spec + 4.0) / 4.0


def pad_or_trim(audio: Tensor | np.ndarray, length: int = WINDOW_SAMPLES) -> Tensor:
    """Zero-pad or cut the last axis to ``length`` samples."""
    x = torch.as_tensor(audio, dtype=torch.float32)
    n = x.shape[-1]
    if n >= length:
        return x[..., :length]
    return torch.nn.functional.pad(x, (0, length - n))


def split_windows(audio: Tensor | np.ndarray, window: int = WINDOW_SAMPLES) -> tuple[Tensor, Tensor]:
    """1-D audio → ``(W, window)`` consecutive windows (the last zero-padded) and ``(W,)`` real samples in each.

    Concatenating each window's first ``lengths[i]`` samples gives the input back exactly. Empty audio is an error.
    """
    x = torch.as_tensor(audio, dtype=torch.float32)
    if x.dim() != 1:
        raise ValueError(f"split_windows takes 1-D audio, got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError("audio is empty")
    n_win = -(-x.numel() // window)
    padded = torch.nn.functional.pad(x, (0, n_win * window - x.numel()))
    lengths = torch.full((n_win,), window, dtype=torch.long)
    lengths[-1] = x.numel() - (n_win - 1) * window
    return padded.view(n_win, window), lengths


def _window_samples(window_seconds: float) -> int:
    window = round(window_seconds * SAMPLE_RATE)
    if window <= 0 or window % HOP_LENGTH:
        raise ValueError(f"window_seconds {window_seconds} is not a positive whole number of {HOP_LENGTH}-sample hops")
    return window


def _too_short(n_samples: int) -> str | None:
    """Why ``n_samples`` of 16 kHz audio cannot be featurised, or None."""
    if n_samples == 0:
        return "is empty (0 samples)"
    if n_samples < N_FFT:
        return (f"holds {n_samples} samples ({n_samples / SAMPLE_RATE * 1000:.1f} ms at 16 kHz), fewer than one "
                f"{N_FFT}-sample FFT window ({N_FFT / SAMPLE_RATE * 1000:.0f} ms): no complete mel frame")
    return None


def check_audio(audio: Tensor | np.ndarray, name: str = "audio") -> Tensor:
    """``audio`` as a float32 tensor, after checking it is 1-D, at least one FFT window long and finite; a
    ValueError naming ``name`` says what is wrong otherwise."""
    x = torch.as_tensor(audio, dtype=torch.float32)
    if x.dim() != 1:
        raise ValueError(f"{name} must be 1-D mono 16 kHz samples, got shape {tuple(x.shape)}")
    problem = _too_short(x.numel())
    if problem is not None:
        raise ValueError(f"{name} {problem}")
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        raise ValueError(f"{name} holds NaN or infinite samples (the first at sample {int((~finite).nonzero()[0])})")
    return x


def _mask(n_real: Tensor, frames: int) -> Tensor:
    real = torch.clamp(-(-n_real // HOP_LENGTH), max=frames)  # a frame holding any real sample counts
    return (torch.arange(frames) < real[..., None]).long()


def audio_features(audio: Tensor | np.ndarray, n_mels: int = 128,
                   window_seconds: float = WINDOW_SECONDS) -> tuple[Tensor, Tensor]:
    """Any-length 16 kHz audio → ``input_features (W, n_mels, frames)`` and ``feature_attention_mask (W, frames)``
    (1 on frames that hold real samples), one row per window of ``window_seconds`` (30 s = 3,000 frames, Whisper's
    and Qwen2-Audio's; a tiny model may use shorter ones) — the inputs of a Qwen2-Audio-shaped model.

    Audio that is empty, shorter than one FFT window (400 samples) or not finite raises ValueError. All windows are
    computed at once; for long audio, :func:`iter_audio_features` gives the same rows one at a time."""
    window = _window_samples(window_seconds)
    windows, lengths = split_windows(check_audio(audio), window)
    return log_mel_spectrogram(windows, n_mels), _mask(lengths, window // HOP_LENGTH)


def iter_audio_features(audio: str | Path | Tensor | np.ndarray, n_mels: int = 128,
                        window_seconds: float = WINDOW_SECONDS,
                        allow_partial: bool = False) -> Iterator[tuple[Tensor, Tensor]]:
    """:func:`audio_features` one window at a time: yields ``(features (n_mels, frames), mask (frames,))`` for each
    window of ``audio`` — a file path (decoded progressively by :func:`iter_audio_windows`, so memory stays flat in
    the file's length) or 16 kHz samples.

    Each row equals the matching row of ``audio_features(samples)`` exactly for samples, and within 1e-5 for a file
    against ``audio_features(load_audio(path))`` (its resampling runs piecewise). Errors are ``audio_features``' and
    ``load_audio``'s; for a file, too short a file raises at the end of the iteration, naming it."""
    window = _window_samples(window_seconds)
    frames = window // HOP_LENGTH
    if isinstance(audio, (str, Path)):
        windows = iter_audio_windows(audio, window_seconds, SAMPLE_RATE, allow_partial)
        return _features(windows, n_mels, frames, name=str(audio))
    x = check_audio(audio)
    n = x.numel()
    slices = ((pad_or_trim(x[i: i + window], window), min(window, n - i)) for i in range(0, n, window))
    return _features(slices, n_mels, frames, name="audio")


def _features(windows: Iterator[tuple[Tensor | np.ndarray, int]], n_mels: int, frames: int,
              name: str) -> Iterator[tuple[Tensor, Tensor]]:
    total = 0
    held = None  # one window is held back, so that a file too short to featurise raises before yielding anything
    for samples, n_real in windows:
        total += n_real
        if held is not None:
            yield held
        held = (log_mel_spectrogram(torch.as_tensor(samples), n_mels), _mask(torch.tensor(n_real), frames))
    problem = _too_short(total)
    if problem is not None:
        raise ValueError(f"{name} {problem}")
    yield held
