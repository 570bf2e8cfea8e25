"""V-NIAH (LongVA's needle in a video haystack), self-contained and synthetic.

The haystack is a real video file: moving coloured shapes over a drifting gradient, encoded with PyAV (H.264) and
cached (``haystack_path``); it is decoded with :func:`read_frames` like any user video. The needle is a frame with a
rendered digit (or the user's own image and answer), inserted at a depth ∈ [0, 1] of a window of ``num_frames``
haystack frames. The question asks for the digit; scoring is exact match of the answer tokens under teacher forcing,
as in LongVA's V-NIAH.

A sample: ``input_ids`` = [BOS, <image>, question bytes, answer bytes, EOS] with one ``IMAGE_TOKEN_INDEX`` placeholder,
``labels`` on the answer and EOS only, and ``video`` (T, 3, S, S) preprocessed frames.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from zoo.data import SampleStream
from zoo.lm import labels_exact_match  # noqa: F401  (re-exported: V-NIAH's scoring)
from zoo.paths import cache_dir
from zoo.tokenizers import ByteTokenizer

from .frames import read_frames
from .longva import preprocess_frames
from .qa import prompt_ids

log = logging.getLogger(__name__)
QUESTION = "\nWhich digit is written on the needle frame? Answer: "
TOKENIZER = ByteTokenizer()


def make_haystack_video(path: str | Path, num_frames: int = 600, size: int = 64, fps: int = 8, seed: int = 0) -> Path:
    """Write a synthetic haystack clip (moving shapes, no digits) as an H.264 mp4 with PyAV; returns its path."""
    rng = np.random.default_rng(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_shapes = 5
    pos = rng.uniform(0, size, (n_shapes, 2))
    vel = rng.uniform(-2, 2, (n_shapes, 2))
    radius = rng.uniform(size / 12, size / 5, n_shapes)
    color = rng.integers(40, 255, (n_shapes, 3))
    square = rng.random(n_shapes) < 0.5
    yy, xx = np.mgrid[0:size, 0:size]

    def frames():
        for t in range(num_frames):
            phase = 2 * np.pi * t / 97
            bg = np.stack([xx * 0 + 60 + 40 * np.sin(phase), yy * 1.5 + 20, 120 + 50 * np.cos(phase + xx / size)], -1)
            img = np.clip(bg, 0, 255).astype(np.uint8)
            pos[:] += vel
            for k in range(2):  # bounce off the borders
                hit = (pos[:, k] < 0) | (pos[:, k] > size)
                vel[hit, k] *= -1
            for s in range(n_shapes):
                if square[s]:
                    m = (np.abs(xx - pos[s, 0]) < radius[s]) & (np.abs(yy - pos[s, 1]) < radius[s])
                else:
                    m = (xx - pos[s, 0]) ** 2 + (yy - pos[s, 1]) ** 2 < radius[s] ** 2
                img[m] = color[s]
            yield img

    tmp = path.with_suffix(f".{os.getpid()}.tmp.mp4")  # per process: DDP ranks may all write the cache at once
    write_video(tmp, frames(), fps)
    tmp.replace(path)  # atomic: a half-written cache file is never picked up
    return path


def write_video(path: str | Path, frames, fps: int = 8) -> Path:
    """Encode uint8 RGB frames (an iterable of (H, W, 3), H and W even) as H.264 (crf 18) with PyAV."""
    import av

    path = Path(path)
    with av.open(str(path), "w") as container:
        stream = None
        for img in frames:
            if stream is None:
                stream = container.add_stream("libx264", rate=fps)
                stream.height, stream.width = img.shape[:2]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": "18", "threads": "1"}  # one thread: the same bytes on every run
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                container.mux(packet)
        if stream is None:
            raise ValueError(f"{path}: no frames to write")
        for packet in stream.encode():
            container.mux(packet)
    return path


def haystack_path(num_frames: int = 600, size: int = 64, seed: int = 0) -> Path:
    """The cached synthetic haystack, written on first use."""
    path = cache_dir() / "vniah" / f"haystack_{size}px_{num_frames}f_seed{seed}.mp4"
    if not path.exists():
        log.info("writing the synthetic V-NIAH haystack to %s", path)
        make_haystack_video(path, num_frames, size, seed=seed)
    return path


def render_needle(answer: str, size: int = 64, rng: np.random.Generator | None = None, jitter: float = 0.05) -> np.ndarray:
    """A white frame with ``answer`` in black, centred, scale and offset jittered by ``jitter`` of the frame size →
    uint8 (size, size, 3). The needle is meant to be easy to read: V-NIAH tests finding it, not OCR."""
    from PIL import Image, ImageDraw, ImageFont

    rng = rng or np.random.default_rng()
    font = ImageFont.load_default(size=int(size * (0.8 + rng.uniform(-jitter, jitter))))
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    left, top, right, bottom = draw.textbbox((0, 0), answer, font=font)
    dx, dy = rng.uniform(-jitter, jitter, 2) * size
    draw.text(((size - (right - left)) / 2 - left + dx, (size - (bottom - top)) / 2 - top + dy), answer, fill="black",
              font=font)
    return np.asarray(img)


def encode_prompt(answer: str) -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids and labels (answer + EOS only) of one V-NIAH question."""
    q = prompt_ids(QUESTION, TOKENIZER)  # the same prompt layout answer() uses at inference
    a = TOKENIZER.encode(answer) + [TOKENIZER.eos_token_id]
    ids = torch.tensor(q + a)
    labels = torch.tensor([-100] * len(q) + a)
    return ids, labels


class Haystack:
    """A haystack video decoded once and preprocessed to the model's image size: (N, 3, S, S)."""

    def __init__(self, image_size: int, video: str | Path | None = None, needle_image: str | Path | None = None,
                 needle_answer: str | None = None):
        if (needle_image is None) != (needle_answer is None):
            raise ValueError("give needle_image and needle_answer together (the answer to the image's question)")
        self.image_size = image_size
        self.video = Path(video) if video is not None else haystack_path()
        frames, _ = read_frames(self.video)
        self.frames = preprocess_frames(frames, image_size)
        self.needle_answer = needle_answer
        self.needle = None
        if needle_image is not None:
            from PIL import Image

            img = np.asarray(Image.open(needle_image).convert("RGB"))
            self.needle = preprocess_frames(img[None], image_size)[0]

    def __len__(self) -> int:
        return len(self.frames)

    def sample(self, num_frames: int, depth: float, rng: np.random.Generator) -> dict:
        if num_frames > len(self.frames):
            raise ValueError(f"{num_frames} frames asked for, but the haystack {self.video} has {len(self.frames)}")
        start = int(rng.integers(0, len(self.frames) - num_frames + 1))
        video = self.frames[start: start + num_frames].clone()
        at = round(depth * (num_frames - 1))
        if self.needle is not None:
            answer, needle = self.needle_answer, self.needle
        else:
            answer = str(int(rng.integers(0, 10)))
            needle = preprocess_frames(render_needle(answer, 64, rng)[None], self.image_size)[0]
        video[at] = needle
        ids, labels = encode_prompt(answer)
        return {"input_ids": ids, "labels": labels, "video": video, "depth": torch.tensor(depth),
                "needle_index": torch.tensor(at)}


class VNIAHStream(SampleStream):
    """Endless training samples in batches of ``batch_size``: random window, random depth, random digit; batch ``b``
    of data-parallel rank ``rank`` is drawn from its own seed (:mod:`zoo.data`)."""

    def __init__(self, haystack: Haystack, num_frames: int, batch_size: int = 1, seed: int = 0, rank: int = 0):
        super().__init__(batch_size, seed, rank)
        self.haystack, self.num_frames = haystack, num_frames

    def make_batch(self, rng: np.random.Generator) -> list[dict]:
        return [self.haystack.sample(self.num_frames, float(rng.uniform(0, 1)), rng) for _ in range(self.batch_size)]


class VNIAHSet(Dataset):
    """A fixed evaluation set: ``n_per_depth`` samples at each depth, reproducible from ``seed``."""

    def __init__(self, haystack: Haystack, num_frames: int, depths=(0.0, 0.25, 0.5, 0.75, 1.0), n_per_depth: int = 10,
                 seed: int = 1234):
        rng = np.random.default_rng(seed + num_frames)
        self.items = [haystack.sample(num_frames, d, rng) for d in depths for _ in range(n_per_depth)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def collate(batch: list[dict]) -> dict:
    out = {k: torch.stack([b[k] for b in batch]) for k in ("input_ids", "labels", "depth", "needle_index")}
    out["videos"] = [b["video"] for b in batch]
    return out
