"""Synthetic passkey retrieval (Mohtashami & Jaggi, 2023): a 5-digit key hidden in filler text, asked for at the end.

A sample is ``BOS filler… The pass key is 71432. Remember it. 71432 is the pass key. …filler What is the pass key?
The pass key is 71432`` at exactly ``seq_len`` byte tokens, the key sentence starting at fraction ``depth`` of the
filler. Accuracy is exact match of all five digits; with teacher forcing that equals greedy decoding (if every forced
step is right, greedy decoding reproduces the forced tokens).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from zoo.data import SampleStream
from zoo.tokenizers import ByteTokenizer

FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "
QUESTION = "What is the pass key? The pass key is "
KEY_DIGITS = 5
KEY_TEXT = "The pass key is {0}. Remember it. {0} is the pass key. "
MIN_SEQ_LEN = 1 + len(KEY_TEXT.format("0" * KEY_DIGITS)) + len(QUESTION) + KEY_DIGITS  # BOS + key + question + answer


@dataclass
class PasskeySample:
    input_ids: list[int]
    answer_start: int  # index of the first answer token in input_ids
    key: int
    depth: float


def make_passkey_sample(seq_len: int, depth: float, key: int, tokenizer: ByteTokenizer | None = None) -> PasskeySample:
    tok = tokenizer or ByteTokenizer()
    if not 0.0 <= depth <= 1.0:
        raise ValueError(f"depth must be in [0, 1], got {depth}")
    answer = f"{key:0{KEY_DIGITS}d}"
    key_text = KEY_TEXT.format(answer)
    if seq_len < MIN_SEQ_LEN:
        raise ValueError(f"seq_len={seq_len} is too short for a passkey sample (needs ≥ {MIN_SEQ_LEN})")
    budget = seq_len - MIN_SEQ_LEN
    filler = (FILLER * (budget // len(FILLER) + 1))[:budget]
    cut = round(depth * budget)
    # start the key at a sentence boundary at or before the requested depth so it reads as text
    boundary = filler.rfind(". ", 0, cut + 1)
    cut = 0 if boundary < 0 or cut == 0 else boundary + 2
    text = filler[:cut] + key_text + filler[cut:] + QUESTION + answer
    ids = tok.encode(text, bos=True)
    assert len(ids) == seq_len, (len(ids), seq_len)
    return PasskeySample(ids, seq_len - len(answer), key, depth)


def _to_example(sample: PasskeySample, loss_on: str) -> dict[str, torch.Tensor]:
    ids = torch.tensor(sample.input_ids, dtype=torch.long)
    labels = ids.clone()
    if loss_on == "answer":
        labels[: sample.answer_start] = -100
    elif loss_on != "all":
        raise ValueError(f"loss_on must be 'all' or 'answer', got {loss_on!r}")
    answer_mask = torch.zeros_like(ids, dtype=torch.bool)
    answer_mask[sample.answer_start :] = True
    return {"input_ids": ids, "labels": labels, "answer_mask": answer_mask}


class PasskeyStream(SampleStream):
    """Endless training samples in batches of ``batch_size``: random key, random depth. Batch ``b`` on data-parallel
    rank ``rank`` is drawn from its own seed (:mod:`zoo.data`), so a resumed run continues with the next batch.

    With ``min_seq_len`` each batch gets one length drawn uniformly from [min_seq_len, seq_len]: a model that has
    seen several lengths relies less on where the question sits, which is what lets it extrapolate.
    """

    def __init__(self, seq_len: int, batch_size: int = 1, seed: int = 0, rank: int = 0, loss_on: str = "all",
                 min_seq_len: int | None = None):
        if min_seq_len is not None and not MIN_SEQ_LEN <= min_seq_len <= seq_len:
            raise ValueError(f"min_seq_len must be in [{MIN_SEQ_LEN}, seq_len={seq_len}], got {min_seq_len}")
        if loss_on not in ("all", "answer"):
            raise ValueError(f"loss_on must be 'all' or 'answer', got {loss_on!r}")
        super().__init__(batch_size, seed, rank)
        self.seq_len, self.loss_on, self.min_seq_len = seq_len, loss_on, min_seq_len
        self.tokenizer = ByteTokenizer()

    def make_batch(self, rng) -> list[dict[str, torch.Tensor]]:
        length = self.seq_len if self.min_seq_len is None else int(rng.integers(self.min_seq_len, self.seq_len + 1))
        return [_to_example(make_passkey_sample(length, float(rng.random()), int(rng.integers(10**KEY_DIGITS)),
                                                self.tokenizer), self.loss_on)
                for _ in range(self.batch_size)]


class PasskeySet(Dataset):
    """A fixed evaluation grid: ``n_per_depth`` keys at each depth, reproducible from ``seed``."""

    def __init__(self, seq_len: int, depths=(0.0, 0.25, 0.5, 0.75, 1.0), n_per_depth: int = 20, seed: int = 1234,
                 loss_on: str = "all"):
        self.loss_on = loss_on
        rng = random.Random(seed)
        tok = ByteTokenizer()
        self.samples = [
            make_passkey_sample(seq_len, d, rng.randrange(10**KEY_DIGITS), tok)
            for d in depths
            for _ in range(n_per_depth)
        ]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ex = _to_example(self.samples[i], self.loss_on)
        ex["depth"] = torch.tensor(self.samples[i].depth)
        return ex
