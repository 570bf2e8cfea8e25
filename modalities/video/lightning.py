"""Lightning glue for LongVA: the training module (optionally drawing a V2PE δ per sample) and the V-NIAH data."""

from __future__ import annotations

import random
from dataclasses import asdict
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from ..text.lightning import warmup_cosine
from .longva import IMAGE_TOKEN_INDEX, LongVA, LongVAConfig
from .vniah import Haystack, VNIAHSet, VNIAHStream, collate, labels_exact_match


class LongVAModule(L.LightningModule):
    """Next-token loss on the answer tokens; validation reports loss and V-NIAH exact match.

    ``v2pe_train_deltas``: with V2PE, each training sample's visual step δ is drawn from this set (V2PE's recipe);
    validation and evaluation use the model config's fixed ``v2pe_delta``.
    """

    def __init__(self, model: LongVAConfig, lr: float = 1e-3, weight_decay: float = 0.05, warmup_steps: int = 50,
                 min_lr_ratio: float = 0.1, v2pe_train_deltas: list[float] | None = None,
                 pretrained: str | None = None):
        super().__init__()
        loaded = None
        if pretrained:
            # the checkpoint's own config decides the architecture; only V2PE's δ carries over from the YAML
            from zoo.loading import load_pretrained

            loaded = load_pretrained(pretrained)
            if not isinstance(loaded, LongVA):
                raise ValueError(f"pretrained={pretrained!r} holds a {type(loaded).__name__}, not a LongVA model")
            loaded.config.v2pe_delta = model.v2pe_delta
            model = loaded.config
        if v2pe_train_deltas and model.v2pe_delta is None:
            raise ValueError("v2pe_train_deltas needs model.v2pe_delta (the δ used at evaluation)")
        for d in v2pe_train_deltas or []:
            if not 0 < d <= 1:
                raise ValueError(f"v2pe_train_deltas: {d} is outside (0, 1]")
        self.save_hyperparameters(
            {"zoo_model": {"arch": "longva", "config": asdict(model), "prefix": "model."}, "lr": lr,
             "weight_decay": weight_decay, "warmup_steps": warmup_steps, "min_lr_ratio": min_lr_ratio,
             "v2pe_train_deltas": list(v2pe_train_deltas) if v2pe_train_deltas else None}
        )
        self.model = loaded.train() if loaded is not None else LongVA(model)
        self._rng = random.Random(0)

    def training_step(self, batch, batch_idx):
        deltas = self.hparams.v2pe_train_deltas
        delta = [self._rng.choice(deltas) for _ in range(len(batch["videos"]))] if deltas else None
        out = self.model(batch["input_ids"], batch["videos"], labels=batch["labels"], v2pe_delta=delta)
        self.log("train/loss", out.loss, prog_bar=True, batch_size=len(batch["videos"]))
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self.model(batch["input_ids"], batch["videos"], labels=batch["labels"])
        n = len(batch["videos"])
        self.log("val/loss", out.loss, prog_bar=True, batch_size=n)
        expanded = expanded_labels(self.model, batch)
        self.log("val/vniah_acc", labels_exact_match(out.logits, expanded).mean(), prog_bar=True, batch_size=n)

    def configure_optimizers(self):
        hp = self.hparams
        decay = [p for p in self.model.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.model.parameters() if p.dim() < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": hp.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=hp.lr, betas=(0.9, 0.95))
        trainer = self._trainer
        total = trainer.max_steps if trainer is not None and trainer.max_steps > 0 else 10_000
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, hp.warmup_steps, total,
                                                                                hp.min_lr_ratio))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def expanded_labels(model: LongVA, batch: dict) -> torch.Tensor:
    """The batch's labels in the expanded (frame tokens spliced in) coordinates, without encoding any frame."""
    tokens = model.tokens_per_frame
    rows = []
    for ids, labels, video in zip(batch["input_ids"], batch["labels"], batch["videos"]):
        parts = []
        for tok, lab in zip(ids.tolist(), labels.tolist()):
            parts += [-100] * (len(video) * tokens) if tok == IMAGE_TOKEN_INDEX else [lab]
        rows.append(parts)
    n = max(len(r) for r in rows)
    return torch.tensor([r + [-100] * (n - len(r)) for r in rows], device=batch["input_ids"].device)


class VNIAHDataModule(L.LightningDataModule):
    """Synthetic V-NIAH at ``num_frames`` frames per sample (haystack cached as a real video; see vniah.py), or the
    user's own ``haystack_video`` / ``needle_image`` + ``needle_answer``."""

    def __init__(self, image_size: int = 32, num_frames: int = 16, batch_size: int = 16, val_per_depth: int = 8,
                 haystack_video: str | None = None, needle_image: str | None = None, needle_answer: str | None = None,
                 seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self._haystack: Haystack | None = None

    @property
    def haystack(self) -> Haystack:
        if self._haystack is None:
            hp = self.hparams
            self._haystack = Haystack(hp.image_size, Path(hp.haystack_video) if hp.haystack_video else None,
                                      hp.needle_image, hp.needle_answer)
        return self._haystack

    def train_dataloader(self):
        hp = self.hparams
        return DataLoader(VNIAHStream(self.haystack, hp.num_frames, hp.seed), batch_size=hp.batch_size,
                          collate_fn=collate)

    def val_dataloader(self):
        hp = self.hparams
        return DataLoader(VNIAHSet(self.haystack, hp.num_frames, n_per_depth=hp.val_per_depth),
                          batch_size=hp.batch_size, collate_fn=collate)
