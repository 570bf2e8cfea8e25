"""Protein sequences for masked-LM training (LC-PLM): whole records of a FASTA file, cropped and padded, and a
synthetic protein set that the code writes when no file is given.

Protein LMs hold out whole sequences, not the tail of each one: ``ProteinRecords`` takes every record of one or
more FASTA files (plain or bgzip, through pyfaidx), assigns a fixed ``val_fraction`` of them to validation by a hash of
the record name (stable when files grow), and crops records longer than ``max_len`` at a random offset (training)
or at the start (validation). Residues outside the tokenizer's alphabet fail with the file and record named. A
record name used twice in one file is an error (:func:`~.fasta.open_fasta`); the same name in two files is two
records, and both land in the same split (the split hashes the name), so a protein listed in two files under one name
is never trained on and validated on at once. Indexes go to the cache unless ``index_next_to_fasta=True``.

The synthetic set (``write_synthetic_proteins``) is a first-order Markov chain over the 20 standard amino acids
whose transition rows are drawn from a sparse Dirichlet: each residue has a few likely successors, so a
bidirectional model can predict a masked residue from its neighbours far better than the log2(20) = 4.32 bits of a
uniform guess. ``markov_entropy_bits`` gives the chain's forward entropy rate for reference.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .fasta import FastaFormatError, open_fasta
from .tokenizers import ProteinTokenizer

STANDARD = "ACDEFGHIKLMNPQRSTVWY"


def markov_chain(seed: int = 0, concentration: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(start distribution (20,), transition matrix (20, 20)) of the synthetic chain."""
    rng = np.random.default_rng(seed)
    trans = rng.dirichlet(np.full(20, concentration), size=20)
    start = rng.dirichlet(np.ones(20))
    return start, trans


def markov_entropy_bits(seed: int = 0) -> float:
    """Entropy rate (bits per residue) of the chain at its stationary distribution: what a causal model could reach."""
    _, trans = markov_chain(seed)
    vals, vecs = np.linalg.eig(trans.T)
    pi = np.real(vecs[:, np.argmin(np.abs(vals - 1))])
    pi = pi / pi.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.nansum(trans * np.log2(trans), axis=1)
    return float((pi * h).sum())


def write_synthetic_proteins(path: str | Path, n_sequences: int = 2000, min_len: int = 64, max_len: int = 400,
                             seed: int = 0) -> Path:
    """Write ``n_sequences`` Markov-chain proteins as FASTA (60 residues per line); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    start, trans = markov_chain(seed)
    rng = np.random.default_rng(seed + 1)
    cum = np.cumsum(trans, axis=1)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        for i in range(n_sequences):
            n = int(rng.integers(min_len, max_len + 1))
            seq = [int(rng.choice(20, p=start))]
            u = rng.random(n - 1)
            for x in u:
                seq.append(min(19, int(np.searchsorted(cum[seq[-1]], x))))
            text = "".join(STANDARD[j] for j in seq)
            f.write(f">synthetic_{i}\n")
            f.writelines(text[k: k + 60] + "\n" for k in range(0, len(text), 60))
    tmp.replace(path)  # atomic: a half-written file never looks finished
    return path


def synthetic_protein_file(seed: int = 0, n_sequences: int = 2000) -> Path:
    from zoo.paths import cache_dir

    path = cache_dir() / "proteins" / f"synthetic_markov_seed{seed}_n{n_sequences}.fa"
    return path if path.exists() else write_synthetic_proteins(path, n_sequences, seed=seed)


def is_validation(name: str, val_fraction: float) -> bool:
    return zlib.crc32(name.encode()) % 10_000 < val_fraction * 10_000


class ProteinRecords(Dataset):
    """Every record of ``paths`` in ``split`` ("train" or "val"), as token ids of at most ``max_len`` residues."""

    def __init__(self, paths: str | Path | list[str | Path], max_len: int = 256, split: str = "train",
                 val_fraction: float = 0.1, tokenizer: ProteinTokenizer | None = None, seed: int = 0,
                 index_next_to_fasta: bool = False):
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        self.paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
        self.max_len, self.split, self.seed = max_len, split, seed
        self.tokenizer = tokenizer or ProteinTokenizer()
        self._fastas = [open_fasta(p, index_next_to_fasta) for p in self.paths]
        self.records = [(f, name) for f, fa in enumerate(self._fastas) for name in fa.keys()
                        if is_validation(name, val_fraction) == (split == "val")]
        if not self.records:
            raise ValueError(f"{', '.join(map(str, self.paths))}: no {split} records (val_fraction={val_fraction})")
        self._alphabet = set(self.tokenizer.vocab) - set(self.tokenizer.special_tokens)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        f, name = self.records[i]
        record = self._fastas[f][name]
        n = len(record)
        start = 0
        if n > self.max_len and self.split == "train":
            # fixed per (seed, record): every epoch sees the same crop of a long record
            start = int(np.random.default_rng([self.seed, i]).integers(0, n - self.max_len + 1))
        seq = str(record[start: start + self.max_len]).upper()
        bad = set(seq) - self._alphabet
        if bad:
            raise FastaFormatError(f"{self.paths[f]}: record {name!r} has characters {sorted(bad)} that are not "
                                   "amino acids")
        return {"input_ids": torch.tensor(self.tokenizer.encode(seq, add_special_tokens=False)), "record": name}
