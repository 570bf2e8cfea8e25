"""Genomic entries of ``python -m zoo.eval``: the DNA passkey variant of the passkey task (character tokens).
Light on purpose: ``--help`` imports it; the samples and scorers are imported when a DNA checkpoint is evaluated."""

from __future__ import annotations

from zoo.registry import EVAL_TASKS, PASSKEY_VARIANTS


@PASSKEY_VARIANTS.register("char")
def dna_passkey(data_hparams: dict, model) -> dict:
    """Character-token checkpoints retrieve a ``key_len``-base DNA key; a masked LM is scored at its [MASK]s."""
    from .passkey import eval_hooks

    key_len = data_hparams.get("key_len", 6)
    masked = not getattr(model, "is_causal", True)
    make_set, score = eval_hooks(key_len, masked)
    return {"kind": "dna", "key_len": key_len, "masked": masked, "make_set": make_set, "score": score}


class GenomicClassificationTask:
    help = "accuracy / MCC / F1 / AUROC (or Pearson / Spearman / MSE) of a fine-tuned sequence classifier"

    def add_arguments(self, p) -> None:
        from zoo.arguments import int_at_least

        p.add_argument("--ckpt", required=True, help="a .ckpt of zoo.fit with a genomic_cls_* config")
        p.add_argument("--data", default=None, help="a benchmark folder, or the test file (default: the checkpoint's)")
        p.add_argument("--split", choices=("test", "val"), default="test")
        p.add_argument("--batch-size", type=int_at_least(1), default=64)
        p.add_argument("--plot", default=None, help="confusion-matrix PNG (default: beside --json, else none)")

    def run(self, args) -> dict:
        import inspect
        from pathlib import Path

        import torch

        from zoo.loading import checkpoint_hparams, load_pretrained

        from .downstream import SequenceClassifier
        from .finetune import LabelledDataModule

        model = load_pretrained(args.ckpt)
        if not isinstance(model, SequenceClassifier):
            raise SystemExit(f"{args.ckpt} holds a {type(model).__name__}, not a fine-tuned sequence classifier")
        hp = checkpoint_hparams(args.ckpt)
        data_hp = dict(hp.get("datamodule_hyper_parameters") or {})
        task = (hp.get("hyper_parameters") or {}).get("task", "classification")
        if args.data is not None:  # a folder holds both splits; a file is the test set itself
            folder = Path(args.data).is_dir()
            data_hp.update(path=args.data, test_path=None if folder else args.data)
        if data_hp.get("path") is None and data_hp.get("synthetic") is None:
            raise SystemExit("--data is required: the checkpoint does not record its data")
        data_hp.update(batch_size=args.batch_size, task=task)
        accepted = inspect.signature(LabelledDataModule).parameters
        data = LabelledDataModule(**{k: v for k, v in data_hp.items() if k in accepted})
        records = data.split(args.split)
        loader = torch.utils.data.DataLoader(data.dataset(args.split), batch_size=args.batch_size,
                                             collate_fn=data._collate)
        scores, labels = [], []
        with torch.no_grad():
            for batch in loader:
                out = model(batch["input_ids"], batch["attention_mask"]).float()
                if task == "token_classification":  # every real base is one prediction
                    real = batch["labels"] != -100
                    out, batch["labels"] = out[real], batch["labels"][real]
                scores.append(out)
                labels.append(batch["labels"])
        scores, labels = torch.cat(scores), torch.cat(labels).tolist()
        result = {"task": task, "split": args.split, "data": data.path, "ckpt": str(args.ckpt)}
        if task == "regression":
            from zoo.metrics import regression_metrics

            result.update(regression_metrics(labels, scores[:, 0].tolist()))
            print(f"{args.split}: pearson {result['pearson']:.4f}  spearman {result['spearman']:.4f}  "
                  f"mse {result['mse']:.4f}  (n={result['n']})")
            return result
        from zoo.metrics import classification_metrics

        n_classes = scores.shape[1]
        probs = scores.softmax(-1)
        names = records.classes if records.classes is not None and len(records.classes) == n_classes else None
        result.update(classification_metrics(labels, probs.argmax(-1).tolist(), n_classes, names,
                                             probs[:, 1].tolist() if n_classes == 2 else None))
        line = "  ".join(f"{k} {result[k]:.4f}" for k in ("accuracy", "mcc", "f1", "auroc") if k in result)
        print(f"{args.split}: {line}  (n={result['n']})")
        plot = args.plot or (Path(args.json).with_suffix(".png") if getattr(args, "json", None) else None)
        if plot is not None:
            plot_confusion(result["confusion_matrix"], list(result["per_class"]), Path(plot))
            result["plot"] = str(plot)
            print(f"wrote {plot}")
        return result


def plot_confusion(matrix: list[list[int]], names: list[str], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.2 + 0.8 * len(names), 1 + 0.8 * len(names)))
    ax.imshow(matrix, cmap="Blues")
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center")
    ax.set_xticks(range(len(names)), names, rotation=30)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


EVAL_TASKS.register("genomic-classification")(GenomicClassificationTask())


class VariantEffectTask:
    help = "zero-shot variant-effect scores (log-likelihood ratio of alt vs ref) for a VCF, and their AUROC"

    def add_arguments(self, p) -> None:
        from zoo.arguments import int_at_least

        p.add_argument("--ckpt", required=True, help="a DNA LM: a zoo .ckpt, or a HyenaDNA / Caduceus directory")
        p.add_argument("--fasta", required=True, help="the reference genome (plain or bgzip FASTA)")
        p.add_argument("--vcf", required=True, help="the variants (plain or .gz VCF)")
        p.add_argument("--window", type=int_at_least(2), default=1024, help="bases around each variant")
        p.add_argument("--tokenizer", choices=("char",), default=None, help="default: the checkpoint's, else char")
        p.add_argument("--tsv", default=None, help="per-variant scores (default: beside --json)")
        p.add_argument("--no-progress", action="store_true")

    def run(self, args) -> dict:
        from pathlib import Path

        from tqdm import tqdm

        from zoo.loading import checkpoint_tokenizer, load_pretrained

        from .fasta import open_fasta
        from .lightning import make_tokenizer
        from .variants import auroc_of, read_vcf, score_variants

        model = load_pretrained(args.ckpt)
        tokenizer = make_tokenizer(args.tokenizer or checkpoint_tokenizer(args.ckpt) or "char")
        masked = not getattr(model, "is_causal", True)
        variants = read_vcf(args.vcf)
        genome = open_fasta(args.fasta)
        with tqdm(total=len(variants), desc="variants", disable=args.no_progress) as bar:
            scored, refused = score_variants(model, tokenizer, variants, genome, args.window, masked, bar)
        for r in refused:
            print(f"not scored: {r['where']} {r['variant']}: {r['reason']}")
        result = {"ckpt": str(args.ckpt), "vcf": str(args.vcf), "fasta": str(args.fasta), "window": args.window,
                  "scoring": "masked marginal" if masked else "causal log-likelihood ratio",
                  "n_scored": len(scored), "n_refused": len(refused), "refused": refused,
                  "auroc": auroc_of(scored), "n_labelled": sum(r["label"] is not None for r in scored)}
        tsv = args.tsv or (Path(args.json).with_suffix(".tsv") if getattr(args, "json", None) else None)
        if tsv is not None:
            Path(tsv).parent.mkdir(parents=True, exist_ok=True)
            lines = ["variant\tlabel\tscore"] + [f"{r['variant']}\t{'' if r['label'] is None else r['label']}\t"
                                                  f"{r['score']:.6g}" for r in scored]
            Path(tsv).write_text("\n".join(lines) + "\n")
            result["tsv"] = str(tsv)
            print(f"wrote {tsv}")
        auroc = "n/a (needs labelled variants of both classes)" if result["auroc"] is None else f"{result['auroc']:.4f}"
        print(f"{len(scored)} variants scored ({result['scoring']}), {len(refused)} refused; AUROC {auroc}")
        return result


EVAL_TASKS.register("variant-effect")(VariantEffectTask())
