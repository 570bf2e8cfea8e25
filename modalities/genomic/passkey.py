"""DNA passkey retrieval: a random-base haystack holding a marked key, asked for at the end.

A sample is ``haystack[:cut] [SEP] key haystack[cut:] [SEP] key`` at exactly ``seq_len`` tokens of
:class:`CharTokenizer` ids: the haystack is uniform random A/C/G/T, the key ``key_len`` random bases, ``cut`` the
fraction ``depth`` of the haystack. ``[SEP]`` occurs only before the key and before the answer, so a model must find
the one earlier ``[SEP]`` and copy the bases after it. Nothing in the haystack predicts the key: chance is 4^-key_len.

Causal models are scored by teacher-forced exact match of the answer (as the text passkey: if every forced step is
right, greedy decoding reproduces it). Bidirectional masked-LM models (Caduceus) get the answer replaced by
``[MASK]`` (``masked=True``) and are scored by the argmax at the masked positions.
"""

from __future__ import annotations

import random

import torch
from torch import Tensor
from torch.utils.data import Dataset

from zoo.data import SampleStream
from zoo.metrics import answer_exact_match

from .tokenizers import CharTokenizer

_TOK = CharTokenizer()
BASE_IDS = [_TOK.vocab[c] for c in "ACGT"]
SEP_ID, MASK_ID = _TOK.vocab["[SEP]"], _TOK.mask_token_id
KEY_LEN = 6


def shortest_passkey(key_len: int = KEY_LEN, repeats: int = 0) -> int:
    """The shortest sample: the needle and the question (and its repeats), no haystack."""
    return (2 + repeats) * (key_len + 1)


def make_dna_passkey(seq_len: int, depth: float, rng: random.Random, key_len: int = KEY_LEN,
                     masked: bool = False, repeats: int = 0) -> dict[str, Tensor]:
    """One sample → ``input_ids`` (L,), ``labels`` (the key at the answer positions, -100 elsewhere; for a causal
    model the loss shifts them), ``answer_mask`` (L,) and ``depth``.

    ``repeats`` (training only) appends the question and answer that many more times: copying the key from a few
    bases back is easy to learn and is the same operation as copying it from far back, so the model finds the
    mechanism in hundreds of steps instead of sitting at chance (with ``repeats=0`` tiny models here stayed at chance
    for 1,400 steps). Evaluation never repeats."""
    if not 0.0 <= depth <= 1.0:
        raise ValueError(f"depth must be in [0, 1], got {depth}")
    if key_len < 1:
        raise ValueError(f"key_len must be ≥ 1, got {key_len}")
    shortest = shortest_passkey(key_len, repeats)
    if seq_len < shortest:
        raise ValueError(f"seq_len={seq_len} is too short for a DNA passkey with a {key_len}-base key "
                         f"(needs ≥ {shortest})")
    budget = seq_len - shortest
    hay = [rng.choice(BASE_IDS) for _ in range(budget)]
    key = [rng.choice(BASE_IDS) for _ in range(key_len)]
    cut = round(depth * budget)
    ids = torch.tensor(hay[:cut] + [SEP_ID] + key + hay[cut:] + ([SEP_ID] + key) * (1 + repeats))
    answer_mask = ids == -1
    for r in range(1 + repeats):
        end = seq_len - r * (key_len + 1)
        answer_mask[end - key_len: end] = True
    labels = ids.masked_fill(~answer_mask, -100)
    if masked:
        ids = ids.masked_fill(answer_mask, MASK_ID)
    return {"input_ids": ids, "labels": labels, "answer_mask": answer_mask, "depth": torch.tensor(float(depth))}


class DnaPasskeyStream(SampleStream):
    """Endless training samples (random key and depth) in batches of ``batch_size``, batch ``b`` of data-parallel
    rank ``rank`` drawn from its own seed (:mod:`zoo.data`); with ``min_seq_len`` one length drawn uniformly from
    [min_seq_len, seq_len] per batch."""

    def __init__(self, seq_len: int, batch_size: int = 1, seed: int = 0, rank: int = 0, key_len: int = KEY_LEN,
                 masked: bool = False, min_seq_len: int | None = None, repeats: int = 0):
        shortest = shortest_passkey(key_len, repeats)
        if not shortest <= (min_seq_len or seq_len) <= seq_len:
            raise ValueError(f"min_seq_len must be in [{shortest}, seq_len={seq_len}] for {key_len}-base keys with "
                             f"{repeats} repeats, got min_seq_len={min_seq_len}, seq_len={seq_len}")
        super().__init__(batch_size, seed, rank)
        self.seq_len, self.key_len, self.masked = seq_len, key_len, masked
        self.min_seq_len, self.repeats = min_seq_len, repeats

    def make_batch(self, rng) -> list[dict[str, Tensor]]:
        length = self.seq_len if self.min_seq_len is None else int(rng.integers(self.min_seq_len, self.seq_len + 1))
        bases = random.Random(int(rng.integers(2**63)))  # random.choice per base is what make_dna_passkey draws
        return [make_dna_passkey(length, bases.random(), bases, self.key_len, self.masked, self.repeats)
                for _ in range(self.batch_size)]


class DnaPasskeySet(Dataset):
    """A fixed evaluation grid: ``n_per_depth`` keys at each depth, reproducible from ``seed``. Samples are made
    when read, so a long grid holds no memory."""

    def __init__(self, seq_len: int, depths=(0.0, 0.25, 0.5, 0.75, 1.0), n_per_depth: int = 20, seed: int = 1234,
                 key_len: int = KEY_LEN, masked: bool = False):
        self.seq_len, self.depths, self.n_per_depth = seq_len, list(depths), n_per_depth
        self.seed, self.key_len, self.masked = seed, key_len, masked
        make_dna_passkey(seq_len, 0.0, random.Random(0), key_len)  # fail here, not in a worker, if too short

    def __len__(self) -> int:
        return len(self.depths) * self.n_per_depth

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        rng = random.Random(self.seed * 1_000_003 + i)
        return make_dna_passkey(self.seq_len, self.depths[i // self.n_per_depth], rng, self.key_len, self.masked)


def masked_exact_match(logits: Tensor, labels: Tensor, answer_mask: Tensor) -> Tensor:
    """Per-sample 1.0 when the argmax at every answer position is its label (bidirectional models), else 0.0."""
    wrong = (logits.argmax(-1) != labels) & answer_mask
    return (~wrong.any(dim=1)).float()


def eval_hooks(key_len: int, masked: bool):
    """(make_set, score) for the passkey task's ``passkey_accuracy``: this task's samples for a checkpoint
    trained with ``key_len``-base keys, scored causally or, for a masked LM, at the [MASK] positions."""

    def make_set(length, depths, n, seed):
        return DnaPasskeySet(length, depths, n, seed, key_len=key_len, masked=masked)

    def score(logits, batch):
        if masked:
            return masked_exact_match(logits, batch["labels"], batch["answer_mask"])
        return answer_exact_match(logits, batch["input_ids"], batch["answer_mask"])

    return make_set, score
