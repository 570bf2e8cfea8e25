"""Reading audio files: ``load_audio(path, sample_rate=16000)`` → mono float32 numpy array in [-1, 1], and
``iter_audio_windows(path, window_seconds=30)`` → the same samples one window at a time, in memory flat in the length.

soundfile (libsndfile) reads wav / flac / ogg / aiff; PyAV reads everything else (mp3, m4a, opus, and the audio track
of a video container). Stereo is mixed down by averaging the channels; the rate is converted with torchaudio's
windowed-sinc resampler. A file that is missing, empty, truncated or not audio raises :class:`AudioDecodeError` naming
the file — nothing is padded or replaced silently.

Truncation is caught three ways, because no single one covers every format:

- the decoded length against the length the file declares: a WAV / AIFF header's data size, FLAC's STREAMINFO, an
  MP4's or an MP3 Xing header's stream duration, Matroska / WebM's track or segment duration. A complete file may
  decode a little shorter than it declares (Opus pre-skip: 6.5 ms in Ogg, 8 ms in Matroska, measured on files FFmpeg
  writes); :data:`TRUNCATION_TOLERANCE_SECONDS` allows for that and nothing more. A duration FFmpeg estimated from
  the bitrate (ADTS AAC, an MP3 without a Xing/Info header) is a guess from the file's size and is not checked;
  on such files a cut that falls between two frames cannot be seen.
- Ogg (ogg, oga, opus) declares its length only in its last page, so a cut file declares the cut length; instead,
  every logical stream of a complete Ogg file ends with an end-of-stream page, which a cut file lacks.
- FFmpeg's own error messages while demuxing and decoding (an MP4's "partial file", Matroska's "File ended
  prematurely", a decoder's "Input buffer exhausted"), captured through ``av.logging``: where the file declares no
  length to compare with, an error means the file is damaged or cut short.

``allow_partial=True`` returns what decodes of a truncated file instead, with a warning on this module's logger.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

SOUNDFILE_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif"}
# A complete file decodes at most 8 ms short of its declared length in every format and rate measured (Opus
# pre-skip in Matroska); 0.1 s leaves room for other encoders' priming. A cut inside the last 0.1 s still shows when
# FFmpeg reports it (a warning then) and in the Ogg / WAV structure checks, which need no tolerance.
TRUNCATION_TOLERANCE_SECONDS = 0.1
DECODE_BLOCK_SECONDS = 10.0  # decoded per step when streaming: bounds memory, amortises per-step overhead
SOUNDFILE_RETRY_FRAMES = 4096  # after a read error, the block is reread in steps this small to keep what decodes
# torchaudio.functional.resample's defaults; the chunked resampler needs its kernel's reach
RESAMPLE_LOWPASS_WIDTH = 6
RESAMPLE_ROLLOFF = 0.99
WAV_UNKNOWN_LENGTH = 0xFFFFFFFF  # a data size streaming writers leave when they cannot seek back
SF_UNKNOWN_FRAMES = 2**63 - 1  # libsndfile's frame count when the header leaves the length open (FLAC's 0 samples)

logger = logging.getLogger(__name__)


class AudioDecodeError(RuntimeError):
    """An audio file could not be decoded; the message names the file and the reason."""


def _seconds(frames: int, rate: int) -> str:
    return f"{frames / rate:.1f} s" if frames >= rate else f"{frames / rate * 1000:.0f} ms"


def _refuse_or_warn(problem: str, allow_partial: bool) -> None:
    if not allow_partial:
        raise AudioDecodeError(f"{problem} (allow_partial=True returns the part that decodes)")
    logger.warning("%s; allow_partial=True: keeping the part that decodes", problem)


# ---------------------------------------------------------------------------------------------------------- structure


def _ogg_problem(path: Path) -> str | None:
    """Why the Ogg file at ``path`` is incomplete (its last page cut off, or a logical stream without its
    end-of-stream page), or None. Walks the page headers only; bodies are skipped."""
    size = path.stat().st_size
    open_streams: set[int] = set()
    pos = 0
    with open(path, "rb") as f:
        while pos < size:
            f.seek(pos)
            header = f.read(27)
            if header[:4] != b"OggS":
                break  # trailing bytes that are no Ogg page (a tag some tools append): the stream check decides
            if len(header) < 27:
                return f"its last Ogg page is cut off at byte {size:,}, inside the page header"
            flags, serial, n_segments = header[5], int.from_bytes(header[14:18], "little"), header[26]
            lacing = f.read(n_segments)
            end = pos + 27 + n_segments + sum(lacing)
            if len(lacing) < n_segments or end > size:
                return f"its last Ogg page is cut off at byte {size:,} of its {end:,}"
            if flags & 0x02:
                open_streams.add(serial)
            if flags & 0x04:
                open_streams.discard(serial)
            pos = end
    if open_streams:
        return "its Ogg stream stops without the end-of-stream page that closes a complete file"
    return None


def _pcm_data_problem(path: Path) -> str | None:
    """For a WAV (RIFF / RIFX / RF64) or AIFF file: the sample data its header declares against what the file holds,
    as a reason when the file holds less (libsndfile clamps to the file and says nothing), else None."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12:
            return None
        if head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE":
            order, data_id, data_skip = ("big" if head[:4] == b"RIFX" else "little"), b"data", 0
        elif head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
            order, data_id, data_skip = "big", b"SSND", 8  # SSND's body starts with offset and block size
        else:
            return None
        pos, byte_rate, ds64_data = 12, None, None
        while pos + 8 <= size:
            f.seek(pos)
            chunk = f.read(8)
            chunk_id, chunk_size = chunk[:4], int.from_bytes(chunk[4:8], order)
            if chunk_id == b"ds64":  # RF64: the 64-bit sizes; the data chunk's own size field is 0xFFFFFFFF
                ds64_data = int.from_bytes(f.read(16)[8:16], "little")
            elif chunk_id == b"fmt ":
                byte_rate = int.from_bytes(f.read(12)[8:12], order)
            elif chunk_id == b"COMM" and head[8:12] == b"AIFF":  # AIFC may compress: its size then says no time
                comm = f.read(18)  # channels (2), frames (4), bits per sample (2), rate (80-bit float)
                channels, bits = int.from_bytes(comm[0:2], "big"), int.from_bytes(comm[6:8], "big")
                exponent, mantissa = int.from_bytes(comm[8:10], "big") & 0x7FFF, int.from_bytes(comm[10:18], "big")
                rate = mantissa * 2.0 ** (exponent - 16383 - 63)
                byte_rate = round(rate * channels * -(-bits // 8))
            elif chunk_id == data_id:
                if chunk_size == WAV_UNKNOWN_LENGTH and ds64_data is not None:
                    chunk_size = ds64_data
                elif chunk_size == WAV_UNKNOWN_LENGTH:
                    return None  # written by a streaming tool that could not go back: the length is "to the end"
                declared = chunk_size - data_skip
                held = size - (pos + 8 + data_skip)
                if held >= declared:
                    return None
                if not byte_rate:
                    return f"its header declares {declared:,} bytes of samples, the file holds {held:,}"
                return (f"the file holds {held / byte_rate:.1f} s of the {declared / byte_rate:.1f} s its "
                        f"header declares ({held:,} of {declared:,} bytes of samples)")
            pos += 8 + chunk_size + (chunk_size & 1)
    return None


# ------------------------------------------------------------------------------------------------------------ readers


class _SoundfileReader:
    """libsndfile, block by block: ``rate``, and ``blocks()`` yielding ``(channels, n)`` float32 arrays."""

    def __init__(self, path: Path, allow_partial: bool):
        import soundfile as sf

        self.path, self.allow_partial = path, allow_partial
        try:
            self.file = sf.SoundFile(str(path))
        except (RuntimeError, sf.LibsndfileError) as e:
            raise AudioDecodeError(f"{path}: not readable as audio by libsndfile ({e})") from e
        self.rate = self.file.samplerate
        self.length_unknown = self.file.frames >= SF_UNKNOWN_FRAMES
        if self.length_unknown:  # soundfile cannot read such a file (each read seeks past its end): PyAV reads it
            self.file.close()
            return
        self.declared = self.file.frames  # FLAC's STREAMINFO; WAV's data size and Ogg's last page, clamped to the file
        if self.file.format == "OGG":
            problem = _ogg_problem(path)
            problem = problem and f"{problem}; the {_seconds(self.declared, self.rate)} before it decode"
        else:
            problem = _pcm_data_problem(path)
        if problem is not None:
            try:
                _refuse_or_warn(f"{path}: truncated: {problem}", allow_partial)
            except AudioDecodeError:
                self.file.close()
                raise

    def blocks(self, block_frames: int) -> Iterator[np.ndarray]:
        import soundfile as sf

        got, step, first_error = 0, block_frames, None
        with self.file:
            while True:
                try:
                    data = self.file.read(step, dtype="float32", always_2d=True)  # (frames, channels)
                except (RuntimeError, sf.LibsndfileError) as e:  # a cut FLAC: "flac decoder lost sync"
                    first_error = first_error or e
                    if step > SOUNDFILE_RETRY_FRAMES:  # the failed block may hold good frames: reread it in small steps
                        try:
                            self.file.seek(got)
                            step = SOUNDFILE_RETRY_FRAMES
                            continue
                        except (RuntimeError, sf.LibsndfileError):
                            pass
                    _refuse_or_warn(f"{self.path}: truncated or damaged: decoded {_seconds(got, self.rate)} of the "
                                    f"{_seconds(self.declared, self.rate)} its header declares (libsndfile: "
                                    f"{first_error})", self.allow_partial)
                    return
                if not len(data):
                    break
                got += len(data)
                yield data.T
        if 0 < self.declared and got < self.declared:  # libsndfile may also just stop early at a cut body
            _refuse_or_warn(f"{self.path}: truncated: decoded {_seconds(got, self.rate)} of the "
                            f"{_seconds(self.declared, self.rate)} its header declares", self.allow_partial)


_ffmpeg_log_lock = threading.Lock()
_ffmpeg_log_users = 0
_ffmpeg_log_saved_level: int | None = None
_ffmpeg_log_marker = itertools.count()


@contextmanager
def _ffmpeg_messages(into: list[tuple[int, str]]):
    """Collect FFmpeg's warnings and errors from this thread as (level, "[component] message") into ``into``.

    PyAV forwards nothing from FFmpeg by default; the level is raised to WARNING while any reader is inside, then
    restored. PyAV drops a message identical to the one before it, which would hide the second of two cut files'
    identical errors; a unique marker logged first resets that (and flushes earlier repeats, dropped with it).
    Messages the caller's own PyAV level asks for are passed on to the ``libav`` loggers as PyAV would have."""
    import av.logging as avlog

    global _ffmpeg_log_users, _ffmpeg_log_saved_level
    with _ffmpeg_log_lock:
        if _ffmpeg_log_users == 0:
            _ffmpeg_log_saved_level = avlog.get_level()
            if _ffmpeg_log_saved_level is None or _ffmpeg_log_saved_level < avlog.WARNING:
                avlog.set_level(avlog.WARNING)
        _ffmpeg_log_users += 1
        saved = _ffmpeg_log_saved_level
    marker = f"zoo audio capture {next(_ffmpeg_log_marker)}"
    try:
        with avlog.Capture() as logs:
            avlog.log(avlog.WARNING, "zoo.audio", marker)
            yield
    finally:
        seen = [i for i, (_, _, message) in enumerate(logs) if message == marker]
        for level, name, message in logs[seen[0] + 1 if seen else 0:]:
            into.append((level, f"[{name}] {message.strip()}" if name else message.strip()))
            if saved is not None and level <= saved:
                logging.getLogger(f"libav.{name or 'generic'}").log(avlog.adapt_level(level), message.strip())
        with _ffmpeg_log_lock:
            _ffmpeg_log_users -= 1
            if _ffmpeg_log_users == 0:
                avlog.set_level(_ffmpeg_log_saved_level)


def _parse_hms(text: str) -> float | None:
    """Matroska's per-track DURATION tag, "HH:MM:SS.nnnnnnnnn", in seconds."""
    try:
        h, m, s = text.strip().split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)
    except ValueError:
        return None


class _PyAVReader:
    """FFmpeg through PyAV, frame by frame: ``rate``, and ``blocks()`` yielding ``(channels, n)`` float32 arrays,
    checked against the duration the container declares at the end."""

    def __init__(self, path: Path, allow_partial: bool):
        import av

        self.path, self.allow_partial = path, allow_partial
        self.messages: list[tuple[int, str]] = []
        with _ffmpeg_messages(self.messages):
            try:
                self.container = av.open(str(path))
            except (av.error.FFmpegError, UnicodeDecodeError) as e:
                if "moov atom not found" in str(e):  # an MP4 keeps its index at the end unless written "faststart"
                    raise AudioDecodeError(f"{path}: truncated or unfinished MP4: it has no index ('moov' box), "
                                           f"which a file cut short or never closed lacks") from e
                raise AudioDecodeError(f"{path}: not a media file PyAV can open ({e})") from e
        if not self.container.streams.audio:
            self.container.close()
            raise AudioDecodeError(f"{path}: has no audio stream")
        self.stream = self.container.streams.audio[0]
        self.rate = self.stream.rate
        self.declared = self._declared_seconds()
        problem = _ogg_problem(path) if self.container.format.name == "ogg" else None
        if problem is not None:
            if self.declared is not None:  # an Ogg file's duration is its last page's: that of the part before the cut
                problem += f"; the {self.declared:.1f} s before it decode"
            try:
                _refuse_or_warn(f"{path}: truncated: {problem}", allow_partial)
            except AudioDecodeError:
                self.container.close()
                raise

    def _declared_seconds(self) -> float | None:
        """The audio stream's duration as the container states it: the stream's own, Matroska's per-track tag, or the
        container's when the audio is its only stream (beside video it may be the video's); None when none is."""
        import av

        if any("Estimating duration from bitrate" in m for _, m in self.messages):
            return None  # a guess from the file size, which a cut file shrinks with it
        s, c = self.stream, self.container
        if s.duration is not None and s.time_base is not None:
            return float(s.duration * s.time_base)
        tagged = _parse_hms(s.metadata["DURATION"]) if "DURATION" in s.metadata else None
        if tagged is not None:
            return tagged
        if c.duration is not None and len(c.streams) == 1:
            return c.duration / av.time_base
        return None

    def blocks(self, block_frames: int) -> Iterator[np.ndarray]:
        import av

        with self.container:
            # planar float32 at the stream's own rate and layout; channels mixed by the caller
            resampler = av.AudioResampler(format="fltp", layout=self.stream.layout.name, rate=self.stream.rate)
            frames = self.container.decode(self.stream)
            got, failure, done = 0, None, False
            while not done:
                chunks, n = [], 0
                with _ffmpeg_messages(self.messages):
                    try:
                        while n < block_frames:
                            frame = next(frames, None)
                            if frame is None:
                                chunks += [out.to_ndarray() for out in resampler.resample(None)]
                                done = True
                                break
                            for out in resampler.resample(frame):
                                chunks.append(out.to_ndarray())
                                n += out.samples
                    except av.error.FFmpegError as e:
                        failure, done = e, True
                if chunks:
                    block = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
                    got += block.shape[1]
                    yield block
        self._check_complete(got, failure)

    def _check_complete(self, got: int, failure: Exception | None) -> None:
        import av.logging as avlog

        errors = [m for level, m in self.messages if level <= avlog.ERROR]
        # FFmpeg's own first error says more than PyAV's exception ("Invalid data found when processing input")
        said = f"FFmpeg: {errors[0]}" if errors else (f"FFmpeg: {failure}" if failure is not None else "")
        decoded = _seconds(got, self.rate)
        if self.declared is not None:
            short = self.declared - got / self.rate
            of = f"of the {self.declared:.1f} s its container declares"
            if short > TRUNCATION_TOLERANCE_SECONDS:
                _refuse_or_warn(f"{self.path}: truncated: decoded {decoded} {of}" + (f"; {said}" if said else ""),
                                self.allow_partial)
            elif said:  # the decoder hiccupped (a damaged frame) but the length is all there
                logger.warning("%s: decoded %s %s, with errors on the way (%s)", self.path, decoded, of, said)
        elif said:
            _refuse_or_warn(f"{self.path}: damaged or cut short: {said}, after {decoded} decoded; the file declares "
                            f"no duration to check against", self.allow_partial)


def _open_reader(path: Path, allow_partial: bool) -> _SoundfileReader | _PyAVReader:
    if not path.is_file():
        raise AudioDecodeError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioDecodeError(f"{path}: the file is empty")
    if path.suffix.lower() in SOUNDFILE_SUFFIXES:
        reader = _SoundfileReader(path, allow_partial)
        if not reader.length_unknown:
            return reader
    return _PyAVReader(path, allow_partial)


def _checked_blocks(reader: _SoundfileReader | _PyAVReader, path: Path) -> Iterator[np.ndarray]:
    block_frames = max(1, round(DECODE_BLOCK_SECONDS * reader.rate))
    for block in reader.blocks(block_frames):
        if not np.isfinite(block).all():
            raise AudioDecodeError(f"{path}: decoded samples contain NaN or infinity")
        yield block


# --------------------------------------------------------------------------------------------------------- resampling


def resample(audio: np.ndarray | torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """torchaudio's band-limited sinc resampling along the last axis (float32)."""
    import torchaudio.functional as AF

    x = torch.as_tensor(audio, dtype=torch.float32)
    if orig_rate == new_rate:
        return x
    return AF.resample(x, orig_rate, new_rate, lowpass_filter_width=RESAMPLE_LOWPASS_WIDTH, rolloff=RESAMPLE_ROLLOFF)


class ChunkedResampler:
    """:func:`resample` of a 1-D signal that arrives in pieces: ``push(piece)`` returns the output samples that are
    final so far, ``finish()`` the rest. Concatenated, they equal ``resample(whole_signal)`` up to float rounding.

    torchaudio's resampler is a polyphase FIR filter: the signal is split into blocks of ``orig / gcd`` input samples,
    each giving ``new / gcd`` outputs from the input within ``width`` samples either side. So each piece is resampled
    with whole blocks of context kept from before it and held back after it, and only the outputs whose inputs were
    all present are returned; at the two ends the context is torchaudio's own zero padding."""

    def __init__(self, orig_rate: int, new_rate: int):
        g = math.gcd(orig_rate, new_rate)
        self.orig_rate, self.new_rate = orig_rate, new_rate
        self.in_block, self.out_block = orig_rate // g, new_rate // g
        width = math.ceil(RESAMPLE_LOWPASS_WIDTH * self.in_block / (min(self.in_block, self.out_block) * RESAMPLE_ROLLOFF))
        self.context = -(-width // self.in_block) * self.in_block  # whole blocks, so outputs stay on the block grid
        self.pending = np.zeros(0, np.float32)  # input samples not yet fully used, with `kept` of context in front
        self.kept = 0
        self.consumed = 0  # input samples whose outputs are out: a multiple of in_block
        self.total_in = 0

    def push(self, piece: np.ndarray) -> np.ndarray:
        self.pending = np.concatenate((self.pending, np.asarray(piece, np.float32)))
        self.total_in += len(piece)
        ready = (len(self.pending) - self.kept - self.context) // self.in_block * self.in_block
        if ready <= 0:
            return np.zeros(0, np.float32)
        out = resample(self.pending[: self.kept + ready + self.context], self.orig_rate, self.new_rate).numpy()
        start = self.kept // self.in_block * self.out_block
        result = out[start: start + ready // self.in_block * self.out_block]
        keep_from = max(0, self.kept + ready - self.context)
        self.pending = self.pending[keep_from:]
        self.kept = self.kept + ready - keep_from
        self.consumed += ready
        return result

    def finish(self) -> np.ndarray:
        if not len(self.pending) - self.kept:
            return np.zeros(0, np.float32)
        out = resample(self.pending, self.orig_rate, self.new_rate).numpy()
        total_out = -(-self.total_in * self.out_block // self.in_block)  # torchaudio's ceil(new * length / orig)
        start = self.kept // self.in_block * self.out_block
        return out[start: start + total_out - self.consumed // self.in_block * self.out_block]


# ---------------------------------------------------------------------------------------------------------------- API


def load_audio(path: str | Path, sample_rate: int = 16000, allow_partial: bool = False) -> np.ndarray:
    """Mono float32 samples of ``path`` at ``sample_rate`` (1-D numpy array). A truncated file raises
    :class:`AudioDecodeError`; ``allow_partial=True`` returns the part that decodes, with a warning."""
    path = Path(path)
    reader = _open_reader(path, allow_partial)
    blocks = list(_checked_blocks(reader, path))
    if not blocks or not sum(b.shape[1] for b in blocks):
        raise AudioDecodeError(f"{path}: holds no audio samples")
    mono = np.concatenate(blocks, axis=1).mean(axis=0)
    return resample(mono, reader.rate, sample_rate).numpy()


def iter_audio_windows(path: str | Path, window_seconds: float = 30, sample_rate: int = 16000,
                       allow_partial: bool = False) -> Iterator[tuple[np.ndarray, int]]:
    """``path`` decoded, mixed to mono and resampled progressively, as consecutive windows: yields
    ``(samples (window,), n_real)`` float32, the last window zero-padded after its ``n_real`` real samples.

    The windows' real samples, concatenated, equal ``load_audio(path, sample_rate)`` within 1e-6 (the resampler
    runs piecewise; see :class:`ChunkedResampler`), and memory stays flat in the file's length. The file is opened
    and its header checked here; a truncation that only shows at the end (a short decode) raises when the iteration
    gets there, after the windows before it."""
    path = Path(path)
    window = round(window_seconds * sample_rate)
    if window <= 0:
        raise ValueError(f"window_seconds must be positive, got {window_seconds}")
    return _windows(path, _open_reader(path, allow_partial), window, sample_rate)


def _windows(path: Path, reader: _SoundfileReader | _PyAVReader, window: int,
             sample_rate: int) -> Iterator[tuple[np.ndarray, int]]:
    resampler = ChunkedResampler(reader.rate, sample_rate) if reader.rate != sample_rate else None
    buffer, filled, total = np.zeros(window, np.float32), 0, 0

    def fill(samples: np.ndarray) -> Iterator[tuple[np.ndarray, int]]:
        nonlocal buffer, filled
        while len(samples):
            take = min(window - filled, len(samples))
            buffer[filled: filled + take] = samples[:take]
            filled, samples = filled + take, samples[take:]
            if filled == window:
                yield buffer, window
                buffer, filled = np.zeros(window, np.float32), 0

    for block in _checked_blocks(reader, path):
        mono = block.mean(axis=0)
        total += len(mono)
        yield from fill(resampler.push(mono) if resampler is not None else mono)
    if total == 0:
        raise AudioDecodeError(f"{path}: holds no audio samples")
    if resampler is not None:
        yield from fill(resampler.finish())
    if filled:
        yield buffer, filled
