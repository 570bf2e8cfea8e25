"""Lightning callbacks shared by every modality."""

from __future__ import annotations

import csv
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only

from .checkpoints import torch_load, write_atomically


def plot_metrics_csv(csv_path: Path, png_path: Path) -> list[str]:
    """One panel per logged metric (train/*, val/*) against the step; returns the metric names plotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    with open(csv_path) as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if key in ("epoch", "step") or key.startswith("lr-") or value in ("", None):
                    continue
                series[key].append((int(row["step"]), float(value)))
    names = sorted(series)
    if not names:
        return []
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        steps, values = zip(*series[name])
        ax.plot(steps, values, marker="o" if len(steps) < 30 else None, ms=3)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if "loss" in name and min(values) > 0:
            ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return names


class PlotMetrics(L.Callback):
    """At the end of fit, draw the CSV logger's metrics to ``<log_dir>/metrics.png``."""

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        logger = trainer.logger
        if not isinstance(logger, CSVLogger):
            return
        logger.save()
        csv_path = Path(logger.log_dir) / "metrics.csv"
        if csv_path.exists():
            plot_metrics_csv(csv_path, csv_path.with_name("metrics.png"))


class RNGState(L.Callback):
    """The random generators travel with every checkpoint, so a resumed run draws what an uninterrupted one would:
    torch's global generator (dropout) and CUDA's, numpy's and Python's global state, and the generators a
    LightningModule names in its ``rng_attributes`` (masks or lengths drawn in ``training_step``).

    They are restored just before the first training batch after a resume, not at load time: between loading and
    that batch Lightning builds loaders and may run a sanity check, which an uninterrupted run never did at that
    point. ``zoo.fit`` adds this callback to every run."""

    KEY = "zoo_rng_state"

    def __init__(self) -> None:
        self._pending: dict | None = None

    @staticmethod
    def _module_generators(pl_module: L.LightningModule) -> dict:
        return {name: getattr(pl_module, name) for name in getattr(pl_module, "rng_attributes", ())}

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        np_state = np.random.get_state()
        state = {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized()
            else [],
            # plain types only: checkpoints are read back with weights_only=True
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype("int64")), *np_state[2:]],
            "python": random.getstate(),
            "module": {name: _generator_state(g) for name, g in self._module_generators(pl_module).items()},
        }
        checkpoint[self.KEY] = state

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self._pending = checkpoint.get(self.KEY)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        kind, keys, *rest = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype("uint32"), *rest))
        random.setstate(state["python"])
        generators = self._module_generators(pl_module)
        for name, saved in state["module"].items():
            if name in generators:
                _set_generator_state(generators[name], saved)


def _generator_state(generator):
    if isinstance(generator, torch.Generator):
        return {"torch": generator.get_state()}
    if isinstance(generator, random.Random):
        return {"python": generator.getstate()}
    if isinstance(generator, np.random.Generator):
        return {"numpy": generator.bit_generator.state}
    raise TypeError(f"rng_attributes: cannot save a {type(generator).__name__}")


def _set_generator_state(generator, saved: dict) -> None:
    if "torch" in saved:
        generator.set_state(saved["torch"])
    elif "python" in saved:
        generator.setstate(saved["python"])
    else:
        generator.bit_generator.state = saved["numpy"]


class StepProgressBar(RichProgressBar):
    """Lightning's rich progress bar, made to read right for step-limited runs: an endless stream shows
    ``step 250/2000`` (optimizer steps of ``max_steps``) instead of ``Epoch 0/-2``, and finite epochs in a
    step-limited run show ``Epoch 3`` without the meaningless ``/-2``."""

    def _endless(self) -> bool:
        return self.trainer.num_training_batches == float("inf") and self.trainer.max_steps > 0

    @property
    def total_train_batches(self):
        return self.trainer.max_steps if self._endless() else super().total_train_batches

    def _get_train_description(self, current_epoch: int) -> str:
        if self.trainer.max_epochs not in (None, -1):
            return super()._get_train_description(current_epoch)
        text = "step" if self._endless() else f"Epoch {current_epoch}"
        return f"{text:{len(self.validation_description)}}"

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if not self._endless():
            return super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if not self.is_disabled and self.train_progress_bar_id is None:
            self._initialize_train_progress_bar_id()
        self._update(self.train_progress_bar_id, trainer.global_step)
        self._update_metrics(trainer, pl_module)
        self.refresh()


class LogProgress(L.Callback):
    """Progress as plain lines, for output that goes to a file (CI, nohup, a cluster job), where a progress bar
    prints nothing useful: a training line every ``every_n_steps`` optimizer steps (step of max_steps, the logged
    training metrics, seconds per step, time left) and a line after each validation with its metrics."""

    def __init__(self, every_n_steps: int = 50, stream=None) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be ≥ 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self.stream = stream
        self._start: tuple[float, int] | None = None
        self._last_step = -1

    def _print(self, text: str) -> None:
        print(text, file=self.stream or sys.stderr, flush=True)

    @staticmethod
    def _metrics(trainer, prefix: str) -> str:
        parts = []
        for name, value in sorted(trainer.callback_metrics.items()):
            if name.startswith(prefix):
                parts.append(f"{name} {float(value):.4g}")
        return "  ".join(parts)

    def _of(self, trainer) -> str:
        return f"step {trainer.global_step}/{trainer.max_steps}" if trainer.max_steps > 0 else \
            f"step {trainer.global_step} (epoch {trainer.current_epoch})"

    @rank_zero_only
    def on_train_start(self, trainer, pl_module) -> None:
        self._start = (time.monotonic(), trainer.global_step)
        self._print(f"training from {self._of(trainer)}")

    @rank_zero_only
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if step == self._last_step or step % self.every_n_steps or self._start is None:
            return
        self._last_step = step
        t0, step0 = self._start
        per_step = (time.monotonic() - t0) / max(1, step - step0)
        line = f"{self._of(trainer)}  {self._metrics(trainer, 'train/')}  {per_step:.2f} s/step"
        if trainer.max_steps > 0:
            line += f"  eta {_duration(per_step * (trainer.max_steps - step))}"
        self._print(line)

    @rank_zero_only
    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._print(f"validation at {self._of(trainer)}: {self._metrics(trainer, 'val/') or 'no metrics'}")

    @rank_zero_only
    def on_train_end(self, trainer, pl_module) -> None:
        self._print(f"training ended at {self._of(trainer)}")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints are written to a hidden temporary file beside their target, flushed to disk and renamed over it,
    so a kill during a save leaves the previous checkpoint intact and nothing in ``$TMPDIR`` (fsspec's local
    transactions, which Lightning's default writer uses, stage the file there and then copy it, which is neither).
    They are read back with ``weights_only=True`` only; a damaged or unsafe file raises
    :class:`zoo.checkpoints.CheckpointError` naming it. Remote paths (``s3://``, …) keep Lightning's writer."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:  # straight to the file: no second copy of the checkpoint in memory
                torch.save(checkpoint, f)

        write_atomically(Path(path), write)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        if "://" in str(path):
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        return torch_load(path, map_location=map_location or "cpu")
