"""Audio needle in a haystack, synthetic and self-contained: find a dialled DTMF code in long audio.

The haystack (numpy, 16 kHz) is quiet coloured noise with random single-tone bursts (frequencies kept away from the
DTMF ones) and noise bursts, below the needle's level. The needle is a code of ``code_length`` DTMF digits (two simultaneous tones per digit, as a
telephone dials them) placed at a depth ∈ [0, 1] of the recording. The question asks for the code; scoring is exact
match of the answer tokens under teacher forcing, as in V-NIAH.

A sample: ``input_ids`` = [BOS, <audio> × tokens, question bytes, code bytes, EOS] with the audio placeholder expanded
to the encoder's token count (750 per 30 s window), ``labels`` on the code and EOS, ``input_features`` (W, n_mels,
3000) and ``feature_attention_mask`` (W, 3000) for the W windows of that sample.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from zoo.data import SampleStream
from zoo.tokenizers import ByteTokenizer

from .features import SAMPLE_RATE, audio_features
from .qwen2_audio import encoder_output_lengths

QUESTION = "\nWhich code was dialled? Answer: "
TOKENIZER = ByteTokenizer()
DTMF_ROWS = (697, 770, 852, 941)
DTMF_COLS = (1209, 1336, 1477)
DTMF_KEYS = ("123", "456", "789", "*0#")


def dtmf_frequencies(digit: str) -> tuple[int, int]:
    for r, keys in enumerate(DTMF_KEYS):
        if digit in keys:
            return DTMF_ROWS[r], DTMF_COLS[keys.index(digit)]
    raise ValueError(f"{digit!r} is not a DTMF key")


def render_code(code: str, tone_s: float = 0.2, gap_s: float = 0.1, amplitude: float = 0.6,
                sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The DTMF tones of ``code``, each ``tone_s`` long with ``gap_s`` of silence after it (10 ms fades); ``amplitude``
    is the peak of the two summed tones (telephone keypads dial at about this level above the line noise)."""
    n_tone, n_gap = int(tone_s * sample_rate), int(gap_s * sample_rate)
    t = np.arange(n_tone) / sample_rate
    fade = np.minimum(1.0, np.minimum(np.arange(n_tone), np.arange(n_tone)[::-1]) / (0.01 * sample_rate))
    parts = []
    for digit in code:
        lo, hi = dtmf_frequencies(digit)
        parts.append(amplitude / 2 * fade * (np.sin(2 * np.pi * lo * t) + np.sin(2 * np.pi * hi * t)))
        parts.append(np.zeros(n_gap))
    return np.concatenate(parts).astype(np.float32)


def _allowed_tone(rng: np.random.Generator) -> float:
    dtmf = np.array(DTMF_ROWS + DTMF_COLS)
    while True:
        f = float(rng.uniform(200, 3000))
        if np.abs(dtmf - f).min() > 60:
            return f


def make_haystack(seconds: float, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE,
                  events_per_second: float = 0.5) -> np.ndarray:
    """Quiet low-passed noise with single-tone bursts (never at DTMF frequencies) and noise bursts, all well below the
    needle's level: the task is finding and reading the dialled code, not hearing it through louder sounds."""
    n = int(seconds * sample_rate)
    white = rng.standard_normal(n, dtype=np.float32)
    csum = np.concatenate(([0.0], np.cumsum(white, dtype=np.float64)))
    audio = (0.01 * (csum[8:] - csum[:-8]) / 8).astype(np.float32)  # 8-tap moving average: a gentle low-pass
    audio = np.concatenate((audio, np.zeros(n - len(audio), np.float32)))
    for _ in range(int(events_per_second * seconds)):
        length = int(rng.uniform(0.05, 0.5) * sample_rate)
        start = int(rng.integers(0, max(1, n - length)))
        env = np.hanning(length).astype(np.float32)
        if rng.random() < 0.7:
            t = np.arange(length) / sample_rate
            burst = np.sin(2 * np.pi * _allowed_tone(rng) * t + rng.uniform(0, 2 * np.pi))
        else:
            burst = rng.standard_normal(length)
        audio[start: start + length] += (rng.uniform(0.02, 0.1) * env * burst).astype(np.float32)
    return audio


def insert_needle(haystack: np.ndarray, needle: np.ndarray, depth: float) -> tuple[np.ndarray, int]:
    """The haystack with the needle added at ``depth`` of the free room (0: at the start, 1: ending at the end)."""
    if len(needle) > len(haystack):
        raise ValueError(f"needle of {len(needle)} samples does not fit a haystack of {len(haystack)}")
    at = round(depth * (len(haystack) - len(needle)))
    out = haystack.copy()
    out[at: at + len(needle)] = 0.3 * out[at: at + len(needle)] + needle  # the needle rises above the background
    return out, at


def encode_prompt(n_audio_tokens: int, answer: str | None, audio_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids and labels (answer + EOS only) of one question; without answer, the prompt alone."""
    q = [TOKENIZER.bos_token_id] + [audio_token_id] * n_audio_tokens + TOKENIZER.encode(QUESTION)
    a = TOKENIZER.encode(answer) + [TOKENIZER.eos_token_id] if answer is not None else []
    return torch.tensor(q + a), torch.tensor([-100] * len(q) + a)


def audio_sample(audio: np.ndarray, answer: str | None, audio_token_id: int, n_mels: int,
                 window_seconds: float = 30.0) -> dict:
    feats, mask = audio_features(audio, n_mels, window_seconds)
    n_tokens = int(encoder_output_lengths(mask.sum(-1))[1].sum())
    ids, labels = encode_prompt(n_tokens, answer, audio_token_id)
    return {"input_ids": ids, "labels": labels, "input_features": feats, "feature_attention_mask": mask}


class NeedleTask:
    """Draws needle samples: ``seconds`` of haystack, a random code at a given depth; features in windows of
    ``window_seconds`` (the model's encoder window)."""

    def __init__(self, seconds: float = 30.0, code_length: int = 3, audio_token_id: int = 259, n_mels: int = 128,
                 window_seconds: float = 30.0, min_seconds: float | None = None):
        if code_length < 1:
            raise ValueError(f"code_length must be ≥ 1, got {code_length}")
        if min_seconds is not None and not 0 < min_seconds <= seconds:
            raise ValueError(f"min_seconds must lie in (0, seconds={seconds}], got {min_seconds}")
        self.seconds, self.code_length, self.audio_token_id, self.n_mels = seconds, code_length, audio_token_id, n_mels
        self.window_seconds, self.min_seconds = window_seconds, min_seconds

    def sample(self, depth: float, rng: np.random.Generator, seconds: float | None = None) -> dict:
        """One sample at ``depth``; its length is ``seconds``, else the task's (drawn from [min_seconds, seconds]
        when min_seconds is set)."""
        if seconds is None:
            seconds = self.seconds if self.min_seconds is None else float(rng.uniform(self.min_seconds, self.seconds))
        code = "".join(str(d) for d in rng.integers(0, 10, self.code_length))
        audio, at = insert_needle(make_haystack(seconds, rng), render_code(code), depth)
        out = audio_sample(audio, code, self.audio_token_id, self.n_mels, self.window_seconds)
        out.update(depth=torch.tensor(depth), needle_second=torch.tensor(at / SAMPLE_RATE), code=code)
        return out


class NeedleStream(SampleStream):
    """Endless training samples at random depths, in batches of ``batch_size``; batch ``b`` of data-parallel rank
    ``rank`` is drawn from its own seed (:mod:`zoo.data`)."""

    def __init__(self, task: NeedleTask, batch_size: int = 1, seed: int = 0, rank: int = 0):
        super().__init__(batch_size, seed, rank)
        self.task = task

    def make_batch(self, rng: np.random.Generator) -> list[dict]:
        return [self.task.sample(float(rng.uniform(0, 1)), rng) for _ in range(self.batch_size)]


class NeedleSet(Dataset):
    """A fixed evaluation set: ``n_per_depth`` samples at each depth and length ``seconds``, reproducible from seed."""

    def __init__(self, task: NeedleTask, seconds: float, depths=(0.0, 0.25, 0.5, 0.75, 1.0), n_per_depth: int = 10,
                 seed: int = 1234):
        self.task, self.seconds, self.depths, self.n_per_depth = task, seconds, tuple(depths), n_per_depth
        self.seed = seed + int(seconds)

    def __len__(self) -> int:
        return len(self.depths) * self.n_per_depth

    def __getitem__(self, i: int) -> dict:
        # generated on demand (a 240 s sample's features are 8 windows): item i is the same on every call
        rng = np.random.default_rng([self.seed, i])
        return self.task.sample(self.depths[i // self.n_per_depth], rng, self.seconds)


def collate(batch: list[dict]) -> dict:
    """Right-pads text (label -100, attention 0); stacks every sample's windows in order."""
    n = max(len(b["input_ids"]) for b in batch)
    ids = torch.full((len(batch), n), TOKENIZER.pad_token_id)
    labels = torch.full((len(batch), n), -100)
    attention = torch.zeros(len(batch), n, dtype=torch.long)
    for i, b in enumerate(batch):
        m = len(b["input_ids"])
        ids[i, :m], labels[i, :m], attention[i, :m] = b["input_ids"], b["labels"], 1
    out = {"input_ids": ids, "labels": labels, "attention_mask": attention,
           "input_features": torch.cat([b["input_features"] for b in batch]),
           "feature_attention_mask": torch.cat([b["feature_attention_mask"] for b in batch])}
    for key in ("depth", "needle_second"):
        if key in batch[0]:
            out[key] = torch.stack([b[key] for b in batch])
    if "code" in batch[0]:
        out["code"] = [b["code"] for b in batch]
    return out
