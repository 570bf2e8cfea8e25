"""Lightning callbacks shared by every modality."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only


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
