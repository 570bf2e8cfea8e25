"""Fine-tuning a DNA / protein backbone on a labelled downstream task (``configs/genomic_cls_<family>.yaml``).

``SequenceTaskModule(pretrained=PATH, n_outputs=..., pooling=...)`` puts a :class:`SequenceClassifier` head on the
backbone of any checkpoint ``zoo.load_pretrained`` reads (HyenaDNA's own layout, Caduceus, GENERator's Llama layout,
a ``zoo.fit`` run) and trains it with cross-entropy (classification) or MSE (regression; ``n_outputs: 1``).
``backbone: {arch, config}`` instead of ``pretrained`` starts from random weights (the from-scratch baseline of the
papers' tables). ``freeze_backbone`` trains the head only (linear probing); ``layer_lr_decay`` < 1 gives block i of
n the learning rate lr · decay^(n − i) and the embedding lr · decay^(n + 1) (the head keeps lr); both off is full
fine-tuning.
``rc_augment`` replaces each training sequence by its reverse complement with probability ½ (HyenaDNA's and
Caduceus' ``rc_aug``), from a seeded generator that checkpoints save, so a resumed run flips the same rows.

``LabelledDataModule(path=DIR_OR_FILE)`` reads the benchmark layouts of :mod:`.labelled`, holds out
``val_fraction`` of the training records by a fixed seed (GenomicBenchmarks: 10%), and left-pads batches with the
tokenizer's pad id; a sequence longer than ``max_len`` is an error unless ``truncate`` names the side to cut.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from zoo.data import ResumableLoader, data_parallel_rank, left_padded
from zoo.module import ZOO_MODEL_KEY, ZooModule, zoo_model_metadata
from zoo.optim import adamw_warmup_cosine

from .benchmarks import synthetic_benchmark
from .caduceus import Caduceus
from .downstream import SequenceClassifier, dna_complement_ids, reverse_complement_batch
from .labelled import DNA_ALPHABET, TASKS, LabelledSequences, crop_span, read_labelled, validation_split
from .lightning import make_tokenizer
from .proteins import STANDARD
from .tokenizers import SequenceTokenizer


class SequenceTaskModule(ZooModule):
    """See the module docstring. Logs ``train/loss``, ``val/loss`` and ``val/accuracy`` (classification) or
    ``val/mse`` (regression)."""

    rng_attributes = ("_gen",)  # zoo.callbacks.RNGState saves and restores the augmentation generator

    def __init__(self, pretrained: str | None = None, n_outputs: int = 2, task: str = "classification",
                 pooling: str = "mean", conjoin: str | None = None, freeze_backbone: bool = False,
                 layer_lr_decay: float = 1.0, lr: float = 6e-4, weight_decay: float = 0.1, warmup_steps: int = 10, min_lr_ratio: float = 0.1,
                 tokenizer: str = "char", backbone: dict | None = None, rc_augment: bool = False, seed: int = 0):
        super().__init__()
        from zoo.loading import load_pretrained
        from zoo.registry import ARCHITECTURES

        if task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        if (task == "token_classification") != (pooling == "none"):
            raise ValueError(f"task {task!r} with pooling {pooling!r}: token_classification scores every position "
                             "(pooling: none), the other tasks pool the sequence")
        if task == "regression" and n_outputs != 1:
            raise ValueError(f"regression predicts one value: n_outputs must be 1, got {n_outputs}")
        if not 0 < layer_lr_decay <= 1:
            raise ValueError(f"layer_lr_decay must be in (0, 1], got {layer_lr_decay}")
        if (pretrained is None) == (backbone is None):
            raise ValueError("give exactly one of pretrained (a checkpoint to fine-tune) and backbone "
                             "({arch, config}: a randomly initialised backbone, the from-scratch baseline)")
        if pretrained is not None:
            loaded = load_pretrained(pretrained).train()
        else:
            if set(backbone) != {"arch", "config"}:
                raise ValueError(f"backbone needs exactly the keys arch and config, got {sorted(backbone)}")
            loaded = ARCHITECTURES.get(backbone["arch"]).from_config_dict(backbone["config"])
        backbone_model = loaded.backbone if isinstance(loaded, SequenceClassifier) else loaded
        # the ids' reverse-complement map, for conjoining and augmentation: Caduceus' own, or the DNA tokenizer's
        if isinstance(backbone_model, Caduceus):
            complement = torch.tensor(backbone_model.config.permutation())
        else:
            complement = dna_complement_ids(make_tokenizer(tokenizer)) if tokenizer == "char" else None
        if isinstance(loaded, SequenceClassifier):  # continue from an earlier fine-tuning run
            model = loaded
        else:
            model = SequenceClassifier(loaded, n_outputs, pooling, conjoin, complement if conjoin else None)
        if model.score.out_features != n_outputs:
            raise ValueError(f"pretrained={pretrained!r} has a head of {model.score.out_features} outputs, not "
                             f"n_outputs={n_outputs}")
        if freeze_backbone:
            model.backbone.requires_grad_(False)
        if rc_augment and task == "token_classification":
            raise ValueError("rc_augment flips whole sequences; per-base labels would need flipping too (not built)")
        if rc_augment and complement is None:
            raise ValueError(f"rc_augment needs a DNA tokenizer (char), not {tokenizer!r}")
        self.register_buffer("complement", complement, persistent=False)
        self._gen = torch.Generator().manual_seed(seed)  # which rows are flipped; saved in checkpoints (RNGState)
        self.save_hyperparameters({ZOO_MODEL_KEY: zoo_model_metadata(model, tokenizer), "task": task,
                                   "freeze_backbone": freeze_backbone, "layer_lr_decay": layer_lr_decay, "lr": lr,
                                   "weight_decay": weight_decay, "warmup_steps": warmup_steps,
                                   "min_lr_ratio": min_lr_ratio, "tokenizer": tokenizer, "rc_augment": rc_augment,
                                   "seed": seed})
        self.model = model

    def loss(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.hparams.task == "regression":
            return F.mse_loss(scores[:, 0].float(), labels.float())
        if self.hparams.task == "token_classification":  # padding positions carry -100
            return F.cross_entropy(scores.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)
        return F.cross_entropy(scores.float(), labels)

    def _accuracy(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        real = labels != -100
        return (scores.argmax(-1) == labels)[real].float().mean()

    def augment(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row replaced by its reverse complement with probability ½ (HyenaDNA's and Caduceus' rc_aug)."""
        flip = torch.rand(len(ids), generator=self._gen) < 0.5
        if not bool(flip.any()):
            return ids, mask
        rc, rc_mask = reverse_complement_batch(ids, mask.bool(), self.complement.to(ids.device))
        flip = flip.to(ids.device)[:, None]
        return torch.where(flip, rc, ids), torch.where(flip, rc_mask.to(mask.dtype), mask)

    def training_step(self, batch, batch_idx):
        ids, mask = batch["input_ids"], batch["attention_mask"]
        if self.hparams.rc_augment:
            ids, mask = self.augment(ids, mask)
        loss = self.loss(self.model(ids, mask), batch["labels"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["labels"]))
        return loss

    def validation_step(self, batch, batch_idx):
        scores = self.model(batch["input_ids"], batch["attention_mask"])
        n = len(batch["labels"])
        self.log("val/loss", self.loss(scores, batch["labels"]), prog_bar=True, batch_size=n, sync_dist=True)
        if self.hparams.task != "regression":
            acc = self._accuracy(scores, batch["labels"])
            self.log("val/accuracy", acc, prog_bar=True, batch_size=n, sync_dist=True)
        else:
            self.log("val/mse", F.mse_loss(scores[:, 0].float(), batch["labels"].float()), batch_size=n,
                     sync_dist=True)

    def lr_scale(self, name: str) -> float:
        """The learning-rate multiplier of parameter ``name`` under ``layer_lr_decay``."""
        decay = self.hparams.layer_lr_decay
        if decay == 1 or not name.startswith("model.backbone."):
            return 1.0
        blocks = self.model.backbone.blocks
        rest = name[len("model.backbone."):]
        if rest.startswith("blocks."):
            return decay ** (len(blocks) - int(rest.split(".")[1]))
        if rest.startswith(("norm.", "norm_f.")):  # the final norm sits above the last block
            return 1.0
        return decay ** (len(blocks) + 1)  # the embedding

    def configure_optimizers(self):
        hp = self.hparams
        total = None
        if self._trainer is not None and self.trainer.max_steps <= 0:  # an epoch-based run: its length in steps
            total = int(self.trainer.estimated_stepping_batches)
        return adamw_warmup_cosine(self, hp.lr, hp.weight_decay, (0.9, 0.999), hp.warmup_steps, hp.min_lr_ratio,
                                   lr_scale=self.lr_scale, total_steps=total)


class LabelledDataset(Dataset):
    def __init__(self, data: LabelledSequences, tokenizer: SequenceTokenizer, max_len: int, truncate: str | None):
        self.data, self.tokenizer = data, tokenizer
        # checked up front: a sequence that does not fit fails the run before training, naming its file and line
        self.spans = [crop_span(len(s), max_len, truncate, w) for s, w in zip(data.sequences, data.where)]
        self.sequences = [s[a:b] for s, (a, b) in zip(data.sequences, self.spans)]

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, i: int) -> dict:
        label = self.data.labels[i]
        if self.data.task == "token_classification":
            a, b = self.spans[i]
            label = label[a:b]
        return {"ids": self.tokenizer.encode(self.sequences[i], add_special_tokens=False), "label": label}


def collate_labelled(batch: list[dict], pad_id: int, regression: bool) -> dict:
    """Left-padded ids and mask (the HyenaDNA convention), labels as long (classes) or float (regression); per-base
    labels are left-padded with -100."""
    ids, mask = left_padded([b["ids"] for b in batch], pad_id)
    if isinstance(batch[0]["label"], list):  # token classification
        labels, _ = left_padded([b["label"] for b in batch], -100, width=ids.shape[1])
    else:
        labels = torch.tensor([b["label"] for b in batch], dtype=torch.float32 if regression else torch.long)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


class LabelledDataModule(L.LightningDataModule):
    """See the module docstring. ``path``: a folder with both splits, or the training file (then ``test_path`` is the
    test file); without it, the synthetic long-range benchmark of :mod:`.benchmarks` (``synthetic``: its
    ``task``, ``length``, ``n_train``, ``n_test``, ``seed``). ``zoo.eval genomic-classification`` reads the test
    split."""

    def __init__(self, path: str | None = None, test_path: str | None = None, synthetic: dict | None = None,
                 task: str = "classification", tokenizer: str = "char",
                 max_len: int = 1024, truncate: str | None = None, val_fraction: float = 0.1, batch_size: int = 32,
                 seed: int = 0, num_workers: int = 0):
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        if task == "token_classification" and tokenizer == "kmer":
            raise ValueError("token_classification needs one token per base: tokenizer char (or protein), not kmer")
        self.save_hyperparameters()
        self.tokenizer = make_tokenizer(tokenizer)
        self.alphabet = frozenset(STANDARD) | frozenset(STANDARD.lower()) if tokenizer == "protein" else DNA_ALPHABET
        self._splits: dict[str, LabelledSequences] = {}

    @property
    def path(self) -> str:
        if self.hparams.path is None:
            return str(synthetic_benchmark(**(self.hparams.synthetic or {})))
        return self.hparams.path

    def split(self, name: str) -> LabelledSequences:
        """``train`` and ``val`` (the seeded hold-out of the training records) or ``test``."""
        hp = self.hparams
        if name not in self._splits:
            if name == "test":
                if hp.test_path is None and Path(self.path).is_file():
                    raise ValueError(f"data.path {self.path} is one file (the training set): give the test set as "
                                     "data.test_path (a folder holds both)")
                self._splits["test"] = read_labelled(hp.test_path or self.path, "test", hp.task, self.alphabet)
            else:
                train, val = validation_split(read_labelled(self.path, "train", hp.task, self.alphabet),
                                              hp.val_fraction, hp.seed)
                self._splits.update(train=train, val=val)
        return self._splits[name]

    def dataset(self, name: str) -> LabelledDataset:
        return LabelledDataset(self.split(name), self.tokenizer, self.hparams.max_len, self.hparams.truncate)

    def _collate(self, batch):
        return collate_labelled(batch, self.tokenizer.pad_token_id, self.hparams.task == "regression")

    def train_dataloader(self):
        hp = self.hparams
        rank, world = data_parallel_rank(self.trainer)
        return ResumableLoader(self.dataset("train"), hp.batch_size, shuffle=True, seed=hp.seed, trainer=self.trainer,
                               num_replicas=world, rank=rank, num_workers=hp.num_workers, collate_fn=self._collate)

    def val_dataloader(self):
        hp = self.hparams
        return DataLoader(self.dataset("val"), batch_size=hp.batch_size, num_workers=hp.num_workers,
                          collate_fn=self._collate)
