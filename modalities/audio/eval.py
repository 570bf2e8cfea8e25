"""``python -m zoo.eval audio-needle``: DTMF-code needle accuracy per audio length and depth, with and without Partial
YaRN, as a table, JSON and a PNG (accuracy against length, and a depth × length heatmap per position scheme)."""

from __future__ import annotations

import argparse
from pathlib import Path

from zoo.arguments import fractions, int_at_least, positive_float, positive_floats, positive_int
from zoo.registry import EVAL_TASKS

# the model, data and torch are imported where they are used: `python -m zoo.eval --help` imports only arguments
POSITIONS = ("plain", "partial_yarn")


def needle_accuracy(model, task, seconds: list[float], depths: list[float], samples_per_depth: int,
                    batch_size: int, partial_yarn: bool, seed: int = 1234, progress: bool = True) -> tuple[dict, dict]:
    """Exact-match accuracy per length (seconds), and per (length, depth), of ``task`` (a :class:`NeedleTask`)."""
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from zoo.lm import labels_exact_match

    from .lightning import MODEL_INPUTS
    from .needle import NeedleSet, collate

    acc, by_depth = {}, {}
    for sec in seconds:
        data = NeedleSet(task, sec, depths, samples_per_depth, seed=seed)
        hits: dict[float, list[float]] = {d: [] for d in depths}
        name = "Partial YaRN" if partial_yarn else "plain"
        for batch in tqdm(DataLoader(data, batch_size=batch_size, collate_fn=collate),
                          desc=f"audio needle @ {sec:g} s, {name}", disable=None if progress else True, leave=False):
            with torch.no_grad():
                logits = model(**{k: batch[k] for k in MODEL_INPUTS}, partial_yarn=partial_yarn).logits
            for d, ok in zip(batch["depth"].tolist(), labels_exact_match(logits, batch["labels"]).tolist()):
                hits[min(depths, key=lambda x: abs(x - d))].append(ok)
        key = f"{sec:g}"
        by_depth[key] = {f"{d:g}": sum(v) / len(v) for d, v in hits.items()}
        acc[key] = sum(sum(v) for v in hits.values()) / len(data)
    return acc, by_depth


def _training_data(ckpt: Path) -> dict:
    """The data module's hyper-parameters stored in a zoo.fit checkpoint (code length, seconds), else {}."""
    from zoo.loading import checkpoint_hparams

    return checkpoint_hparams(ckpt).get("datamodule_hyper_parameters", {})


class AudioNeedleTask:
    help = "audio needle (DTMF code in noise) accuracy per length and depth, with and without Partial YaRN"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--ckpt", required=True, help="zoo .ckpt from zoo.fit, or a Qwen2-Audio-layout directory")
        p.add_argument("--seconds", type=positive_floats, default=[30, 60, 120, 240])
        p.add_argument("--depths", type=fractions, default=[0.0, 0.25, 0.5, 0.75, 1.0])
        p.add_argument("--samples-per-depth", type=positive_int, default=10)
        p.add_argument("--batch-size", type=positive_int, default=4)
        p.add_argument("--positions", default="plain,partial_yarn",
                       help="comma-separated position schemes to compare: plain, partial_yarn")
        p.add_argument("--start-dim", type=int_at_least(0), default=None,
                       help="Partial YaRN's first remapped frequency pair (default: the checkpoint's, else half)")
        p.add_argument("--temperature", type=positive_float, default=None, help="Partial YaRN attention temperature")
        p.add_argument("--code-length", type=positive_int, default=None,
                       help="digits per code (default: the training data's, read from a zoo.fit checkpoint; else 1)")
        p.add_argument("--trained-seconds", type=positive_float, default=None,
                       help="marked on the plot (default: the training data's, else 30)")
        p.add_argument("--seed", type=int_at_least(0), default=1234)
        p.add_argument("--out-dir", type=Path, default=None, help="where the PNG and JSON go (default: next to ckpt)")

    def run(self, args) -> dict:
        from zoo.loading import load_pretrained

        from .qwen2_audio import Qwen2Audio

        schemes = [s.strip() for s in args.positions.split(",") if s.strip()]
        for s in schemes:
            if s not in POSITIONS:
                raise SystemExit(f"--positions: {s!r} is not one of {', '.join(POSITIONS)}")
        ckpt = Path(args.ckpt)
        model = load_pretrained(ckpt)
        if not isinstance(model, Qwen2Audio):
            raise SystemExit(f"{ckpt} holds a {type(model).__name__}, not a Qwen2-Audio-shaped model")
        from .needle import NeedleTask
        from .partial_yarn import PartialYarnConfig

        yarn = model.partial_yarn or PartialYarnConfig()
        if args.start_dim is not None:
            yarn.start_dim = args.start_dim
        if args.temperature is not None:
            yarn.temperature = args.temperature
        model.partial_yarn = yarn
        trained = _training_data(ckpt)
        code_length = args.code_length or trained.get("code_length") or 1
        trained_seconds = args.trained_seconds or trained.get("seconds") or 30
        task = NeedleTask(code_length=code_length, audio_token_id=model.config.audio_token_id,
                          n_mels=model.audio_tower.config.n_mels, window_seconds=model.audio_tower.window_seconds)
        runs = {}
        for scheme in schemes:
            acc, by_depth = needle_accuracy(model, task, args.seconds, args.depths, args.samples_per_depth,
                                            args.batch_size, scheme == "partial_yarn", args.seed)
            runs[scheme] = {"accuracy": acc, "accuracy_by_depth": by_depth, "trained_length": trained_seconds}
        n_freq = model.lm.config.head_dim // 2
        start = yarn.start_dim if yarn.start_dim is not None else n_freq // 2
        first = next(iter(runs.values()))
        result = {"task": "audio-needle", "checkpoint": str(ckpt), "samples_per_depth": args.samples_per_depth,
                  "code_length": code_length, "trained_seconds": trained_seconds,
                  "partial_yarn": {"start_dim": start, "n_freq": n_freq, "temperature": yarn.temperature,
                                   "window": yarn.window},
                  "accuracy": first["accuracy"], "accuracy_by_depth": first["accuracy_by_depth"],
                  "by_positions": {k: {"accuracy": v["accuracy"], "accuracy_by_depth": v["accuracy_by_depth"]}
                                   for k, v in runs.items()}}
        print(f"audio needle exact match ({args.samples_per_depth} × {len(args.depths)} depths per length; "
              f"Partial YaRN pairs {start}..{n_freq - 1} of {n_freq}, T={yarn.temperature:g})")
        print(f"{'seconds':<14}" + "".join(f"{s:>8g}" for s in args.seconds))
        for name, run in runs.items():
            print(f"{name:<14}" + "".join(f"{run['accuracy'][f'{s:g}']:>8.2f}" for s in args.seconds))
        out_dir = args.out_dir or (ckpt.parent if ckpt.is_file() else ckpt)
        out_dir.mkdir(parents=True, exist_ok=True)
        from zoo.eval import write_json

        write_json(result, out_dir / "audio_needle.json")
        from zoo.plots import plot_accuracy_by_length

        plot_accuracy_by_length(runs, out_dir / "audio_needle.png", f"audio needle — {ckpt.name} (trained on "
                     f"{trained_seconds:g} s)", xlabel="audio length (s)", ylabel="exact-match accuracy",
                     depth_label="needle depth")
        print(f"wrote {out_dir / 'audio_needle.json'} and {out_dir / 'audio_needle.png'}")
        return result


EVAL_TASKS.register("audio-needle")(AudioNeedleTask())
