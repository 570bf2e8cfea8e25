"""FASTA windows for genomic language models, read through pyfaidx (random access by the .fai index).

``FastaWindows(paths, window)`` serves fixed-length windows over every record of one or more FASTA files, plain or
bgzip-compressed, building the ``.fai`` (and ``.gzi``) index when it is missing:

- ``mode="random"``: ``num_samples`` windows, each drawn from a record chosen in proportion to its length, at a
  uniform start; item ``i`` is the same on every call (seeded by ``seed`` and ``i``).
- ``mode="tiled"``: every window at ``stride`` (default ``window``) over every record, in file order.
- ``span=(lo, hi)``: only that fraction of each record (e.g. (0, 0.9) to train, (0.9, 1) to validate).

Soft-masked (lowercase) bases are kept as they are, or upper-cased with ``uppercase=True``. ``reverse_complement``
("random": each window is flipped with probability ½; "always"; or None) augments by strand. A window whose fraction
of N exceeds ``max_n_fraction`` is skipped and counted (``skipped``): tiled mode leaves it out, random mode draws
again. A malformed file (inconsistent line lengths, a blank line inside a record) raises :class:`FastaFormatError`
naming the file, the record and the line — never a wrong sequence.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from zoo.paths import cache_dir

from .tokenizers import CharTokenizer, SequenceTokenizer

log = logging.getLogger(__name__)
COMPLEMENT = str.maketrans("ACGTNacgtnRYKMSWBDHVrykmswbdhv", "TGCANtgcanYRMKSWVHDByrmkswvhdb")


class FastaFormatError(ValueError):
    """A FASTA file that cannot be indexed exactly; the message names the file, record and line."""


def reverse_complement(seq: str) -> str:
    return seq.translate(COMPLEMENT)[::-1]


def open_fasta(path: str | Path):
    """pyfaidx.Fasta over ``path`` (plain or bgzip), its index built when missing; errors name the file."""
    import pyfaidx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such FASTA file")
    kwargs = {}
    writable = os.access(path.parent, os.W_OK) and path.parent.stat().st_mode & 0o200  # root passes os.access alone
    if not Path(str(path) + ".fai").exists() and not writable:
        # a read-only folder (shared data, a mounted genome): the index goes to the cache instead of next to the file
        key = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16]
        where = cache_dir() / "fai"
        where.mkdir(parents=True, exist_ok=True)
        kwargs = {"indexname": str(where / f"{path.name}.{key}.fai"),
                  "gzi_indexname": str(where / f"{path.name}.{key}.gzi")}
    try:
        return pyfaidx.Fasta(str(path), sequence_always_upper=False, read_ahead=1 << 16, **kwargs)
    except pyfaidx.FastaIndexingError as e:
        raise FastaFormatError(f"{path}: {e}") from e
    except pyfaidx.UnsupportedCompressionFormat as e:
        raise FastaFormatError(f"{path}: compressed with plain gzip; recompress with bgzip ({e})") from e


class FastaWindows(Dataset):
    def __init__(self, paths: str | Path | list[str | Path], window: int, mode: str = "random",
                 num_samples: int = 10_000, stride: int | None = None, uppercase: bool = True,
                 reverse_complement: str | None = None, max_n_fraction: float = 0.5,
                 tokenizer: SequenceTokenizer | None = None, add_special_tokens: bool = False, seed: int = 0,
                 span: tuple[float, float] = (0.0, 1.0)):
        if mode not in ("random", "tiled"):
            raise ValueError(f"mode must be 'random' or 'tiled', got {mode!r}")
        if reverse_complement not in (None, "random", "always"):
            raise ValueError(f"reverse_complement must be None, 'random' or 'always', got {reverse_complement!r}")
        if window < 1:
            raise ValueError(f"window must be ≥ 1, got {window}")
        self.paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
        if not self.paths:
            raise ValueError("FastaWindows needs at least one FASTA file")
        self.window, self.mode, self.num_samples = window, mode, num_samples
        self.stride = stride or window
        self.uppercase, self.rc, self.max_n_fraction = uppercase, reverse_complement, max_n_fraction
        self.tokenizer = tokenizer or CharTokenizer()
        self.add_special_tokens, self.seed = add_special_tokens, seed
        if not 0 <= span[0] < span[1] <= 1:
            raise ValueError(f"span must be (lo, hi) with 0 ≤ lo < hi ≤ 1, got {span}")
        self.span = tuple(span)
        self.skipped = 0
        self._fastas = [open_fasta(p) for p in self.paths]
        # (file index, record name, first base, length) of every record part in ``span`` long enough for a window
        self.records = []
        for f, fa in enumerate(self._fastas):
            for name in fa.keys():
                n = len(fa[name])
                lo, hi = int(span[0] * n), int(span[1] * n)
                if hi - lo >= window:
                    self.records.append((f, name, lo, hi - lo))
        if not self.records:
            longest = max((len(fa[n]) for fa in self._fastas for n in fa.keys()), default=0)
            raise ValueError(f"no record in {', '.join(map(str, self.paths))} holds a {window}-base window "
                             f"(longest: {longest})")
        if mode == "tiled":
            self.windows = []
            for r, (f, name, lo, length) in enumerate(self.records):
                for start in range(lo, lo + length - window + 1, self.stride):
                    if self._too_many_n(self._read(f, name, start)):
                        self.skipped += 1
                    else:
                        self.windows.append((r, start))
            if self.skipped:
                log.info("FastaWindows: %d of %d tiled windows skipped (N fraction > %g)", self.skipped,
                         self.skipped + len(self.windows), max_n_fraction)
            if not self.windows:
                raise ValueError(f"every window of {', '.join(map(str, self.paths))} is more than "
                                 f"{max_n_fraction:.0%} N")
        lengths = np.array([n for _, _, _, n in self.records], dtype=np.float64)
        self._weights = (lengths - window + 1) / (lengths - window + 1).sum()

    def __len__(self) -> int:
        return self.num_samples if self.mode == "random" else len(self.windows)

    def _read(self, f: int, name: str, start: int) -> str:
        return str(self._fastas[f][name][start: start + self.window])

    def _too_many_n(self, seq: str) -> bool:
        return (seq.count("N") + seq.count("n")) > self.max_n_fraction * len(seq)

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng([self.seed, i])
        if self.mode == "tiled":
            r, start = self.windows[i]
            f, name, _, _ = self.records[r]
            seq = self._read(f, name, start)
        else:
            for _ in range(100):
                f, name, lo, length = self.records[int(rng.choice(len(self.records), p=self._weights))]
                start = lo + int(rng.integers(0, length - self.window + 1))
                seq = self._read(f, name, start)
                if not self._too_many_n(seq):
                    break
                self.skipped += 1
            else:
                raise ValueError(f"100 random windows in a row were more than {self.max_n_fraction:.0%} N: "
                                 f"{', '.join(map(str, self.paths))} is mostly N at window {self.window}")
        strand = "+"
        if self.rc == "always" or (self.rc == "random" and rng.random() < 0.5):
            seq, strand = reverse_complement(seq), "-"
        if self.uppercase:
            seq = seq.upper()
        ids = torch.tensor(self.tokenizer.encode(seq, add_special_tokens=self.add_special_tokens))
        return {"input_ids": ids, "sequence": seq, "record": name, "start": start, "strand": strand,
                "file": str(self.paths[f])}
