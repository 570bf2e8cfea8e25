"""``python -m zoo.eval passkey``: exact-match passkey accuracy per context length and depth, with plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from zoo.arguments import fractions, int_at_least, positive_float, positive_int, positive_ints
from zoo.plots import plot_accuracy_by_length
from zoo.registry import EVAL_TASKS, PASSKEY_VARIANTS

# torch and the data are imported where they are used: `python -m zoo.eval --help` imports only this file's arguments


OTHER_TASKS = {"video": "vniah", "audio": "audio-needle", "series": "forecast"}


def require_token_model(model, ckpt: Path, task: str) -> None:
    """Stop with one line when ``model`` is not a token-sequence LM (its class declares ``modality``), saying which
    eval fits the checkpoint instead."""
    modality = getattr(model, "modality", None)
    if modality == "tokens":
        return
    hint = f"; try `python -m zoo.eval {OTHER_TASKS[modality]} --ckpt {ckpt}`" if modality in OTHER_TASKS else ""
    raise SystemExit(f"--ckpt {ckpt}: holds a {type(model).__name__} ({modality or 'unknown'} model); the {task} "
                     f"task needs a language model over tokens (text or DNA){hint}")


def causal_exact_match(logits, batch):
    from zoo.metrics import answer_exact_match

    return answer_exact_match(logits, batch["input_ids"], batch["answer_mask"])


def passkey_accuracy(model, lengths, depths, samples_per_depth: int, batch_size: int, seed: int = 1234,
                     progress: bool = True, make_set=None, score=causal_exact_match) -> tuple[dict, dict]:
    """Exact-match accuracy per length, and per (length, depth). ``make_set(length, depths, n, seed)`` builds the
    samples (the byte-level text passkey by default); ``score(logits, batch)`` gives 1/0 per sample."""
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from .passkey import PasskeySet

    make_set = make_set or (lambda length, d, n, s: PasskeySet(length, d, n, seed=s))
    acc, by_depth = {}, {}
    for length in lengths:
        data = make_set(length, depths, samples_per_depth, seed)
        hits = {d: [] for d in depths}
        loader = DataLoader(data, batch_size=batch_size)
        # disable=None: tqdm draws its bar on a terminal only, so a log file gets no carriage-return noise
        for batch in tqdm(loader, desc=f"passkey @ {length}", disable=None if progress else True, leave=False):
            with torch.no_grad():
                ok = score(model(batch["input_ids"]).logits, batch)
            for d, o in zip(batch["depth"].tolist(), ok.tolist()):
                hits[min(depths, key=lambda x: abs(x - d))].append(o)
        by_depth[str(length)] = {str(d): sum(v) / len(v) for d, v in hits.items()}
        acc[str(length)] = sum(sum(v) for v in hits.values()) / len(data)
    return acc, by_depth


def passkey_data(ckpt: Path, model) -> dict:
    """Which passkey a checkpoint was trained for, from its tokenizer: byte-level text, or a variant another
    modality registered in ``PASSKEY_VARIANTS`` (DNA for character tokens); its kind, training length, and the
    sample maker and scorer for :func:`passkey_accuracy`."""
    from zoo.loading import checkpoint_hparams, checkpoint_tokenizer
    from zoo.plugins import EVAL_GROUP, discover

    hp = checkpoint_hparams(ckpt)
    data_hp = hp.get("datamodule_hyper_parameters") or {}
    tokenizer = checkpoint_tokenizer(ckpt, hp)  # a family's own layout names one too (HyenaDNA: characters)
    trained = data_hp.get("seq_len") or getattr(model.config, "max_position_embeddings", None)
    if trained is None:
        raise SystemExit(f"--ckpt {ckpt}: cannot tell the training length (no data seq_len, no "
                         "max_position_embeddings)")
    if tokenizer is None:  # the byte tokenizer, which text checkpoints do not record
        return {"kind": "text", "trained_length": trained, "make_set": None, "score": causal_exact_match}
    discover(EVAL_GROUP)  # the variants other modalities register
    if tokenizer not in PASSKEY_VARIANTS:
        raise SystemExit(f"--ckpt {ckpt}: a {tokenizer}-token model; the passkey runs on byte-level text or on "
                         f"the token sets {', '.join(PASSKEY_VARIANTS.names()) or 'none'} registered for it")
    return {"trained_length": trained, **PASSKEY_VARIANTS.get(tokenizer)(data_hp, model)}


def plot_passkey_files(files: dict[str, Path], path: Path, title: str) -> None:
    """One figure from several ``zoo.eval passkey`` JSON files (label → file): curves side by side, a heat map
    each."""
    import json

    runs = {}
    for label, f in files.items():
        r = json.loads(Path(f).read_text())
        runs[label] = {"accuracy": r["accuracy"], "accuracy_by_depth": r["accuracy_by_depth"],
                       "trained_length": r["trained_length"]}
    plot_accuracy_by_length(runs, path, title)


class PasskeyTask:
    help = "passkey retrieval accuracy vs context length and depth (optionally with RoPE scaling)"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--ckpt", required=True, help="zoo .ckpt from zoo.fit, or a Hugging Face model directory")
        p.add_argument("--lengths", type=positive_ints, default=[512, 1024, 2048, 4096])
        p.add_argument("--depths", type=fractions, default=[0.0, 0.25, 0.5, 0.75, 1.0])
        p.add_argument("--samples-per-depth", type=positive_int, default=10)
        p.add_argument("--batch-size", type=positive_int, default=4)
        p.add_argument(
            "--rope-scaling", default="none",
            help="comma-separated RoPE scalings to evaluate side by side: none, yarn, ntk, linear, dynamic",
        )
        p.add_argument("--rope-factor", type=positive_float, default=None,
                       help="fixed scaling factor for every length (default: length / trained length, at least 1)")
        p.add_argument("--backend", default=None, help="attention backend override (auto, sdpa, chunked, ref)")
        p.add_argument("--seed", type=int_at_least(0), default=1234)
        p.add_argument("--out-dir", type=Path, default=None,
                       help="where the PNG and JSON go (default: next to the checkpoint)")

    def run(self, args) -> dict:
        from zoo.loading import load_pretrained

        ckpt = Path(args.ckpt)
        base = load_pretrained(ckpt, **({"attn_backend": args.backend} if args.backend else {}))
        require_token_model(base, ckpt, "passkey")
        data = passkey_data(ckpt, base)
        trained = data["trained_length"]
        make_set, score = data["make_set"], data["score"]
        scalings = [s.strip() for s in args.rope_scaling.split(",") if s.strip()]
        if any(s != "none" for s in scalings) and getattr(base, "rotary", None) is None:
            raise SystemExit(f"--rope-scaling {args.rope_scaling}: {type(base).__name__} has no RoPE to scale")
        runs: dict[str, dict] = {}
        for name in scalings:
            acc, by_depth, factors = {}, {}, {}
            for length in args.lengths:
                # default factor: just enough to stretch the trained window over this length (1 = no scaling)
                factor = args.rope_factor or max(1.0, length / trained)
                model = base
                if name != "none" and factor != 1.0:
                    # same weights, other RoPE: rebuild from the loaded model instead of reading the checkpoint again
                    scaling = {"type": name, "factor": factor, "original_max_position_embeddings": trained}
                    model = type(base).from_config_dict(base.config.to_dict(), rope_scaling=scaling)
                    model.load_state_dict(base.state_dict())
                    model.eval()
                a, d = passkey_accuracy(model, [length], args.depths, args.samples_per_depth, args.batch_size,
                                        args.seed, make_set=make_set, score=score)
                acc.update(a)
                by_depth.update(d)
                factors[str(length)] = 1.0 if name == "none" else factor
            label = name if name == "none" or args.rope_factor is None else f"{name} ×{args.rope_factor:g}"
            runs[label] = {"accuracy": acc, "accuracy_by_depth": by_depth, "trained_length": trained,
                           "factor": factors}
        first = next(iter(runs.values()))
        result = {
            "task": "passkey",
            "data": data["kind"],
            "checkpoint": str(ckpt),
            "trained_length": trained,
            "samples_per_depth": args.samples_per_depth,
            "accuracy": first["accuracy"],
            "accuracy_by_depth": first["accuracy_by_depth"],
            "by_rope_scaling": {k: {"accuracy": v["accuracy"], "accuracy_by_depth": v["accuracy_by_depth"],
                                    "factor": v["factor"]} for k, v in runs.items()},
        }
        # table
        header = f"{'rope scaling':<14}" + "".join(f"{length:>8}" for length in args.lengths)
        print(f"{data['kind']} passkey accuracy ({args.samples_per_depth} × {len(args.depths)} depths per length; "
              f"trained at {trained})")
        print(header)
        for name, run in runs.items():
            print(f"{name:<14}" + "".join(f"{run['accuracy'][str(length)]:>8.3f}" for length in args.lengths))
        out_dir = args.out_dir or (ckpt.parent if ckpt.is_file() else ckpt)
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = "passkey_" + "_".join(k.split()[0] for k in runs)
        from zoo.eval import write_json

        write_json(result, out_dir / f"{stem}.json")
        factor_note = f"factor {args.rope_factor:g}" if args.rope_factor else f"factor = length / {trained}"
        what = "DNA passkey" if data["kind"] == "dna" else "passkey"
        scaled = f"; scaled runs: {factor_note}" if len(runs) > 1 or "none" not in runs else ""
        plot_accuracy_by_length(runs, out_dir / f"{stem}.png", f"{what} retrieval — {ckpt.name} (trained at {trained}{scaled})")
        print(f"wrote {out_dir / (stem + '.json')} and {out_dir / (stem + '.png')}")
        return result


EVAL_TASKS.register("passkey")(PasskeyTask())
