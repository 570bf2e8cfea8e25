"""Lightning glue for genomic language models: next-token training on FASTA windows, logging bits per base."""

from __future__ import annotations

import math
from dataclasses import asdict

import torch
from torch import Tensor
from torch.utils.data import DataLoader

import lightning as L

from zoo.lm import CausalLM, LMConfig

from .caduceus import Caduceus, CaduceusConfig

from ..text.lightning import adamw_warmup_cosine
from .fasta import FastaWindows
from .tokenizers import CharTokenizer, KmerTokenizer, SequenceTokenizer


def make_tokenizer(kind: str, k: int = 6) -> SequenceTokenizer:
    if kind == "char":
        return CharTokenizer()
    if kind == "kmer":
        return KmerTokenizer(k)
    raise ValueError(f"tokenizer must be 'char' or 'kmer', got {kind!r}")


class GenomicLMModule(L.LightningModule):
    """Next-token loss over bases (padding and N are not targets); logs loss and bits per base
    (loss / ln 2 / bases per token)."""

    def __init__(self, model: LMConfig, lr: float = 1e-3, weight_decay: float = 0.1, warmup_steps: int = 50,
                 min_lr_ratio: float = 0.1, bases_per_token: int = 1):
        super().__init__()
        self.save_hyperparameters(
            {"zoo_model": {"arch": CausalLM.arch, "config": model.to_dict(), "prefix": "model."}, "lr": lr,
             "weight_decay": weight_decay, "warmup_steps": warmup_steps, "min_lr_ratio": min_lr_ratio,
             "bases_per_token": bases_per_token}
        )
        self.model = CausalLM(model)

    def _step(self, batch, stage: str):
        out = self.model(batch["input_ids"], labels=batch["labels"])
        n = len(batch["input_ids"])
        self.log(f"{stage}/loss", out.loss, prog_bar=True, batch_size=n, sync_dist=stage == "val")
        bpb = out.loss / math.log(2) / self.hparams.bases_per_token
        self.log(f"{stage}/bits_per_base", bpb, prog_bar=stage == "val", batch_size=n, sync_dist=stage == "val")
        return out.loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def configure_optimizers(self):
        hp = self.hparams
        return adamw_warmup_cosine(self, hp.lr, hp.weight_decay, (0.9, 0.95), hp.warmup_steps, hp.min_lr_ratio)


def collate_windows(batch: list[dict], tokenizer: SequenceTokenizer) -> dict:
    """Pad on the tokenizer's side; labels are the ids except padding and N ([UNK] too), which are not predicted."""
    n = max(len(b["input_ids"]) for b in batch)
    ids = torch.full((len(batch), n), tokenizer.pad_token_id)
    for i, b in enumerate(batch):
        m = len(b["input_ids"])
        if tokenizer.padding_side == "left":
            ids[i, n - m:] = b["input_ids"]
        else:
            ids[i, :m] = b["input_ids"]
    ignore = ids == tokenizer.pad_token_id
    ignore |= ids == tokenizer.unk_token_id
    if "N" in tokenizer.vocab:
        ignore |= ids == tokenizer.vocab["N"]
    return {"input_ids": ids, "labels": ids.masked_fill(ignore, -100)}


class FastaDataModule(L.LightningDataModule):
    """Random training windows from the first ``1 − val_fraction`` of every record of ``path`` (one FASTA file or a
    list, plain or bgzip), tiled validation windows from the rest."""

    def __init__(self, path: str | list[str], window: int = 1024, batch_size: int = 16,
                 samples_per_epoch: int = 100_000, val_fraction: float = 0.1, tokenizer: str = "char", k: int = 6,
                 reverse_complement: str | None = "random", max_n_fraction: float = 0.5, seed: int = 0,
                 num_workers: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.tokenizer = make_tokenizer(tokenizer, k)

    @property
    def paths(self) -> list[str]:
        p = self.hparams.path
        return [p] if isinstance(p, str) else list(p)

    def _windows(self, mode: str, span: tuple[float, float], rc: str | None) -> FastaWindows:
        hp = self.hparams
        return FastaWindows(self.paths, hp.window, mode=mode, num_samples=hp.samples_per_epoch, span=span,
                            reverse_complement=rc, max_n_fraction=hp.max_n_fraction, tokenizer=self.tokenizer,
                            seed=hp.seed)

    def _loader(self, data, shuffle: bool = False):
        return DataLoader(data, batch_size=self.hparams.batch_size, num_workers=self.hparams.num_workers,
                          shuffle=shuffle, collate_fn=lambda b: collate_windows(b, self.tokenizer))

    def train_dataloader(self):
        return self._loader(self._windows("random", (0.0, 1 - self.hparams.val_fraction),
                                          self.hparams.reverse_complement))

    def val_dataloader(self):
        return self._loader(self._windows("tiled", (1 - self.hparams.val_fraction, 1.0), None))


def mask_for_mlm(ids: Tensor, tokenizer: SequenceTokenizer, prob: float, generator: torch.Generator,
                 symbols: list[int]) -> tuple[Tensor, Tensor]:
    """BERT's masking: ``prob`` of the predictable tokens become targets; of those 80% turn into [MASK], 10% into a
    random symbol, 10% stay. Padding, [UNK] and N are never targets. → (masked ids, labels with -100 elsewhere)."""
    can = (ids != tokenizer.pad_token_id) & (ids != tokenizer.unk_token_id)
    if "N" in tokenizer.vocab:
        can &= ids != tokenizer.vocab["N"]
    pick = (torch.rand(ids.shape, generator=generator) < prob) & can
    labels = ids.masked_fill(~pick, -100)
    roll = torch.rand(ids.shape, generator=generator)
    out = ids.clone()
    out[pick & (roll < 0.8)] = tokenizer.mask_token_id
    rand = pick & (roll >= 0.8) & (roll < 0.9)
    choices = torch.tensor(symbols)
    out[rand] = choices[torch.randint(len(symbols), (int(rand.sum()),), generator=generator)]
    return out, labels


class GenomicMLMModule(L.LightningModule):
    """Masked-LM training of a bidirectional DNA model (Caduceus-PS); logs loss and bits per masked base."""

    def __init__(self, model: CaduceusConfig, lr: float = 1e-3, weight_decay: float = 0.1, warmup_steps: int = 50,
                 min_lr_ratio: float = 0.1, mask_prob: float = 0.15, seed: int = 0):
        super().__init__()
        self.save_hyperparameters(
            {"zoo_model": {"arch": Caduceus.arch, "config": asdict(model), "prefix": "model."}, "lr": lr,
             "weight_decay": weight_decay, "warmup_steps": warmup_steps, "min_lr_ratio": min_lr_ratio,
             "mask_prob": mask_prob, "seed": seed}
        )
        self.model = Caduceus(model)
        self.tokenizer = CharTokenizer()
        self._gen = torch.Generator().manual_seed(seed)
        self._symbols = [self.tokenizer.vocab[c] for c in "ACGT"]

    def _step(self, batch, stage: str, generator: torch.Generator):
        ids, labels = mask_for_mlm(batch["input_ids"], self.tokenizer, self.hparams.mask_prob, generator,
                                   self._symbols)
        out = self.model(ids, labels=labels)
        n = len(ids)
        self.log(f"{stage}/loss", out.loss, prog_bar=True, batch_size=n, sync_dist=stage == "val")
        self.log(f"{stage}/bits_per_base", out.loss / math.log(2), prog_bar=stage == "val", batch_size=n,
                 sync_dist=stage == "val")
        return out.loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train", self._gen)

    def validation_step(self, batch, batch_idx):
        # the same masks on every validation pass, so that figures compare across steps
        self._step(batch, "val", torch.Generator().manual_seed(10_000 + batch_idx))

    def configure_optimizers(self):
        hp = self.hparams
        return adamw_warmup_cosine(self, hp.lr, hp.weight_decay, (0.9, 0.95), hp.warmup_steps, hp.min_lr_ratio)
