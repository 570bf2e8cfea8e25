"""Audio loading and Whisper log-mel features on a real file (tests/data/audio/jfk.flac, Whisper's test audio):
resampled mono of the right length, clear errors for bad files, features equal to transformers' WhisperFeatureExtractor
within 1e-4, and long audio cut into 30 s windows without losing a sample."""

from pathlib import Path

import numpy as np
import pytest
import torch

from zoo.modalities.audio import (AudioDecodeError, audio_features, load_audio, log_mel_spectrogram, pad_or_trim,
                                  split_windows)

JFK = Path(__file__).resolve().parents[2] / "data" / "audio" / "jfk.flac"  # 11.0 s, 44.1 kHz stereo


def test_jfk_loads_as_16k_mono_of_the_right_length():
    import soundfile as sf

    audio = load_audio(JFK)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) == 176000  # 11.000 s × 16 kHz
    raw, rate = sf.read(str(JFK), dtype="float32")
    assert raw.shape == (485100, 2) and rate == 44100
    # the mono mix-down, resampled, keeps the signal: same RMS within 2% (the 8 kHz low-pass drops little of speech)
    assert abs(np.sqrt((audio ** 2).mean()) / np.sqrt((raw.mean(1) ** 2).mean()) - 1) < 0.02
    assert len(load_audio(JFK, sample_rate=8000)) == 88000


def test_pyav_reads_compressed_audio_and_the_audio_of_a_video(tmp_path):
    av = pytest.importorskip("av")
    t = np.arange(16000 * 2) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    path = tmp_path / "tone.m4a"
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(tone[None], format="fltp", layout="mono")
        frame.sample_rate = 16000
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    audio = load_audio(path)
    assert abs(len(audio) - len(tone)) <= 2048  # AAC priming/padding frames
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * 16000 / len(audio) - 440) < 2


def test_bad_files_raise_naming_the_file(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioDecodeError, match=r"empty\.wav: the file is empty"):
        load_audio(empty)
    text = tmp_path / "notes.mp3"
    text.write_text("this is not audio at all\n" * 20)
    with pytest.raises(AudioDecodeError, match=r"notes\.mp3: "):
        load_audio(text)
    bogus_flac = tmp_path / "bogus.flac"
    bogus_flac.write_bytes(b"\x00" * 4096)
    with pytest.raises(AudioDecodeError, match=r"bogus\.flac: not readable as audio"):
        load_audio(bogus_flac)
    truncated = tmp_path / "truncated.flac"
    truncated.write_bytes(JFK.read_bytes()[: JFK.stat().st_size // 2])
    with pytest.raises(AudioDecodeError, match=r"truncated\.flac: "):
        load_audio(truncated)
    with pytest.raises(AudioDecodeError, match=r"missing\.wav: no such file"):
        load_audio(tmp_path / "missing.wav")


def test_silence_is_fine(tmp_path):
    import soundfile as sf

    sf.write(tmp_path / "silence.wav", np.zeros(16000, np.float32), 16000)
    audio = load_audio(tmp_path / "silence.wav")
    assert audio.shape == (16000,) and not audio.any()
    feats, mask = audio_features(audio)
    assert torch.isfinite(feats).all() and mask.sum() == 100


@pytest.mark.parametrize("n_mels", [128, 80])
def test_log_mel_equals_whisper_feature_extractor(n_mels):
    from transformers import WhisperFeatureExtractor

    fe = WhisperFeatureExtractor(feature_size=n_mels)
    audio = load_audio(JFK)
    want = fe(audio, sampling_rate=16000, return_tensors="np", return_attention_mask=True)
    got = log_mel_spectrogram(pad_or_trim(audio), n_mels=n_mels)
    assert got.shape == (n_mels, 3000)
    torch.testing.assert_close(got, torch.from_numpy(want["input_features"][0]), atol=1e-4, rtol=0)
    feats, mask = audio_features(audio, n_mels)
    torch.testing.assert_close(mask, torch.from_numpy(want["attention_mask"]).long())
    # batched: each example floored at its own max − 8, as the extractor does per example
    quiet = audio * 0.01
    batch = log_mel_spectrogram(torch.stack([pad_or_trim(audio), pad_or_trim(quiet)]), n_mels)
    want_quiet = fe(quiet, sampling_rate=16000, return_tensors="np")["input_features"][0]
    torch.testing.assert_close(batch[1], torch.from_numpy(want_quiet), atol=1e-4, rtol=0)
    torch.testing.assert_close(batch[0], got, atol=1e-5, rtol=0)


def test_long_audio_splits_into_30s_windows_without_losing_samples():
    x = torch.randn(16000 * 75 + 123)
    windows, lengths = split_windows(x)
    assert windows.shape == (3, 480000) and lengths.tolist() == [480000, 480000, 16000 * 15 + 123]
    back = torch.cat([w[:n] for w, n in zip(windows, lengths)])
    assert torch.equal(back, x)
    feats, mask = audio_features(x)
    assert feats.shape == (3, 128, 3000) and mask.sum(1).tolist() == [3000, 3000, 1501]
    with pytest.raises(ValueError, match="audio is empty"):
        split_windows(torch.zeros(0))
