"""Figures shared by the eval tasks of every modality (matplotlib, Agg backend, imported only when plotting)."""

from __future__ import annotations

from pathlib import Path


def length_tick(n: float) -> str:
    """512 → '512', 32768 → '32K': long-context lengths stay readable side by side."""
    return f"{n / 1024:g}K" if n >= 2048 and n % 1024 == 0 else f"{n:g}"


def plot_accuracy_by_length(runs: dict[str, dict], path: Path, title: str, xlabel: str = "context length (tokens)",
                            ylabel: str = "passkey accuracy", depth_label: str = "key depth") -> None:
    """Accuracy against length for every run, beside one depth × length heat map per run: ``runs`` maps a label to
    ``{"accuracy": {length: acc}, "accuracy_by_depth": {length: {depth: acc}}, "trained_length"?: n}`` (the JSON
    that passkey and needle eval tasks write)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(runs)
    fig, axes = plt.subplots(1, 1 + n, figsize=(5 + 4 * n, 4), squeeze=False)
    ax = axes[0, 0]
    for name, run in runs.items():
        lengths = [float(k) for k in run["accuracy"]]
        ax.plot(lengths, list(run["accuracy"].values()), marker="o", label=name)
    if "trained_length" in next(iter(runs.values())):
        ax.axvline(next(iter(runs.values()))["trained_length"], color="gray", ls="--", lw=1, label="training length")
    ax.set_xscale("log", base=2)
    all_lengths = sorted({float(k) for run in runs.values() for k in run["accuracy"]})
    ax.set_xticks(all_lengths, [length_tick(n) for n in all_lengths])
    ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    ax.set_title("accuracy vs length")
    for i, (name, run) in enumerate(runs.items(), 1):
        ax = axes[0, i]
        lengths = list(run["accuracy_by_depth"])
        depths = list(next(iter(run["accuracy_by_depth"].values())))
        grid = [[run["accuracy_by_depth"][length][d] for length in lengths] for d in depths]
        im = ax.imshow(grid, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto", origin="upper")
        ax.set_xticks(range(len(lengths)), [length_tick(float(n)) for n in lengths])
        ax.set_yticks(range(len(depths)), depths)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(depth_label)
        ax.set_title(f"{name}: by depth", fontsize=10)
        for y, row in enumerate(grid):
            for x, v in enumerate(row):
                ax.text(x, y, f"{v:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=axes[0, 1:].tolist())
    fig.suptitle(title)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
