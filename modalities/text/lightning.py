"""Lightning glue for text LMs: the module that trains a :class:`zoo.lm.CausalLM` and the passkey data module."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader

from zoo.data import ResumableLoader, data_parallel_rank
from zoo.lm import CausalLM, LMConfig
from zoo.metrics import answer_exact_match
from zoo.module import ZooModule
from zoo.optim import adamw_warmup_cosine

from .passkey import PasskeySet, PasskeyStream


class LMModule(ZooModule):
    """Next-token training of a causal LM; validation reports loss and passkey exact match when the batch has one.
    ``pretrained``: start from a checkpoint (directory, hub id or .ckpt), whose config replaces ``model``."""

    def __init__(
        self,
        model: LMConfig,
        lr: float = 1e-3,
        weight_decay: float = 0.1,
        betas: tuple[float, float] = (0.9, 0.95),
        warmup_steps: int = 100,
        min_lr_ratio: float = 0.1,
        decay_norms_and_biases: bool = False,
        pretrained: str | None = None,
    ):
        super().__init__()
        self.init_model(CausalLM, model, pretrained=pretrained, hparams={
            "lr": lr, "weight_decay": weight_decay, "betas": list(betas), "warmup_steps": warmup_steps,
            "min_lr_ratio": min_lr_ratio, "decay_norms_and_biases": decay_norms_and_biases})

    def forward(self, input_ids, **kwargs):
        return self.model(input_ids, **kwargs)

    def training_step(self, batch, batch_idx):
        out = self.model(batch["input_ids"], labels=batch["labels"])
        self.log("train/loss", out.loss, prog_bar=True)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self.model(batch["input_ids"], labels=batch["labels"])
        self.log("val/loss", out.loss, prog_bar=True)
        if "answer_mask" in batch:
            acc = answer_exact_match(out.logits, batch["input_ids"], batch["answer_mask"]).mean()
            self.log("val/passkey_acc", acc, prog_bar=True)

    def configure_optimizers(self):
        hp = self.hparams
        # the usual recipe exempts 1-D parameters (norm gains, biases) from weight decay; decaying them too is an
        # option because it measurably helps the passkey model extrapolate with YaRN (see configs/lm_passkey.yaml)
        return adamw_warmup_cosine(self, hp.lr, hp.weight_decay, tuple(hp.betas), hp.warmup_steps, hp.min_lr_ratio,
                                   decay_1d=hp.decay_norms_and_biases)


class PasskeyDataModule(L.LightningDataModule):
    """Synthetic passkey text at ``seq_len`` byte tokens (or, with ``min_seq_len``, a length drawn per batch);
    validation is always at ``seq_len``. Nothing is downloaded."""

    def __init__(
        self,
        seq_len: int = 512,
        batch_size: int = 16,
        val_per_depth: int = 20,
        loss_on: str = "all",
        min_seq_len: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()

    def train_dataloader(self):
        hp = self.hparams
        rank, _ = data_parallel_rank(self.trainer)
        stream = PasskeyStream(hp.seq_len, hp.batch_size, hp.seed, rank, hp.loss_on, hp.min_seq_len)
        return ResumableLoader(stream, hp.batch_size, trainer=self.trainer, num_workers=hp.num_workers)

    def val_dataloader(self):
        hp = self.hparams
        return DataLoader(
            PasskeySet(hp.seq_len, n_per_depth=hp.val_per_depth, loss_on=hp.loss_on), batch_size=hp.batch_size
        )
