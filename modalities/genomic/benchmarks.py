"""A long-range DNA classification benchmark the code writes itself, in the GenomicBenchmarks layout.

The real benchmarks cannot be downloaded here, so this one is generated: a background of i.i.d. bases at a
genome-like GC content, with the label decided by sequence content far apart.

- ``motif_order``: two 8-base motifs, one in each half of the sequence (so they are at least a quarter of the length
  apart on average); class ``a_first`` when motif A precedes motif B, ``b_first`` otherwise. Neither motif alone, nor
  any local window, tells the class: a model must relate two distant positions.
- ``middle_motif``: one motif inserted in the middle third (class ``present``) or not (``absent``); a control task
  that decides on a local pattern whose position is unknown.

``write_benchmark(root, task, length, n_train, n_test, seed)`` writes ``root/{train,test}/<class>/<id>.txt``;
:func:`synthetic_benchmark` caches it under ``$ZOO_CACHE/genomic_benchmarks``. Same arguments, same files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zoo.paths import cache_dir

TASKS = {"motif_order": ("a_first", "b_first"), "middle_motif": ("absent", "present")}
MOTIF_A, MOTIF_B = "GATTACAG", "CCTAGGTC"
GC = 0.41  # the human genome's GC content


def _background(rng: np.random.Generator, length: int) -> list[str]:
    p = [(1 - GC) / 2, GC / 2, GC / 2, (1 - GC) / 2]
    return list(rng.choice(list("ACGT"), size=length, p=p))


def _place(seq: list[str], motif: str, start: int) -> None:
    seq[start:start + len(motif)] = list(motif)


def make_example(rng: np.random.Generator, task: str, length: int, label: int) -> str:
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    m = len(MOTIF_A)
    if length < 4 * m:
        raise ValueError(f"length {length} is too short for {task} (at least {4 * m})")
    seq = _background(rng, length)
    half = length // 2
    if task == "motif_order":
        first, second = (MOTIF_A, MOTIF_B) if label == 0 else (MOTIF_B, MOTIF_A)
        _place(seq, first, int(rng.integers(0, half - m)))
        _place(seq, second, int(rng.integers(half, length - m)))
    elif label == 1:
        _place(seq, MOTIF_A, int(rng.integers(length // 3, 2 * length // 3 - m)))
    return "".join(seq)


def write_benchmark(root, task: str, length: int, n_train: int = 1000, n_test: int = 200, seed: int = 0):
    """Balanced classes, ``n_train`` / ``n_test`` records in all; returns ``root``."""
    root = Path(root)
    classes = TASKS.get(task)
    if classes is None:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    for split, n, offset in (("train", n_train, 0), ("test", n_test, 1)):
        rng = np.random.default_rng([seed, offset, length])
        for i in range(n):
            label = i % 2
            folder = root / split / classes[label]
            folder.mkdir(parents=True, exist_ok=True)
            text = make_example(rng, task, length, label) + "\n"
            (folder / f"{i:06d}.txt").write_text(text)  # the .complete marker makes the folder whole or redone
    return root


def synthetic_benchmark(task: str = "motif_order", length: int = 1024, n_train: int = 1000, n_test: int = 200,
                        seed: int = 0):
    """The cached benchmark folder for these arguments (written on first use)."""
    root = cache_dir() / "genomic_benchmarks" / f"{task}_len{length}_n{n_train}-{n_test}_seed{seed}"
    done = root / ".complete"
    if not done.exists():
        write_benchmark(root, task, length, n_train, n_test, seed)
        done.write_text("")
    return root
