"""Training data that resumes exactly: a run resumed from a checkpoint sees the batches an uninterrupted run would have.

Two pieces, shared by every modality's data module:

- :class:`SampleStream` — endless synthetic training samples (passkey, V-NIAH, audio needle, DNA passkey, …). Batch
  ``b`` is a pure function of ``(seed, data-parallel rank, b)``: its samples are drawn from a generator seeded by
  those three numbers, so a stream can start at any batch in O(1), and DataLoader workers split the batches
  round-robin (worker ``w`` of ``W`` makes batches ``start + w, start + w + W, …``, which the DataLoader returns in
  order) without changing what any batch holds.
- :class:`ResumableLoader` — a DataLoader whose position is part of the checkpoint: Lightning calls its
  ``state_dict`` when it saves (``fit_loop.state_dict.combined_loader``) and ``load_state_dict`` on resume. The
  position is taken from the trainer's own batch counter, not from how many batches the loader has produced, because
  Lightning fetches one batch ahead. Map-style datasets go through :class:`ResumableSampler`, a seeded (per epoch)
  shuffle that can skip the part of an epoch already trained on.

Model-side randomness (dropout, masks drawn in ``training_step``) is restored by :class:`zoo.callbacks.RNGState`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset, get_worker_info


def left_padded(rows: list[list[int]], pad: int, width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of ids, left-padded with ``pad`` to ``width`` (default: the longest row): ``(B, W)`` long ids and the
    ``(B, W)`` long 1/0 mask of real entries (transformers' ``padding_side="left"``)."""
    width = max(len(r) for r in rows) if width is None else width
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row):] = torch.as_tensor(row, dtype=torch.long)
            mask[i, width - len(row):] = 1
    return ids, mask


def batch_generator(seed: int, rank: int, batch_index: int) -> np.random.Generator:
    """The generator batch ``batch_index`` of a stream is drawn from, on data-parallel rank ``rank``."""
    return np.random.default_rng([seed, rank, batch_index])


def data_parallel_rank(trainer, sp_group_size: int = 1) -> tuple[int, int]:
    """(rank, world) of the data-parallel group this process reads for: ranks of one sequence-parallel group of
    ``sp_group_size`` share a rank here, because they must see the same batches."""
    if trainer is None:
        return 0, 1
    group = max(1, sp_group_size)
    return trainer.global_rank // group, max(1, trainer.world_size // group)


class SampleStream(IterableDataset):
    """Endless samples in batches of ``batch_size``; batch ``b`` holds ``make_batch(batch_generator(seed, rank, b))``.

    Subclasses implement :meth:`make_batch`. Serve it with a DataLoader of the same ``batch_size``
    (:class:`ResumableLoader` checks that), so that DataLoader batches and stream batches coincide.
    """

    def __init__(self, batch_size: int, seed: int = 0, rank: int = 0):
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        self.batch_size, self.seed, self.rank = batch_size, seed, rank
        self.start_batch = 0  # set by ResumableLoader.load_state_dict

    def make_batch(self, rng: np.random.Generator) -> list:
        """``batch_size`` samples drawn from ``rng`` (the only source of randomness)."""
        raise NotImplementedError

    def batch(self, index: int) -> list:
        samples = self.make_batch(batch_generator(self.seed, self.rank, index))
        if len(samples) != self.batch_size:
            raise RuntimeError(f"{type(self).__name__}.make_batch returned {len(samples)} samples, "
                               f"not batch_size={self.batch_size}")
        return samples

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        index = self.start_batch + worker
        while True:
            yield from self.batch(index)
            index += workers


class ResumableSampler(DistributedSampler):
    """Indices of a map-style dataset for one data-parallel rank: shuffled per epoch from ``seed + epoch`` (as
    DistributedSampler does) or in order, optionally starting part-way into an epoch (:meth:`resume`)."""

    def __init__(self, dataset: Dataset, shuffle: bool, seed: int = 0, num_replicas: int = 1, rank: int = 0,
                 drop_last: bool = False):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        self._skip = 0

    def resume(self, epoch: int, skip: int) -> None:
        """The next iteration is epoch ``epoch`` without its first ``skip`` indices (already trained on)."""
        self.set_epoch(epoch)
        self._skip = skip

    def __iter__(self):
        skip, self._skip = self._skip, 0  # only the resumed epoch is partial
        indices = list(super().__iter__())
        # len() stays the whole epoch's: Lightning counts the resumed epoch's batches from where it stopped
        return iter(indices[skip:])


def training_position(trainer) -> tuple[int, int]:
    """(epoch, batches of it already trained on) — the next batch to train on is that index of that epoch.

    ``batch_progress.current.processed`` counts the batches whose training step ran, both when a checkpoint is saved
    at the end of a training batch and after validation (where ``completed`` is one ahead in the latter case only)."""
    return trainer.current_epoch, trainer.fit_loop.epoch_loop.batch_progress.current.processed


class ResumableLoader(DataLoader):
    """A training DataLoader whose position Lightning saves in the checkpoint and restores on resume.

    ``dataset`` is a :class:`SampleStream` (endless; one epoch that never ends) or a map-style dataset, served through
    a :class:`ResumableSampler` (``shuffle``, ``seed``, ``num_replicas``/``rank`` for data parallelism). ``trainer``
    (the data module's) supplies the position when a checkpoint is saved. The loader draws DataLoader base seeds from
    its own generator, so making iterators never moves the global RNG that dropout uses.
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, seed: int = 0, trainer=None,
                 num_replicas: int = 1, rank: int = 0, **kwargs: Any):
        if isinstance(dataset, SampleStream):
            if dataset.batch_size != batch_size:
                raise ValueError(f"{type(dataset).__name__} makes batches of {dataset.batch_size}, but the loader's "
                                 f"batch_size is {batch_size}; they must be equal")
            if shuffle:
                raise ValueError("a SampleStream is already random; shuffle must be False")
            sampler = None
        elif isinstance(dataset, IterableDataset):
            raise TypeError(f"{type(dataset).__name__} is an IterableDataset but not a SampleStream: its position "
                            "cannot be restored on resume")
        else:
            sampler = ResumableSampler(dataset, shuffle, seed, num_replicas, rank, drop_last=False)
        kwargs.setdefault("generator", torch.Generator().manual_seed(seed))
        super().__init__(dataset, batch_size=batch_size, sampler=sampler, **kwargs)
        self.shuffle, self.seed, self.num_replicas, self.rank = shuffle, seed, num_replicas, rank
        self.trainer = trainer

    def state_dict(self) -> dict:
        epoch, batch = training_position(self.trainer) if self.trainer is not None else (0, 0)
        return {"epoch": epoch, "next_batch": batch, "batch_size": self.batch_size,
                "num_replicas": self.num_replicas, "dataset": type(self.dataset).__name__}

    def load_state_dict(self, state: dict) -> None:
        for key, here in (("batch_size", self.batch_size), ("num_replicas", self.num_replicas)):
            if state.get(key) is not None and state[key] != here:
                raise ValueError(f"the checkpoint's data position counts batches with {key}={state[key]}, but this "
                                 f"run has {key}={here}; resume with the same value, or start a new run")
        epoch, batch = int(state["epoch"]), int(state["next_batch"])
        if isinstance(self.dataset, SampleStream):
            self.dataset.start_batch = batch
            return
        if batch >= len(self):  # saved at the end of an epoch: the next one starts from its first batch
            epoch, batch = epoch + 1, 0
        self.sampler.resume(epoch, batch * self.batch_size)
