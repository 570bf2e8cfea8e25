"""Truncated and lying audio files raise AudioDecodeError naming the file and how much of it is readable; complete
files of every format load without a word, at every rate and channel count tried (their decoded length differs from
the declared one by encoder priming / padding only); allow_partial=True returns the readable part with a warning.

Every file is written here by FFmpeg (PyAV) or libsndfile: a tone in noise, 3.33 s, then cut."""

import logging
import re

import numpy as np
import pytest

from zoo.modalities.audio import AudioDecodeError, load_audio
from zoo.modalities.audio.io import TRUNCATION_TOLERANCE_SECONDS

av = pytest.importorskip("av")
SECONDS = 3.33

# name (its suffix picks the reader) → how it is written. FFmpeg's MP4 muxer puts the index (moov) at the end unless
# asked for "faststart"; ADTS AAC declares no duration (FFmpeg estimates one from the bitrate).
PYAV = {
    "a.m4a": dict(codec="aac"),
    "faststart.mp4": dict(codec="aac", fmt="mp4", options={"movflags": "faststart"}),
    "a.mp3": dict(codec="libmp3lame"),
    "a.opus": dict(codec="libopus"),
    "a.webm": dict(codec="libopus"),
    "a.mka": dict(codec="libopus"),
    "a.aac": dict(codec="aac", fmt="adts"),
}
SOUNDFILE = {
    "a.wav": dict(subtype="PCM_16"),
    "a.flac": dict(subtype="PCM_16"),
    "a.aiff": dict(subtype="PCM_16"),
    "vorbis.ogg": dict(fmt="OGG", subtype="VORBIS"),
    "opus.ogg": dict(fmt="OGG", subtype="OPUS"),
}
OPUS_RATES = {8000: 8000, 16000: 16000, 44100: 48000}  # libopus encodes 8 / 12 / 16 / 24 / 48 kHz only


def write(files, tmp_path, name: str, rate: int = 44100, channels: int = 1, seconds: float = SECONDS):
    if "opus" in name or name.endswith((".webm", ".mka")):
        rate = OPUS_RATES[rate]
    samples = files.tone(seconds, rate, channels)
    path = tmp_path / name
    if name in PYAV:
        return files.encode_pyav(path, samples, rate, **PYAV[name])
    return files.encode_soundfile(path, samples, rate, **SOUNDFILE[name])


@pytest.mark.parametrize("name", list(PYAV) + list(SOUNDFILE))
def test_complete_files_load_without_error_at_every_rate(audio_files, tmp_path, name, caplog):
    for rate in (8000, 16000, 44100):
        for channels in (1, 2):
            path = write(audio_files, tmp_path, name, rate, channels)
            with caplog.at_level(logging.WARNING, logger="zoo.modalities.audio.io"):
                audio = load_audio(path)
            assert not caplog.records, f"{name} at {rate} Hz × {channels}: {caplog.records[0].getMessage()}"
            # encoders add priming / padding (AAC: up to 2 frames of 1024, which ADTS keeps) but lose nothing
            assert SECONDS - 0.01 <= len(audio) / 16000 <= SECONDS + 0.3, (name, rate, channels, len(audio))
            path.unlink()


# what each format's message says of an 8 s file cut to ~40% or ~75% of its bytes
S = r"(\d+\.\d s|\d+ ms)"  # a length as the messages give it
DECLARED = {
    "faststart.mp4": r"truncated: decoded " + S + r" of the 8\.0 s its container declares",
    "a.mp3": r"truncated: decoded " + S + r" of the 8\.0 s its container declares",
    "a.webm": r"truncated: decoded " + S + r" of the 8\.0 s its container declares; FFmpeg: \[matroska,webm\] File "
              r"ended prematurely",
    "a.mka": r"truncated: decoded " + S + r" of the 8\.0 s its container declares",
    "a.m4a": r"truncated or unfinished MP4: it has no index \('moov' box\)",
    "a.opus": r"truncated: its last Ogg page is cut off at byte [\d,]+ of its [\d,]+; the " + S + r" before it decode",
    "a.aac": r"damaged or cut short: FFmpeg: \[aac\] .*, after " + S + r" decoded; the file declares no duration",
    "a.wav": r"truncated: the file holds " + S + r" of the 8\.0 s its header declares \([\d,]+ of 256,000 bytes",
    "a.aiff": r"truncated: the file holds " + S + r" of the 8\.0 s its header declares",
    "a.flac": r"truncated or damaged: decoded " + S + r" of the 8\.0 s its header declares \(libsndfile: .*lost sync",
    "vorbis.ogg": r"truncated: its last Ogg page is cut off at byte [\d,]+ of its [\d,]+; the " + S + r" before it",
    "opus.ogg": r"truncated: its last Ogg page is cut off at byte [\d,]+ of its [\d,]+; the " + S + r" before it",
}


@pytest.mark.parametrize("fraction", [0.4, 0.75])
@pytest.mark.parametrize("name", list(DECLARED))
def test_truncated_files_raise_naming_the_file_and_what_is_readable(audio_files, tmp_path, name, fraction, caplog):
    complete = write(audio_files, tmp_path, name, 16000, 1, seconds=8.0)
    cut = audio_files.cut(complete, fraction)
    with pytest.raises(AudioDecodeError, match=re.escape(f"{cut}: ") + DECLARED[name]):
        load_audio(cut)
    if name == "a.m4a":  # nothing is readable without the index
        return
    with caplog.at_level(logging.WARNING, logger="zoo.modalities.audio.io"):
        partial = load_audio(cut, allow_partial=True)
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert str(cut) in caplog.records[0].getMessage() and "allow_partial=True" in caplog.records[0].getMessage()
    whole = load_audio(complete)
    # the readable part is a prefix of the whole: equal up to the last 0.1 s (the decoder's and resampler's edge)
    assert 0.2 * len(whole) < len(partial) < 0.9 * len(whole)
    keep = len(partial) - 1600
    np.testing.assert_allclose(partial[:keep], whole[:keep], atol=1e-5, rtol=0)


@pytest.mark.parametrize("fraction", [0.15, 0.3, 0.5, 0.7, 0.9])
def test_a_cut_mp4_with_video_raises_at_any_cut(audio_files, tmp_path, fraction):
    """The issue's case: a faststart MP4 with video, cut anywhere — a cut inside a video packet used to end the
    audio silently (FFmpeg only logs "partial file")."""
    path = audio_files.encode_pyav(tmp_path / "clip.mp4", audio_files.tone(4.0, 44100, 2), 44100, "aac", fmt="mp4",
                                   options={"movflags": "faststart"}, video=True)
    assert len(load_audio(path)) >= 4 * 16000
    cut = audio_files.cut(path, fraction)
    with pytest.raises(AudioDecodeError, match=re.escape(f"{cut}: truncated: decoded ") +
                       r"\d+(\.\d s| ms) of the 4\.0 s its container declares"):
        load_audio(cut)
    not_faststart = audio_files.encode_pyav(tmp_path / "end.mp4", audio_files.tone(4.0, 44100, 2), 44100, "aac",
                                            video=True)
    with pytest.raises(AudioDecodeError, match=r"end\.mp4: truncated or unfinished MP4"):
        load_audio(audio_files.cut(not_faststart, fraction))


def _set_data_size(path, size: int) -> None:
    data = bytearray(path.read_bytes())
    at = data.index(b"data")
    data[at + 4: at + 8] = size.to_bytes(4, "little")
    path.write_bytes(bytes(data))


def test_wav_whose_header_lies(audio_files, tmp_path):
    """libsndfile clamps a data size larger than the file to the file, silently; the header is read here too."""
    lie = audio_files.encode_soundfile(tmp_path / "lie.wav", audio_files.tone(2.0, 16000), 16000, subtype="PCM_16")
    _set_data_size(lie, 3 * 64000)
    with pytest.raises(AudioDecodeError, match=r"lie\.wav: truncated: the file holds 2\.0 s of the 6\.0 s its header "
                                               r"declares \(64,000 of 192,000 bytes of samples\)"):
        load_audio(lie)
    # the size streaming writers leave (0xFFFFFFFF, "to the end of the file") is no lie
    streamed = audio_files.encode_soundfile(tmp_path / "streamed.wav", audio_files.tone(2.0, 16000), 16000,
                                            subtype="PCM_16")
    _set_data_size(streamed, 0xFFFFFFFF)
    assert len(load_audio(streamed)) == 32000


def test_truncation_tolerance_is_above_what_complete_files_show(audio_files, tmp_path):
    """The largest shortfall of a complete file's decode against its declared length, over the formats that declare
    one: Opus pre-skip (312 samples) in Matroska, whose duration is rounded up to the millisecond — 8 ms."""
    shortfalls = []
    for name in ("faststart.mp4", "a.mp3", "a.webm", "a.mka"):
        for rate in (8000, 16000, 44100):
            path = write(audio_files, tmp_path, name, rate, 2)
            with av.open(str(path)) as c:
                s = c.streams.audio[0]
                declared = (float(s.duration * s.time_base) if s.duration is not None
                            else c.duration / av.time_base)
                decoded = sum(f.samples for f in c.decode(s)) / s.rate
            shortfalls.append(declared - decoded)
    assert max(shortfalls) == pytest.approx(0.008, abs=5e-4)
    assert TRUNCATION_TOLERANCE_SECONDS >= 10 * max(shortfalls)


def test_ffmpeg_errors_are_caught_every_time_and_the_log_level_restored(audio_files, tmp_path, caplog):
    """A WebM written live declares no duration, so only FFmpeg's "File ended prematurely" shows the cut. PyAV drops
    a message identical to the one before it; the second load must see it all the same. PyAV's log level (off by
    default) comes back as it was, and a level the caller set still gets FFmpeg's messages."""
    live = audio_files.encode_pyav(tmp_path / "live.webm", audio_files.tone(4.0, 48000), 48000, "libopus",
                                   options={"live": "1"})
    assert len(load_audio(live)) == 64000
    cut = audio_files.cut(live, 0.6)
    assert av.logging.get_level() is None
    for _ in range(2):
        with pytest.raises(AudioDecodeError, match=re.escape(f"{cut}: damaged or cut short: FFmpeg: [matroska,webm] "
                                                             "File ended prematurely, after ")):
            load_audio(cut)
    assert av.logging.get_level() is None
    av.logging.set_level(av.logging.ERROR)
    try:
        with caplog.at_level(logging.ERROR, logger="libav"):
            with pytest.raises(AudioDecodeError, match="damaged or cut short"):
                load_audio(cut)
        assert av.logging.get_level() == av.logging.ERROR
        assert [r.getMessage() for r in caplog.records if r.name.startswith("libav")] == ["File ended prematurely"]
    finally:
        av.logging.set_level(None)


def test_flac_of_unknown_length_reads_through_ffmpeg_and_its_cut_raises(audio_files, tmp_path):
    """A FLAC whose STREAMINFO gives 0 samples (a streaming encoder's, never rewritten): libsndfile reports an
    unbounded length that python-soundfile cannot read, so PyAV reads it; FFmpeg's decoder errors show a cut."""
    path = audio_files.encode_soundfile(tmp_path / "open.flac", audio_files.tone(3.0, 16000), 16000)
    data = bytearray(path.read_bytes())
    streaminfo = 8  # after "fLaC" and the metadata block header; total samples are its bits 108..143
    data[streaminfo + 13] &= 0xF0
    data[streaminfo + 14: streaminfo + 18] = bytes(4)
    path.write_bytes(bytes(data))
    np.testing.assert_allclose(load_audio(path), audio_files.tone(3.0, 16000)[0], atol=1 / 2**15, rtol=0)
    cut = audio_files.cut(path, 0.5)
    with pytest.raises(AudioDecodeError, match=re.escape(f"{cut}: damaged or cut short: FFmpeg: [flac] ") +
                       r".*, after \d\.\d s decoded; the file declares no duration to check against"):
        load_audio(cut)
