"""Lightning glue for forecasting: next-patch training of :class:`TimerXL` and the benchmark-protocol data module."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from zoo.data import ResumableLoader, data_parallel_rank
from zoo.module import ZooModule
from zoo.optim import adamw_warmup_cosine

from .data import SeriesWindows, load_benchmark
from .timer_xl import TimerXL, TimerXLConfig

SCHEDULES = ("cosine", "epoch_decay")


class ForecastModule(ZooModule):
    """Trains every token to predict the next patch of its variable (MSE in the scaled space). Validation is the
    benchmark's own question: the forecast of the patch right after the whole lookback (``val/mse``, ``val/mae``),
    so the best checkpoint by ``val/mse`` is the one the test protocol would pick.

    ``schedule``: ``cosine`` (AdamW, linear warm-up then cosine to ``min_lr_ratio`` at ``trainer.max_steps``) or
    ``epoch_decay`` (OpenLTM's "type1": Adam at ``lr``, multiplied by ``epoch_decay`` after every epoch).
    ``pretrained``: start from a checkpoint (a Timer directory such as thuml/timer-base-84m, or a .ckpt), whose
    config replaces ``model``.
    """

    def __init__(
        self,
        model: TimerXLConfig = TimerXLConfig(),
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        schedule: str = "cosine",
        warmup_steps: int = 0,
        min_lr_ratio: float = 0.0,
        epoch_decay: float = 0.1,
        pretrained: str | None = None,
    ):
        super().__init__()
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        self.init_model(TimerXL, model, pretrained=pretrained, hparams={
            "lr": lr, "weight_decay": weight_decay, "schedule": schedule, "warmup_steps": warmup_steps,
            "min_lr_ratio": min_lr_ratio, "epoch_decay": epoch_decay})

    def on_fit_start(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        p = self.model.config.patch_len
        if dm is not None and hasattr(dm, "hparams") and "patch_len" in dm.hparams:
            if dm.hparams.patch_len != p:
                raise ValueError(f"data.patch_len ({dm.hparams.patch_len}) must equal model.patch_len ({p})")

    def training_step(self, batch, batch_idx):
        p = self.model.config.patch_len
        pred = self.model(batch[:, :-p])
        loss = F.mse_loss(pred, batch[:, p:])
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        p = self.model.config.patch_len
        pred = self.model(batch[:, :-p])[:, -p:]
        target = batch[:, -p:]
        n = batch.shape[0]
        self.log("val/mse", F.mse_loss(pred, target), prog_bar=True, batch_size=n)
        self.log("val/mae", F.l1_loss(pred, target), batch_size=n)

    def configure_optimizers(self):
        hp = self.hparams
        if hp.schedule == "cosine":
            return adamw_warmup_cosine(self, hp.lr, hp.weight_decay, (0.9, 0.999), hp.warmup_steps, hp.min_lr_ratio)
        opt = torch.optim.Adam(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=hp.epoch_decay)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}


class ForecastDataModule(L.LightningDataModule):
    """Windows of ``lookback + patch_len`` rows of one CSV file under the benchmark protocol (see
    :mod:`zoo.modalities.timeseries.data`): training windows shuffled, validation windows in order, all of them.

    ``split``: ``auto`` (by file name: ETTh*, ETTm*, else 70/10/20), ``ett_hourly``, ``ett_15min`` or ``ratio``.
    ``fill``: ``none`` (missing values are an error), ``ffill`` or ``linear``. ``sort_dates``: sort rows that are out
    of time order (otherwise they are an error naming the line). ``seed``: the training shuffle's,
    per epoch (``seed + epoch``).
    """

    def __init__(
        self,
        path: str = "../shared/data/ett/ETTh1.csv",
        lookback: int = 672,
        patch_len: int = 96,
        split: str = "auto",
        batch_size: int = 32,
        val_batch_size: int = 256,
        num_workers: int = 0,
        date_column: str | None = "date",
        fill: str = "none",
        sort_dates: bool = False,
        seed: int = 0,
    ):
        super().__init__()
        if lookback <= 0 or lookback % patch_len:
            raise ValueError(f"lookback ({lookback}) must be a positive multiple of patch_len ({patch_len})")
        self.save_hyperparameters()
        self.series = None

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        if self.series is None:
            if not Path(hp.path).is_file():
                raise FileNotFoundError(
                    f"no series file at {hp.path} (data.path). ETT files come from "
                    f"https://github.com/zhouhaoyi/ETDataset (ETT-small/ETTh1.csv); pass --data.path FILE"
                )
            self.series = load_benchmark(hp.path, hp.lookback, hp.split, hp.patch_len, hp.date_column, hp.fill,
                                         hp.sort_dates)

    def _windows(self, split: str) -> SeriesWindows:
        return SeriesWindows(self.series.split(split), self.hparams.lookback + self.hparams.patch_len)

    def train_dataloader(self):
        hp = self.hparams
        # shuffled per epoch from seed + epoch, so a resumed run sees the rest of the epoch it stopped in
        rank, world = data_parallel_rank(self.trainer)
        return ResumableLoader(self._windows("train"), hp.batch_size, shuffle=True, seed=hp.seed,
                               trainer=self.trainer, num_replicas=world, rank=rank, num_workers=hp.num_workers)

    def val_dataloader(self):
        hp = self.hparams
        return DataLoader(self._windows("val"), batch_size=hp.val_batch_size, num_workers=hp.num_workers)
