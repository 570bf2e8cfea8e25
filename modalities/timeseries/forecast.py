"""Rolling forecasts over a whole test split, their metrics and plots.

One rollout to the longest horizon serves every horizon: the first H points of a window's 720-step rollout are
exactly its H-step rolling forecast (each step sees the same lookback and the same earlier predictions), so the test
split is encoded ``ceil(max_horizon / patch_len)`` times instead of once per horizon and step. Window s of the split
forecasts rows ``s + L … s + L + H − 1``; every s with H true values after it counts (stride 1), so longer horizons
average over fewer windows, as in the benchmark.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm


def rolling_forecasts(model, values: np.ndarray, lookback: int, horizon: int, n_windows: int, batch_size: int = 256,
                      progress: bool = True) -> np.ndarray:
    """Forecasts ``(n_windows, horizon, C)`` of windows 0 … n_windows − 1 of ``values`` (rows, C)."""
    series = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
    out = np.empty((n_windows, horizon, values.shape[1]), dtype=np.float32)
    model.eval()
    starts = range(0, n_windows, batch_size)
    for a in tqdm(starts, desc=f"rolling forecasts to {horizon}", disable=None if progress else True, unit="batch"):
        b = min(a + batch_size, n_windows)
        x = torch.stack([series[s:s + lookback] for s in range(a, b)])
        out[a:b] = model.forecast(x, horizon).float().numpy()
    return out


def horizon_metrics(values: np.ndarray, preds: np.ndarray, lookback: int, horizons: list[int]) -> dict:
    """``{"96": {"mse", "mae", "windows"}, …, "avg": {"mse", "mae"}}`` from one rollout ``preds``."""
    result: dict = {}
    for h in horizons:
        n = values.shape[0] - lookback - h + 1
        idx = np.arange(n)[:, None] + lookback + np.arange(h)[None, :]
        truth = values[idx]  # (n, h, C)
        err = preds[:n, :h] - truth
        result[str(h)] = {"mse": float(np.mean(err**2)), "mae": float(np.mean(np.abs(err))), "windows": int(n)}
    result["avg"] = {k: float(np.mean([result[str(h)][k] for h in horizons])) for k in ("mse", "mae")}
    return result


def plot_forecasts(values: np.ndarray, preds: np.ndarray, lookback: int, horizons: list[int], names: list[str],
                   variable: int, path: Path, title: str, metrics: dict, window: int | None = None,
                   context: int = 336) -> int:
    """One panel per horizon: the last ``context`` lookback points, the truth and the rolling forecast of one
    window (default: the middle test window that every horizon covers) for ``names[variable]``. Returns the window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_common = values.shape[0] - lookback - max(horizons) + 1
    window = n_common // 2 if window is None else window
    cols = 2 if len(horizons) > 1 else 1
    rows = -(-len(horizons) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(7 * cols, 3.2 * rows), squeeze=False)
    ctx = min(context, lookback)
    for ax, h in zip(axes.flat, horizons):
        t0 = window + lookback
        past = values[t0 - ctx:t0, variable]
        truth = values[t0:t0 + h, variable]
        ax.plot(np.arange(-ctx, 0), past, color="0.45", lw=1, label="lookback")
        ax.plot(np.arange(h), truth, color="tab:blue", lw=1.2, label="truth")
        ax.plot(np.arange(h), preds[window, :h, variable], color="tab:red", lw=1.2, label="forecast")
        ax.axvline(0, color="0.7", lw=0.8, ls="--")
        m = metrics[str(h)]
        ax.set_title(f"horizon {h}: test MSE {m['mse']:.3f}, MAE {m['mae']:.3f} (all variables)", fontsize=10)
        ax.set_xlabel("steps from forecast start")
        ax.set_ylabel(f"{names[variable]} (scaled)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(horizons):]:
        ax.axis("off")
    axes.flat[0].legend(loc="upper left", fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return window
