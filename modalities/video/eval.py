"""``python -m zoo.eval vniah``: needle-in-a-video-haystack accuracy per (frame count, depth), with a heatmap."""

from __future__ import annotations

import argparse
from pathlib import Path

from zoo.arguments import float_in, fractions, int_at_least, positive_int, positive_ints
from zoo.registry import EVAL_TASKS

# the model, data and torch are imported where they are used: `python -m zoo.eval --help` imports only arguments


def vniah_accuracy(model, haystack, frames: list[int], depths: list[float], samples_per_depth: int,
                   batch_size: int, v2pe_delta: float | None = None, seed: int = 1234,
                   progress: bool = True) -> tuple[dict, dict]:
    """Exact-match accuracy per frame count, and per (frame count, depth) on ``haystack`` (a :class:`Haystack`)."""
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from .lightning import expanded_labels
    from .vniah import VNIAHSet, collate, labels_exact_match

    acc, by_depth = {}, {}
    for n_frames in frames:
        data = VNIAHSet(haystack, n_frames, depths, samples_per_depth, seed=seed)
        hits: dict[float, list[float]] = {d: [] for d in depths}
        for batch in tqdm(DataLoader(data, batch_size=batch_size, collate_fn=collate), desc=f"V-NIAH @ {n_frames}",
                          disable=None if progress else True, leave=False):
            with torch.no_grad():
                logits = model(batch["input_ids"], batch["videos"], v2pe_delta=v2pe_delta).logits
            ok = labels_exact_match(logits, expanded_labels(model, batch))
            for d, o in zip(batch["depth"].tolist(), ok.tolist()):
                hits[min(depths, key=lambda x: abs(x - d))].append(o)
        by_depth[str(n_frames)] = {f"{d:g}": sum(v) / len(v) for d, v in hits.items()}
        acc[str(n_frames)] = sum(sum(v) for v in hits.values()) / len(data)
    return acc, by_depth


def plot_heatmap(by_depth: dict, path: Path, title: str, trained_frames: int | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = list(by_depth)
    depths = list(next(iter(by_depth.values())))
    grid = [[by_depth[f][d] for f in frames] for d in depths]
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(frames), 1.2 + 0.6 * len(depths)))
    im = ax.imshow(grid, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
    ax.set_xticks(range(len(frames)), frames)
    ax.set_yticks(range(len(depths)), depths)
    ax.set_xlabel("frames in the haystack")
    ax.set_ylabel("needle depth")
    for y, row in enumerate(grid):
        for x, v in enumerate(row):
            ax.text(x, y, f"{v:.2f}", ha="center", va="center", fontsize=8)
    if trained_frames is not None and str(trained_frames) in frames:
        ax.axvline(frames.index(str(trained_frames)) + 0.5, color="black", lw=1, ls="--")
    fig.colorbar(im, ax=ax, label="exact-match accuracy")
    ax.set_title(title, fontsize=9)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


class VNIAHTask:
    help = "needle-in-a-video-haystack accuracy per frame count and depth (synthetic haystack or your own video)"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--ckpt", required=True, help="zoo .ckpt from zoo.fit, or a LongVA-layout directory")
        p.add_argument("--frames", type=positive_ints, default=[16, 32, 64, 128])
        p.add_argument("--depths", type=fractions, default=[0.0, 0.25, 0.5, 0.75, 1.0])
        p.add_argument("--samples-per-depth", type=positive_int, default=10)
        p.add_argument("--batch-size", type=positive_int, default=8)
        p.add_argument("--v2pe-delta", type=float_in(0, 1, low_open=True), default=None,
                       help="V2PE step for visual tokens (default: the checkpoint's; 1 = plain positions)")
        p.add_argument("--trained-frames", type=positive_int, default=None,
                       help="marked on the heatmap (default: the frames per video the checkpoint trained on)")
        p.add_argument("--haystack-video", type=Path, default=None, help="your own haystack (default: synthetic)")
        p.add_argument("--needle-image", type=Path, default=None)
        p.add_argument("--needle-answer", default=None, help="the answer the needle image shows")
        p.add_argument("--seed", type=int_at_least(0), default=1234)
        p.add_argument("--out-dir", type=Path, default=None, help="where the PNG and JSON go (default: next to ckpt)")

    def run(self, args) -> dict:
        from zoo.loading import load_pretrained

        from .longva import LongVA

        ckpt = Path(args.ckpt)
        model = load_pretrained(ckpt)
        if not isinstance(model, LongVA):
            raise SystemExit(f"{ckpt} holds a {type(model).__name__}, not a LongVA video model")
        if (args.needle_image is None) != (args.needle_answer is None):
            raise SystemExit("--needle-image and --needle-answer go together")
        from zoo.loading import checkpoint_hparams

        trained_frames = args.trained_frames or \
            checkpoint_hparams(ckpt).get("datamodule_hyper_parameters", {}).get("num_frames")
        from .vniah import Haystack

        haystack = Haystack(model.image_size, args.haystack_video, args.needle_image, args.needle_answer)
        delta = args.v2pe_delta if args.v2pe_delta is not None else model.config.v2pe_delta
        acc, by_depth = vniah_accuracy(model, haystack, args.frames, args.depths, args.samples_per_depth,
                                       args.batch_size, delta, args.seed)
        positions = "plain positions" if delta is None else f"V2PE δ={delta:g}"
        result = {"task": "vniah", "checkpoint": str(ckpt), "positions": positions, "v2pe_delta": delta,
                  "samples_per_depth": args.samples_per_depth, "haystack": str(haystack.video),
                  "trained_frames": trained_frames,
                  "accuracy": acc, "accuracy_by_depth": by_depth}
        print(f"V-NIAH exact match ({args.samples_per_depth} per depth; {positions})")
        print(f"{'depth':<8}" + "".join(f"{f:>8}" for f in args.frames))
        for d in next(iter(by_depth.values())):
            print(f"{d:<8}" + "".join(f"{by_depth[str(f)][d]:>8.2f}" for f in args.frames))
        print(f"{'all':<8}" + "".join(f"{acc[str(f)]:>8.2f}" for f in args.frames))
        out_dir = args.out_dir or (ckpt.parent if ckpt.is_file() else ckpt)
        out_dir.mkdir(parents=True, exist_ok=True)
        from zoo.eval import write_json

        write_json(result, out_dir / "vniah.json")
        name = f"{ckpt.parent.parent.name}/{ckpt.name}" if ckpt.parent.name == "checkpoints" else ckpt.name
        plot_heatmap(by_depth, out_dir / "vniah.png", f"V-NIAH — {name} ({positions})", trained_frames)
        print(f"wrote {out_dir / 'vniah.json'} and {out_dir / 'vniah.png'}")
        return result


EVAL_TASKS.register("vniah")(VNIAHTask())
