"""Lightning glue for Qwen2-Audio-shaped models: the training module (with VLAT) and the synthetic audio-needle data."""

from __future__ import annotations

import random

import lightning as L
import torch
from torch.utils.data import DataLoader

from zoo.data import ResumableLoader, data_parallel_rank
from zoo.lm import labels_exact_match
from zoo.module import ZooModule
from zoo.optim import adamw_warmup_cosine

from .needle import NeedleSet, NeedleStream, NeedleTask, collate
from .partial_yarn import VLAT_FACTORS, VLAT_MAX_TOKENS, WINDOW_TOKENS, draw_virtual_length
from .qwen2_audio import Qwen2Audio, Qwen2AudioConfig

MODEL_INPUTS = ("input_ids", "input_features", "attention_mask", "feature_attention_mask")


class AudioQAModule(ZooModule):
    """Next-token loss on the answer tokens; validation reports loss and needle exact match (at the training length).

    ``vlat``: virtual long-audio training — each sample's audio span gets Partial YaRN positions as if it were
    ``window × factor`` tokens long, the factor drawn from ``vlat_factors`` (within ``vlat_max_tokens``); validation
    uses plain positions. ``pretrained``: a checkpoint (directory, hub id or .ckpt) whose config and weights replace
    ``model``; ``model.partial_yarn`` still applies.
    """

    rng_attributes = ("_rng",)  # zoo.callbacks.RNGState saves and restores the VLAT length generator

    def __init__(self, model: Qwen2AudioConfig, lr: float = 1e-3, weight_decay: float = 0.05, warmup_steps: int = 50,
                 min_lr_ratio: float = 0.1, vlat: bool = False, vlat_factors: list[int] | None = None,
                 vlat_max_tokens: int = VLAT_MAX_TOKENS, pretrained: str | None = None):
        super().__init__()
        factors = list(vlat_factors) if vlat_factors else list(VLAT_FACTORS)

        def check(config: Qwen2AudioConfig) -> None:
            if vlat:  # fails early on an empty choice
                window = (config.partial_yarn or {}).get("window", WINDOW_TOKENS)
                draw_virtual_length(random.Random(0), factors, window, vlat_max_tokens)

        self.init_model(Qwen2Audio, model, pretrained=pretrained, check=check,
                        pretrained_overrides={"partial_yarn": model.partial_yarn}, hparams={
                            "lr": lr, "weight_decay": weight_decay, "warmup_steps": warmup_steps,
                            "min_lr_ratio": min_lr_ratio, "vlat": vlat, "vlat_factors": factors,
                            "vlat_max_tokens": vlat_max_tokens})
        self._rng = random.Random(0)  # VLAT's virtual lengths; saved in checkpoints (RNGState)

    def _virtual_lengths(self, batch_size: int) -> list[int] | None:
        hp = self.hparams
        if not hp.vlat:
            return None
        window = self.model.partial_yarn.window if self.model.partial_yarn is not None else WINDOW_TOKENS
        return [draw_virtual_length(self._rng, hp.vlat_factors, window, hp.vlat_max_tokens) for _ in range(batch_size)]

    def training_step(self, batch, batch_idx):
        n = len(batch["input_ids"])
        out = self.model(**{k: batch[k] for k in MODEL_INPUTS}, labels=batch["labels"],
                         virtual_lengths=self._virtual_lengths(n))
        self.log("train/loss", out.loss, prog_bar=True, batch_size=n)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**{k: batch[k] for k in MODEL_INPUTS}, labels=batch["labels"], partial_yarn=False)
        n = len(batch["input_ids"])
        self.log("val/loss", out.loss, prog_bar=True, batch_size=n, sync_dist=True)
        self.log("val/needle_acc", labels_exact_match(out.logits, batch["labels"]).mean(), prog_bar=True,
                 batch_size=n, sync_dist=True)

    def configure_optimizers(self):
        hp = self.hparams
        return adamw_warmup_cosine(self, hp.lr, hp.weight_decay, (0.9, 0.95), hp.warmup_steps, hp.min_lr_ratio)


class AudioNeedleDataModule(L.LightningDataModule):
    """Synthetic DTMF-code needles in ``seconds`` of haystack audio (see needle.py); generated on the fly, nothing is
    downloaded. ``min_seconds``: training clips get a length drawn from [min_seconds, seconds] (validation stays at
    ``seconds``) — short clips let a tiny model find the needle among few tokens before it must among many. ``audio_token_id``, ``n_mels`` and ``window_seconds`` (2 × the encoder's max_source_positions / 100)
    must match the model's."""

    def __init__(self, seconds: float = 30.0, code_length: int = 3, batch_size: int = 8, val_per_depth: int = 8,
                 n_mels: int = 128, audio_token_id: int = 259, window_seconds: float = 30.0,
                 min_seconds: float | None = None, seed: int = 0, num_workers: int = 1):
        super().__init__()
        self.save_hyperparameters()
        self.task = NeedleTask(seconds, code_length, audio_token_id, n_mels, window_seconds, min_seconds)

    def train_dataloader(self):
        hp = self.hparams
        rank, _ = data_parallel_rank(self.trainer)
        return ResumableLoader(NeedleStream(self.task, hp.batch_size, hp.seed, rank), hp.batch_size,
                               trainer=self.trainer, collate_fn=collate, num_workers=hp.num_workers,
                               persistent_workers=hp.num_workers > 0)

    def val_dataloader(self):
        hp = self.hparams
        return DataLoader(NeedleSet(self.task, hp.seconds, n_per_depth=hp.val_per_depth), batch_size=hp.batch_size,
                          collate_fn=collate)
