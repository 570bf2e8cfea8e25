"""Reading and sampling video frames.

``read_frames(path, num_frames=…)`` samples uniformly over the clip as LongVA / lmms-eval do
(``np.linspace(first, last, num_frames, dtype=int)``); ``read_frames(path, fps=…, max_frames=…)`` takes frames at a
target rate and, above ``max_frames``, falls back to uniform sampling, as LLaVA-NeXT does. Both return uint8 frames
``(T, H, W, 3)`` (RGB, rotation metadata applied) and their presentation timestamps in seconds.

A clip (or ``start``/``end`` window) with fewer frames than ``num_frames``: lmms-eval's linspace then repeats
indices, which decord decoded as repeated frames while PyAV returned each frame once, and 2,000 frames asked of a
950-frame clip allocated gigabytes of copies. ``on_short`` says what to do, the same on both backends:

- ``"error"`` (default): a ``ValueError`` naming the file, its frame count and the number asked;
- ``"cap"``: every frame of the clip once (fewer than asked), with a logged warning;
- ``"repeat"``: lmms-eval's indices, repeats included (``num_frames`` frames); each distinct frame is decoded once.

Rate sampling (``fps``, ``max_frames``) never repeats a frame: a rate above the clip's own takes every frame once,
and ``max_frames`` only lowers the count, so ``on_short`` applies to ``num_frames`` alone.

Backends: decord (default) and PyAV (fallback, and for files decord cannot open). A frame that fails to decode raises
:class:`VideoDecodeError` naming the file and the frame; it is never replaced or dropped unless
``skip_bad_frames=True`` is asked for, and then every skipped frame is logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

BACKENDS = ("auto", "decord", "pyav")
ON_SHORT = ("error", "cap", "repeat")


class VideoDecodeError(RuntimeError):
    """A video file (or one of its frames) could not be read."""


@dataclass
class VideoInfo:
    num_frames: int
    fps: float
    timestamps: np.ndarray  # (num_frames,) seconds, presentation order


def sample_indices(timestamps: np.ndarray, fps: float, num_frames: int | None = None, sample_fps: float | None = None,
                   max_frames: int | None = None, start: float | None = None, end: float | None = None,
                   on_short: str = "error") -> np.ndarray:
    """Frame indices to read, ascending (with repeats only for ``on_short="repeat"``). ``timestamps`` are all the
    clip's frame times (seconds)."""
    if on_short not in ON_SHORT:
        raise ValueError(f"on_short must be one of {ON_SHORT}, got {on_short!r}")
    if num_frames is not None and sample_fps is not None:
        raise ValueError("give num_frames (uniform sampling) or fps (rate sampling), not both")
    for name, value in (("num_frames", num_frames), ("max_frames", max_frames)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be ≥ 1, got {value}")
    if sample_fps is not None and sample_fps <= 0:
        raise ValueError(f"fps must be > 0, got {sample_fps}")
    candidates = np.arange(len(timestamps))
    if start is not None or end is not None:
        lo = -np.inf if start is None else start
        hi = np.inf if end is None else end
        if lo >= hi:
            raise ValueError(f"start ({start}) must be before end ({end})")
        # decord reports float32 timestamps (a frame at 0.6 s reads 0.60000002 s): within that rounding of a bound, a
        # frame counts as on it, so both backends keep the same frames
        slack = 1e-6 * max(1.0, float(np.max(np.abs(timestamps), initial=0.0)))
        candidates = candidates[(timestamps >= lo - slack) & (timestamps <= hi + slack)]
        if len(candidates) == 0:
            raise ValueError(f"no frame lies in [{start}, {end}] s (the clip spans "
                             f"{timestamps[0]:.3f}–{timestamps[-1]:.3f} s)")
    if num_frames is not None:
        if num_frames > len(candidates) and on_short != "repeat":
            if on_short == "cap":
                return candidates
            raise ValueError(f"num_frames={num_frames} asked for, but the clip has only {len(candidates)} frames"
                             f"{_window(start, end)}; pass on_short='cap' to take each of them once, or "
                             f"on_short='repeat' to repeat frames up to {num_frames} as lmms-eval does")
        return candidates[np.linspace(0, len(candidates) - 1, num_frames, dtype=int)]
    if sample_fps is not None:
        step = max(1, round(fps / sample_fps))  # LLaVA-NeXT: every round(avg_fps / fps)-th frame
        candidates = candidates[::step]
    if max_frames is not None and len(candidates) > max_frames:
        candidates = candidates[np.linspace(0, len(candidates) - 1, max_frames, dtype=int)]
    return candidates


def read_frames(path: str | Path, num_frames: int | None = None, fps: float | None = None,
                max_frames: int | None = None, start: float | None = None, end: float | None = None,
                backend: str = "auto", skip_bad_frames: bool = False,
                on_short: str = "error") -> tuple[np.ndarray, np.ndarray]:
    """Sample frames from a video file → (frames uint8 (T, H, W, 3), timestamps float64 (T,) in seconds).
    ``on_short`` ("error", "cap" or "repeat") is for a clip with fewer frames than ``num_frames`` (module docstring)."""
    path = Path(path)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if not path.is_file():
        raise FileNotFoundError(f"video file not found: {path}")
    reader = _open(path, backend)
    info = reader.info()
    if info.num_frames == 0:
        raise VideoDecodeError(f"{path}: the video stream has no frames")
    try:
        indices = sample_indices(info.timestamps, info.fps, num_frames, fps, max_frames, start, end, on_short)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    if num_frames is not None and len(indices) < num_frames:
        log.warning("%s: num_frames=%d asked for, but the clip has only %d frames%s; using all %d (on_short='cap')",
                    path, num_frames, len(indices), _window(start, end), len(indices))
    distinct = np.unique(indices)
    frames, kept = reader.read(distinct, skip_bad_frames)
    if len(distinct) < len(indices):  # on_short="repeat": each frame was decoded once; repeat the decoded arrays
        indices = indices[np.isin(indices, kept)]  # a skipped bad frame is missing at each of its repeats
        frames, kept = frames[np.searchsorted(kept, indices)], indices
    return frames, info.timestamps[kept]


def _window(start: float | None, end: float | None) -> str:
    return "" if start is None and end is None else f" in [{start}, {end}] s"


def _open(path: Path, backend: str):
    if backend in ("auto", "decord"):
        try:
            import decord  # noqa: F401
        except ImportError as e:
            if backend == "decord":
                raise ImportError("backend='decord' needs `pip install decord`") from e
            log.info("decord is not installed; reading videos with PyAV")
            return _PyAVReader(path)
        try:
            return _DecordReader(path)
        except VideoDecodeError:
            if backend == "decord":
                raise
            log.warning("decord cannot open %s; reading it with PyAV", path)
    return _PyAVReader(path)


class _DecordReader:
    def __init__(self, path: Path):
        import decord

        self.path = path
        try:
            self.vr = decord.VideoReader(str(path), num_threads=1)
        except Exception as e:  # decord raises its own DECORDError / RuntimeError types
            raise VideoDecodeError(f"{path}: decord cannot open it ({_last_line(e)})") from e

    def info(self) -> VideoInfo:
        n = len(self.vr)
        ts = self.vr.get_frame_timestamp(np.arange(n))[:, 0].astype(np.float64) if n else np.zeros(0)
        return VideoInfo(n, float(self.vr.get_avg_fps()), ts)

    def read(self, indices: np.ndarray, skip_bad_frames: bool) -> tuple[np.ndarray, np.ndarray]:
        try:
            return self.vr.get_batch(indices.tolist()).asnumpy(), indices
        except Exception as e:
            batch_error = _last_line(e)
        # The batch failed. Decord's decoder reads ahead, so which frame it reports failing depends on timing (27 or
        # 28 on tests/data/video/corrupted.mp4); PyAV decodes packet by packet and names the first bad frame
        # deterministically, so it takes over for this file (and skips bad frames there, if asked).
        log.info("%s: decord failed mid-stream (%s); decoding frame by frame with PyAV", self.path, batch_error)
        return _PyAVReader(self.path).read(indices, skip_bad_frames)


class _PyAVReader:
    def __init__(self, path: Path):
        import av

        self.path = path
        try:
            self.container = av.open(str(path))
        except Exception as e:
            raise VideoDecodeError(f"{path}: PyAV cannot open it ({_last_line(e)})") from e
        if not self.container.streams.video:
            raise VideoDecodeError(f"{path}: no video stream")
        self.stream = self.container.streams.video[0]

    def info(self) -> VideoInfo:
        # stream headers may carry no frame count (Matroska), so count by demuxing: cheap, no decoding
        pts = [p.pts for p in self.container.demux(self.stream) if p.pts is not None and p.size > 0]
        self.container.seek(0)
        tb = float(self.stream.time_base)
        ts = np.sort(np.asarray(pts, dtype=np.float64)) * tb
        if len(ts):
            ts -= ts[0] if self.stream.start_time is None else self.stream.start_time * tb
        rate = self.stream.average_rate
        return VideoInfo(len(ts), float(rate) if rate else (len(ts) / max(ts[-1], 1e-9) if len(ts) > 1 else 1.0), ts)

    def read(self, indices: np.ndarray, skip_bad_frames: bool) -> tuple[np.ndarray, np.ndarray]:
        wanted = set(indices.tolist())
        last = int(indices.max())
        frames, kept = [], []
        i = 0  # presentation-order index of the next decoded frame
        for packet in self.container.demux(self.stream):
            try:
                decoded = packet.decode()
            except Exception as e:
                if not skip_bad_frames:
                    raise VideoDecodeError(f"{self.path}: frame {i} could not be decoded ({_last_line(e)})") from e
                log.warning("%s: skipping a packet at frame %d that could not be decoded (%s)", self.path, i,
                            _last_line(e))
                i += 1
                continue
            for frame in decoded:
                if i in wanted:
                    frames.append(_rotated(frame))
                    kept.append(i)
                i += 1
            if i > last:
                break
        missing = wanted - set(kept)
        if missing and not skip_bad_frames:
            raise VideoDecodeError(f"{self.path}: frame {min(missing)} could not be decoded (stream ended at {i})")
        if missing:
            log.warning("%s: skipped %d frames that could not be decoded: %s", self.path, len(missing), sorted(missing))
        if not frames:
            raise VideoDecodeError(f"{self.path}: none of the {len(indices)} requested frames could be decoded")
        return np.stack(frames), np.asarray(kept)


def _rotated(frame) -> np.ndarray:
    """RGB array with the stream's display rotation applied (decord does this itself)."""
    img = frame.to_ndarray(format="rgb24")
    rotation = int(getattr(frame, "rotation", 0) or 0)
    return np.ascontiguousarray(np.rot90(img, k=rotation // 90)) if rotation % 360 else img


def _last_line(e: Exception) -> str:
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else type(e).__name__)[-200:]
