"""Long audio window by window: the chunked resampler equals torchaudio's whole-signal resample, iter_audio_windows
equals load_audio, iter_audio_features equals the rows of audio_features, answer() on a file gives what it gives on
the samples; featurising a file window by window peaks at the same memory for 2 and 20 minutes; empty or too-short
audio says so in one line."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from zoo.modalities.audio import (Qwen2Audio, Qwen2AudioConfig, answer, audio_features, iter_audio_features,
                                  iter_audio_windows, load_audio)
from zoo.modalities.audio import io as audio_io
from zoo.modalities.audio.io import ChunkedResampler, resample
from zoo.modalities.audio.qa import audio_inputs

ROOT = Path(__file__).resolve().parents[3]
RESAMPLE_ATOL = 1e-6  # float32 rounding of the same FIR sums (measured ≤ 2.4e-7 on unit-variance noise)
FEATURES_ATOL = 1e-5


def _pieces(x: np.ndarray, size: int) -> list[np.ndarray]:
    if size == 1:  # one sample at a time for the first 2,000, then the rest at once
        return [x[i: i + 1] for i in range(2000)] + [x[2000:]]
    return [x[i: i + size] for i in range(0, len(x), size)]


@pytest.mark.parametrize("orig,new", [(44100, 16000), (48000, 16000), (22050, 16000), (8000, 16000), (16000, 8000),
                                      (44100, 48000)])
def test_chunked_resampler_equals_whole_signal_resample(orig, new):
    x = np.random.default_rng(0).standard_normal(orig * 3 + 123).astype(np.float32) * 0.3
    want = resample(x, orig, new).numpy()
    for size in (1, 997, orig, 5 * orig):
        r = ChunkedResampler(orig, new)
        got = np.concatenate([r.push(p) for p in _pieces(x, size)] + [r.finish()])
        assert got.shape == want.shape, (size, got.shape, want.shape)
        np.testing.assert_allclose(got, want, atol=RESAMPLE_ATOL, rtol=0, err_msg=f"pieces of {size}")


def _files(audio_files, tmp_path, seconds=7.3):
    return {
        "44k_stereo.flac": audio_files.encode_soundfile(tmp_path / "44k_stereo.flac",
                                                        audio_files.tone(seconds, 44100, 2), 44100),
        "48k.m4a": audio_files.encode_pyav(tmp_path / "48k.m4a", audio_files.tone(seconds, 48000), 48000, "aac"),
        "16k.wav": audio_files.encode_soundfile(tmp_path / "16k.wav", audio_files.tone(seconds, 16000), 16000,
                                                subtype="FLOAT"),
    }


def test_iter_audio_windows_equals_load_audio(audio_files, tmp_path, monkeypatch):
    monkeypatch.setattr(audio_io, "DECODE_BLOCK_SECONDS", 0.7)  # many decode blocks per 2 s window
    for name, path in _files(audio_files, tmp_path).items():
        whole = load_audio(path)
        windows = list(iter_audio_windows(path, window_seconds=2))
        assert [len(w) for w, _ in windows] == [32000] * len(windows)
        lengths = [n for _, n in windows]
        assert lengths[:-1] == [32000] * (len(windows) - 1) and sum(lengths) == len(whole), (name, lengths)
        assert not windows[-1][0][lengths[-1]:].any()  # the padding is zeros
        got = np.concatenate([w[:n] for w, n in windows])
        if name == "16k.wav":  # no resampling: the same samples
            np.testing.assert_array_equal(got, whole)
        else:
            np.testing.assert_allclose(got, whole, atol=RESAMPLE_ATOL, rtol=0, err_msg=name)


def test_iter_audio_features_equals_audio_features_rows(audio_files, tmp_path, monkeypatch):
    monkeypatch.setattr(audio_io, "DECODE_BLOCK_SECONDS", 0.7)
    x = torch.from_numpy(audio_files.tone(5.3, 16000)[0])
    want_feats, want_mask = audio_features(x, 80, window_seconds=2)
    rows = list(iter_audio_features(x, 80, window_seconds=2))
    assert len(rows) == len(want_feats) == 3
    for (f, m), wf, wm in zip(rows, want_feats, want_mask):
        assert torch.equal(f, wf) and torch.equal(m, wm)
    for name, path in _files(audio_files, tmp_path).items():
        want_feats, want_mask = audio_features(load_audio(path), window_seconds=2)
        feats, mask = audio_inputs(path, 128, 2)  # what answer() uses for a file: the streamed rows, stacked
        assert torch.equal(mask, want_mask), name
        if name == "16k.wav":
            assert torch.equal(feats, want_feats)
        else:
            torch.testing.assert_close(feats, want_feats, atol=FEATURES_ATOL, rtol=0, msg=name)


def _tiny_model() -> Qwen2Audio:
    torch.manual_seed(0)
    return Qwen2Audio(Qwen2AudioConfig(
        lm=dict(vocab_size=260, d_model=32, n_layer=1, n_head=2, d_ff=64, family="qwen2", bos_token_id=256,
                eos_token_id=257, pad_token_id=258, max_position_embeddings=4096),
        audio=dict(n_mels=80, d_model=32, n_layer=1, n_head=2, d_ff=64, max_source_positions=100),  # 2 s windows
        audio_token_id=259))


def test_answer_on_a_file_equals_answer_on_its_samples(audio_files, tmp_path):
    model = _tiny_model()
    for name, path in _files(audio_files, tmp_path, seconds=5.1).items():
        got = answer(model, path, "q? ", max_new_tokens=6)
        assert len(got) and got == answer(model, load_audio(path), "q? ", max_new_tokens=6), name


def test_empty_or_too_short_audio_says_what_is_wrong(audio_files, tmp_path):
    model = _tiny_model()
    with pytest.raises(ValueError, match=r"^answer\(\): the audio is empty \(0 samples\)$"):
        answer(model, np.zeros(0, np.float32), "q? ")
    with pytest.raises(ValueError, match=r"^answer\(\): the audio holds 100 samples \(6\.2 ms at 16 kHz\), fewer than "
                                         r"one 400-sample FFT window \(25 ms\): no complete mel frame$"):
        answer(model, np.zeros(100, np.float32), "q? ")
    short = audio_files.encode_soundfile(tmp_path / "click.wav", np.zeros((1, 399), np.float32), 16000)
    with pytest.raises(ValueError, match=r"click\.wav holds 399 samples \(24\.9 ms at 16 kHz\), fewer than one "
                                         r"400-sample FFT window"):
        answer(model, short, "q? ")
    assert answer(model, np.zeros(400, np.float32), "q? ", max_new_tokens=1) is not None  # one window is enough
    with pytest.raises(ValueError, match=r"^audio is empty \(0 samples\)$"):
        audio_features(np.zeros(0, np.float32))
    with pytest.raises(ValueError, match=r"^audio holds 1 samples \(0\.1 ms at 16 kHz\), fewer than one 400-sample"):
        audio_features(np.zeros(1, np.float32))
    with pytest.raises(ValueError, match=r"^audio must be 1-D mono 16 kHz samples, got shape \(2, 16000\)$"):
        audio_features(np.zeros((2, 16000), np.float32))
    bad = np.zeros(16000, np.float32)
    bad[1234] = np.nan
    with pytest.raises(ValueError, match=r"^audio holds NaN or infinite samples \(the first at sample 1234\)$"):
        audio_features(bad)
    with pytest.raises(ValueError, match=r"click\.wav holds 399 samples"):
        list(iter_audio_features(short))


def _benchmark():
    spec = importlib.util.spec_from_file_location("audio_memory", ROOT / "benchmarks" / "audio_memory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_streamed_features_peak_memory_is_flat_in_the_length(tmp_path):
    """benchmarks/audio_memory.py's measurement, shrunk: each file featurised window by window in a fresh process.
    The whole-file path (load_audio + audio_features) measured the same way peaks 1.74× higher at 20 min than at
    2 min (793 MB → 1,383 MB here), so a path that holds the whole audio fails this."""
    bench = _benchmark()
    peaks = {}
    for minutes in (2, 20):
        path = bench.write_long_audio(tmp_path / f"{minutes}min.wav", minutes * 60)
        row = bench.measure(path, "streamed", timeout=300)
        assert row["windows"] == minutes * 2 and row["real_frames"] == minutes * 60 * 100
        peaks[minutes] = row["peak_rss_mb"]
        path.unlink()
    assert peaks[20] / peaks[2] < 1.5, peaks
