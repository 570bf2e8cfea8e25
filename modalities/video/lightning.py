"""Lightning glue for LongVA: the training module (optionally drawing a V2PE δ per sample) and the V-NIAH data."""

from __future__ import annotations

import math
import random
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from zoo.data import ResumableLoader, data_parallel_rank
from zoo.media import splice_labels
from zoo.module import ZooModule
from zoo.optim import adamw_warmup_cosine
from zoo.parallel import sequence_parallel_shape

from .longva import IMAGE_TOKEN_INDEX, LongVA, LongVAConfig
from .vniah import Haystack, VNIAHSet, VNIAHStream, collate, haystack_path, labels_exact_match


class LongVAModule(ZooModule):
    """Next-token loss on the answer tokens; validation reports loss and V-NIAH exact match.

    ``v2pe_train_deltas``: with V2PE, each training sample's visual step δ is drawn from this set (V2PE's recipe);
    validation and evaluation use the model config's fixed ``v2pe_delta``.

    ``sequence_parallel`` ("ring", "ulysses" or "hybrid"): train with LongVILA's MM-SP over ``sp_size`` ranks (default:
    all of them; data parallel over the rest), e.g. ``--trainer.devices 4 --trainer.strategy ddp``. Frames are encoded
    spread over the SP ranks, the sequence is re-sharded, attention runs ring / Ulysses / hybrid (``hybrid_mesh``
    = [ring, ulysses] sizes). Validation runs unsharded on every rank.
    """

    rng_attributes = ("_rng",)  # zoo.callbacks.RNGState saves and restores the V2PE δ generator

    def __init__(self, model: LongVAConfig, lr: float = 1e-3, weight_decay: float = 0.05, warmup_steps: int = 50,
                 min_lr_ratio: float = 0.1, v2pe_train_deltas: list[float] | None = None,
                 pretrained: str | None = None, sequence_parallel: str | None = None, sp_size: int | None = None,
                 hybrid_mesh: list[int] | None = None):
        super().__init__()
        if sequence_parallel is not None:  # the shape's own errors, before any process starts
            world = sp_size or (math.prod(hybrid_mesh) if hybrid_mesh else 1)
            sequence_parallel_shape(world, sequence_parallel, sp_size, hybrid_mesh)
        for d in v2pe_train_deltas or []:
            if not 0 < d <= 1:
                raise ValueError(f"v2pe_train_deltas: {d} is outside (0, 1]")

        def check(config: LongVAConfig) -> None:
            if v2pe_train_deltas and config.v2pe_delta is None:
                raise ValueError("v2pe_train_deltas needs model.v2pe_delta (the δ used at evaluation)")

        # with pretrained=, the checkpoint's own config decides the architecture; only V2PE's δ carries over
        self.init_model(LongVA, model, pretrained=pretrained, check=check,
                        pretrained_overrides={"v2pe_delta": model.v2pe_delta}, hparams={
                            "lr": lr, "weight_decay": weight_decay, "warmup_steps": warmup_steps,
                            "min_lr_ratio": min_lr_ratio,
                            "v2pe_train_deltas": list(v2pe_train_deltas) if v2pe_train_deltas else None,
                            "sequence_parallel": sequence_parallel, "sp_size": sp_size,
                            "hybrid_mesh": list(hybrid_mesh) if hybrid_mesh else None})
        self._sp = None  # zoo.parallel.SequenceParallelMesh, built in setup() once the processes exist
        self._rng = random.Random(0)  # V2PE's δ per training sample; saved in checkpoints (RNGState)

    def setup(self, stage: str) -> None:
        if self.hparams.sequence_parallel is not None:
            from zoo.parallel import sequence_parallel_mesh

            hp = self.hparams
            self._sp = sequence_parallel_mesh(hp.sequence_parallel, hp.sp_size, hp.hybrid_mesh)

    def training_step(self, batch, batch_idx):
        deltas = self.hparams.v2pe_train_deltas
        delta = [self._rng.choice(deltas) for _ in range(len(batch["videos"]))] if deltas else None
        n = len(batch["videos"])
        if self._sp is None:
            out = self.model(batch["input_ids"], batch["videos"], labels=batch["labels"], v2pe_delta=delta)
            self.log("train/loss", out.loss, prog_bar=True, batch_size=n)
            return out.loss
        from zoo.sequence_parallel import SequenceParallel, sp_loss
        from zoo.sequence_parallel.mmsp import mmsp_shard

        sp = self._sp
        group, sp_world = sp.group, sp.sp_size
        _check_same_batch(batch, group)
        part = mmsp_shard(self.model, batch["input_ids"], batch["videos"], batch["labels"], group=group,
                          v2pe_delta=delta)
        ctx = SequenceParallel(sp.kind, part["indices"], group=group, ulysses_group=sp.ulysses_group,
                               ring_group=sp.ring_group)
        logits = self.model.lm(inputs_embeds=part["inputs_embeds"], position_ids=part["position_ids"],
                               segment_ids=part["segment_ids"], sequence_parallel=ctx).logits
        loss = sp_loss(logits, part["shifted_labels"], group=group)  # this rank's share of the SP group's loss
        total = loss.detach().clone()
        torch.distributed.all_reduce(total, group=group)
        self.log("train/loss", total, prog_bar=True, batch_size=n, sync_dist=True)
        # DDP averages gradients over all ranks; the SP group's gradient is the *sum* of its ranks' gradients
        return loss * sp_world

    def on_before_optimizer_step(self, optimizer) -> None:
        norm = torch.sqrt(sum((p.grad.float() ** 2).sum() for p in self.parameters() if p.grad is not None))
        self.log("train/grad_norm", norm)

    def validation_step(self, batch, batch_idx):
        out = self.model(batch["input_ids"], batch["videos"], labels=batch["labels"])
        n = len(batch["videos"])
        # sync_dist: under DDP each rank validates its own part of the set; the logged figures cover all of it
        self.log("val/loss", out.loss, prog_bar=True, batch_size=n, sync_dist=True)
        expanded = expanded_labels(self.model, batch)
        self.log("val/vniah_acc", labels_exact_match(out.logits, expanded).mean(), prog_bar=True, batch_size=n,
                 sync_dist=True)

    def configure_optimizers(self):
        hp = self.hparams
        return adamw_warmup_cosine(self, hp.lr, hp.weight_decay, (0.9, 0.95), hp.warmup_steps, hp.min_lr_ratio)


def _check_same_batch(batch: dict, group) -> None:
    """Sequence-parallel ranks must hold the same batch; a data module that gives each rank its own is an error."""
    import torch.distributed as dist

    key = torch.stack([batch["input_ids"].double().sum(), batch["labels"].double().sum(),
                       sum(v.double().sum() for v in batch["videos"])])
    keys = [torch.empty_like(key) for _ in range(dist.get_world_size(group))]
    dist.all_gather(keys, key, group=group)
    if any(not torch.equal(k, key) for k in keys):
        raise RuntimeError("sequence-parallel ranks received different batches: give the data module sp_group_size equal "
                           "to the model's sp_size (e.g. --data.init_args.sp_group_size 4)")


def expanded_labels(model: LongVA, batch: dict) -> torch.Tensor:
    """The batch's labels in the expanded (frame tokens spliced in) coordinates, without encoding any frame."""
    ids = batch["input_ids"]
    per_row = (ids == IMAGE_TOKEN_INDEX).sum(1).tolist()
    if any(k != 1 for k in per_row):
        raise ValueError(f"V-NIAH batches hold one video placeholder per row, got {per_row}")
    lengths = [len(video) * model.tokens_per_frame for video in batch["videos"]]
    return splice_labels(ids, batch["labels"], IMAGE_TOKEN_INDEX, lengths)


class VNIAHDataModule(L.LightningDataModule):
    """Synthetic V-NIAH at ``num_frames`` frames per sample (haystack cached as a real video; see vniah.py), or the
    user's own ``haystack_video`` / ``needle_image`` + ``needle_answer``. ``sp_group_size``: ranks per sequence-parallel
    group (they get the same batches; with the default 1 every rank gets its own)."""

    def __init__(self, image_size: int = 32, num_frames: int = 16, batch_size: int = 16, val_per_depth: int = 8,
                 haystack_video: str | None = None, needle_image: str | None = None, needle_answer: str | None = None,
                 seed: int = 0, sp_group_size: int = 1):
        super().__init__()
        self.save_hyperparameters()
        self._haystack: Haystack | None = None

    def prepare_data(self) -> None:
        # Lightning calls this on one process per node before the others read: the cached haystack is written once,
        # so every rank decodes the same file (concurrent encodes need not be bit-identical)
        if not self.hparams.haystack_video:
            haystack_path()

    @property
    def haystack(self) -> Haystack:
        if self._haystack is None:
            hp = self.hparams
            self._haystack = Haystack(hp.image_size, Path(hp.haystack_video) if hp.haystack_video else None,
                                      hp.needle_image, hp.needle_answer)
        return self._haystack

    def train_dataloader(self):
        hp = self.hparams
        # the ranks of one sequence-parallel group must see the same batch; data-parallel groups different ones
        dp_rank, _ = data_parallel_rank(self.trainer, hp.sp_group_size)
        stream = VNIAHStream(self.haystack, hp.num_frames, hp.batch_size, hp.seed, dp_rank)
        return ResumableLoader(stream, hp.batch_size, trainer=self.trainer, collate_fn=collate)

    def val_dataloader(self):
        hp = self.hparams
        return DataLoader(VNIAHSet(self.haystack, hp.num_frames, n_per_depth=hp.val_per_depth),
                          batch_size=hp.batch_size, collate_fn=collate)
