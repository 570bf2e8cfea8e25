"""Lightning glue for genomic language models: next-token training on FASTA windows, logging bits per base."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.utils.data import DataLoader

import lightning as L

from zoo.data import ResumableLoader, data_parallel_rank
from zoo.lm import CausalLM, LMConfig
from zoo.metrics import answer_exact_match
from zoo.module import ZooModule
from zoo.optim import adamw_warmup_cosine

from .caduceus import Caduceus, CaduceusConfig
from .fasta import FastaWindows
from .passkey import DnaPasskeySet, DnaPasskeyStream, masked_exact_match
from .proteins import STANDARD, ProteinRecords, synthetic_protein_file
from .tokenizers import CharTokenizer, KmerTokenizer, ProteinTokenizer, SequenceTokenizer


def make_tokenizer(kind: str, k: int = 6) -> SequenceTokenizer:
    if kind == "char":
        return CharTokenizer()
    if kind == "kmer":
        return KmerTokenizer(k)
    if kind == "protein":
        return ProteinTokenizer()
    raise ValueError(f"tokenizer must be 'char', 'kmer' or 'protein', got {kind!r}")


def not_a_target(ids: Tensor, tokenizer: SequenceTokenizer) -> Tensor:
    """Tokens never predicted: special tokens (padding, [UNK], …) and, for DNA, N (for proteins N is asparagine)."""
    out = torch.zeros_like(ids, dtype=torch.bool)
    for i in tokenizer.special_ids:
        out |= ids == i
    if tokenizer.kind == "char":
        out |= ids == tokenizer.vocab["N"]
    return out


class GenomicLMModule(ZooModule):
    """Next-token loss over bases (padding and N are not targets); logs loss and bits per base
    (loss / ln 2 / bases per token). ``pretrained``: start from a checkpoint (a HyenaDNA / GENERator directory, a
    hub id or a .ckpt), whose config replaces ``model``."""

    def __init__(self, model: LMConfig, lr: float = 1e-3, weight_decay: float = 0.1, warmup_steps: int = 50,
                 min_lr_ratio: float = 0.1, bases_per_token: int = 1, tokenizer: str = "char",
                 pretrained: str | None = None):
        super().__init__()
        make_tokenizer(tokenizer)  # validate the name
        # the tokenizer is recorded so that evals (the DNA passkey) know which ids the checkpoint speaks
        self.init_model(CausalLM, model, pretrained=pretrained, tokenizer=tokenizer, hparams={
            "lr": lr, "weight_decay": weight_decay, "warmup_steps": warmup_steps, "min_lr_ratio": min_lr_ratio,
            "bases_per_token": bases_per_token, "tokenizer": tokenizer})

    def _step(self, batch, stage: str):
        out = self.model(batch["input_ids"], labels=batch["labels"])
        n = len(batch["input_ids"])
        self.log(f"{stage}/loss", out.loss, prog_bar=True, batch_size=n, sync_dist=stage == "val")
        bpb = out.loss / math.log(2) / self.hparams.bases_per_token
        self.log(f"{stage}/bits_per_base", bpb, prog_bar=stage == "val", batch_size=n, sync_dist=stage == "val")
        if stage == "val" and "answer_mask" in batch:  # DNA passkey batches
            acc = answer_exact_match(out.logits, batch["input_ids"], batch["answer_mask"]).mean()
            self.log("val/passkey_acc", acc, prog_bar=True, batch_size=n, sync_dist=True)
        return out.loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def configure_optimizers(self):
        hp = self.hparams
        return adamw_warmup_cosine(self, hp.lr, hp.weight_decay, (0.9, 0.95), hp.warmup_steps, hp.min_lr_ratio)


def collate_windows(batch: list[dict], tokenizer: SequenceTokenizer) -> dict:
    """Pad on the tokenizer's side; labels are the ids except special tokens (padding, [UNK], …) and DNA's N, which
    are not predicted."""
    n = max(len(b["input_ids"]) for b in batch)
    ids = torch.full((len(batch), n), tokenizer.pad_token_id)
    for i, b in enumerate(batch):
        m = len(b["input_ids"])
        if tokenizer.padding_side == "left":
            ids[i, n - m:] = b["input_ids"]
        else:
            ids[i, :m] = b["input_ids"]
    return {"input_ids": ids, "labels": ids.masked_fill(not_a_target(ids, tokenizer), -100)}


class FastaDataModule(L.LightningDataModule):
    """Random training windows from the first ``1 − val_fraction`` of every record of ``path`` (one FASTA file or a
    list, plain or bgzip), tiled validation windows from the rest. The ``.fai`` index goes to the cache unless
    ``index_next_to_fasta``."""

    def __init__(self, path: str | list[str], window: int = 1024, batch_size: int = 16,
                 samples_per_epoch: int = 100_000, val_fraction: float = 0.1, tokenizer: str = "char", k: int = 6,
                 reverse_complement: str | None = "random", max_n_fraction: float = 0.5, seed: int = 0,
                 num_workers: int = 0, index_next_to_fasta: bool = False):
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
                            seed=hp.seed, index_next_to_fasta=hp.index_next_to_fasta)

    def _collate(self, batch: list[dict]) -> dict:
        return collate_windows(batch, self.tokenizer)

    def train_dataloader(self):
        hp = self.hparams
        # the random windows are already drawn at random (item i seeded by i): served in order, resumable
        windows = self._windows("random", (0.0, 1 - hp.val_fraction), hp.reverse_complement)
        rank, world = data_parallel_rank(self.trainer)
        return ResumableLoader(windows, hp.batch_size, shuffle=False, seed=hp.seed, trainer=self.trainer,
                               num_replicas=world, rank=rank, num_workers=hp.num_workers, collate_fn=self._collate)

    def val_dataloader(self):
        hp = self.hparams
        return DataLoader(self._windows("tiled", (1 - hp.val_fraction, 1.0), None), batch_size=hp.batch_size,
                          num_workers=hp.num_workers, collate_fn=self._collate)


def mask_for_mlm(ids: Tensor, tokenizer: SequenceTokenizer, prob: float, generator: torch.Generator,
                 symbols: list[int]) -> tuple[Tensor, Tensor]:
    """BERT's masking: ``prob`` of the predictable tokens become targets; of those 80% turn into [MASK], 10% into a
    random symbol, 10% stay. Special tokens and DNA's N are never targets. → (masked ids, labels, -100 elsewhere)."""
    can = ~not_a_target(ids, tokenizer)
    pick = (torch.rand(ids.shape, generator=generator) < prob) & can
    labels = ids.masked_fill(~pick, -100)
    roll = torch.rand(ids.shape, generator=generator)
    out = ids.clone()
    out[pick & (roll < 0.8)] = tokenizer.mask_token_id
    rand = pick & (roll >= 0.8) & (roll < 0.9)
    choices = torch.tensor(symbols)
    out[rand] = choices[torch.randint(len(symbols), (int(rand.sum()),), generator=generator)]
    return out, labels


class GenomicMLMModule(ZooModule):
    """Masked-LM training of a bidirectional model: Caduceus over DNA (``tokenizer: char``; logs bits per masked
    base) or LC-PLM's BiMamba over amino acids (``tokenizer: protein``; bits per masked residue)."""

    rng_attributes = ("_gen",)  # zoo.callbacks.RNGState saves and restores the mask generator

    def __init__(self, model: CaduceusConfig, lr: float = 1e-3, weight_decay: float = 0.1, warmup_steps: int = 50,
                 min_lr_ratio: float = 0.1, mask_prob: float = 0.15, seed: int = 0, tokenizer: str = "char",
                 pretrained: str | None = None):
        super().__init__()
        if tokenizer not in ("char", "protein"):
            raise ValueError(f"GenomicMLMModule tokenizer must be 'char' or 'protein', got {tokenizer!r}")
        self.tokenizer = make_tokenizer(tokenizer)

        def check(config: CaduceusConfig) -> None:
            if config.vocab_size < self.tokenizer.vocab_size:
                raise ValueError(f"model.vocab_size={config.vocab_size} is smaller than the {tokenizer} tokenizer's "
                                 f"{self.tokenizer.vocab_size} ids")

        self.init_model(Caduceus, model, pretrained=pretrained, tokenizer=tokenizer, check=check, hparams={
            "lr": lr, "weight_decay": weight_decay, "warmup_steps": warmup_steps, "min_lr_ratio": min_lr_ratio,
            "mask_prob": mask_prob, "seed": seed, "tokenizer": tokenizer})
        self._gen = torch.Generator().manual_seed(seed)  # the training masks; saved in checkpoints (RNGState)
        self._symbols = [self.tokenizer.vocab[c] for c in ("ACGT" if tokenizer == "char" else STANDARD)]
        self._unit = "base" if tokenizer == "char" else "residue"

    def _step(self, batch, stage: str, generator: torch.Generator):
        if "answer_mask" in batch:  # DNA passkey: the answer is masked already and is the only target
            ids, labels = batch["input_ids"], batch["labels"]
        else:
            ids, labels = mask_for_mlm(batch["input_ids"], self.tokenizer, self.hparams.mask_prob, generator,
                                       self._symbols)
        out = self.model(ids, labels=labels)
        n = len(ids)
        if stage == "val" and "answer_mask" in batch:
            acc = masked_exact_match(out.logits, labels, batch["answer_mask"]).mean()
            self.log("val/passkey_acc", acc, prog_bar=True, batch_size=n, sync_dist=True)
        self.log(f"{stage}/loss", out.loss, prog_bar=True, batch_size=n, sync_dist=stage == "val")
        self.log(f"{stage}/bits_per_{self._unit}", out.loss / math.log(2), prog_bar=stage == "val", batch_size=n,
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


class DnaPasskeyDataModule(L.LightningDataModule):
    """Synthetic DNA passkey samples (:mod:`zoo.modalities.genomic.passkey`): training at a length drawn per batch
    from [min_seq_len, seq_len], validation on a fixed grid at ``seq_len``. ``masked`` for masked-LM models (the
    answer is given as [MASK]). Nothing is read from disk or downloaded."""

    def __init__(self, seq_len: int = 1024, min_seq_len: int | None = 256, batch_size: int = 16,
                 val_per_depth: int = 8, key_len: int = 6, masked: bool = False, train_repeats: int = 2,
                 seed: int = 0, num_workers: int = 0):
        super().__init__()
        self.save_hyperparameters()

    def train_dataloader(self):
        hp = self.hparams
        rank, _ = data_parallel_rank(self.trainer)
        stream = DnaPasskeyStream(hp.seq_len, hp.batch_size, hp.seed, rank, hp.key_len, hp.masked, hp.min_seq_len,
                                  repeats=hp.train_repeats)
        return ResumableLoader(stream, hp.batch_size, trainer=self.trainer, num_workers=hp.num_workers)

    def val_dataloader(self):
        hp = self.hparams
        data = DnaPasskeySet(hp.seq_len, n_per_depth=hp.val_per_depth, key_len=hp.key_len, masked=hp.masked)
        return DataLoader(data, batch_size=hp.batch_size)


class ProteinDataModule(L.LightningDataModule):
    """Whole protein records (cropped to ``max_len``) from ``path`` (FASTA files, plain or bgzip), a fixed
    ``val_fraction`` of records held out by name; without ``path``, a synthetic Markov-chain protein set written once
    to the cache (:mod:`zoo.modalities.genomic.proteins`)."""

    def __init__(self, path: str | list[str] | None = None, max_len: int = 256, batch_size: int = 16,
                 val_fraction: float = 0.1, n_synthetic: int = 2000, seed: int = 0, num_workers: int = 0,
                 index_next_to_fasta: bool = False):
        super().__init__()
        self.save_hyperparameters()
        self.tokenizer = ProteinTokenizer()

    @property
    def paths(self) -> list[str]:
        p = self.hparams.path
        if p is None:
            return [str(synthetic_protein_file(self.hparams.seed, self.hparams.n_synthetic))]
        return [p] if isinstance(p, str) else list(p)

    def _records(self, split: str) -> ProteinRecords:
        hp = self.hparams
        return ProteinRecords(self.paths, hp.max_len, split, hp.val_fraction, self.tokenizer, hp.seed,
                              index_next_to_fasta=hp.index_next_to_fasta)

    def _collate(self, batch: list[dict]) -> dict:
        return collate_windows(batch, self.tokenizer)

    def train_dataloader(self):
        hp = self.hparams
        rank, world = data_parallel_rank(self.trainer)
        return ResumableLoader(self._records("train"), hp.batch_size, shuffle=True, seed=hp.seed,
                               trainer=self.trainer, num_replicas=world, rank=rank, num_workers=hp.num_workers,
                               collate_fn=self._collate)

    def val_dataloader(self):
        hp = self.hparams
        return DataLoader(self._records("val"), batch_size=hp.batch_size, num_workers=hp.num_workers,
                          collate_fn=self._collate)
