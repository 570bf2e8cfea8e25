"""Fine-tuning heads end to end: the shared metrics against direct formulas, a backbone from a checkpoint fine-tuned
on a GenomicBenchmarks-layout task to a target, the eval command's JSON and plot, frozen and layer-wise options,
and every DNA family as a backbone."""

from __future__ import annotations

import importlib.util
import json
import math
from itertools import product
from pathlib import Path

import numpy as np
import pytest
import torch

from zoo.lm import CausalLM, LMConfig
from zoo.metrics import binary_auroc, classification_metrics, matthews_corrcoef, regression_metrics
from zoo.modalities.genomic.benchmarks import TASKS, make_example, write_benchmark
from zoo.modalities.genomic.caduceus import Caduceus, CaduceusConfig
from zoo.modalities.genomic.finetune import LabelledDataModule, SequenceTaskModule
from zoo.modalities.genomic.tokenizers import CharTokenizer

VOCAB = CharTokenizer().vocab_size
ROOT = Path(__file__).resolve().parents[3]


def test_mcc_auroc_and_correlations_equal_their_textbook_forms():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    pred = np.where(rng.random(200) < 0.8, y, 1 - y)
    tp, tn = ((pred == 1) & (y == 1)).sum(), ((pred == 0) & (y == 0)).sum()
    fp, fn = ((pred == 1) & (y == 0)).sum(), ((pred == 0) & (y == 1)).sum()
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    m = classification_metrics(y, pred, 2, positive_scores=rng.random(200))
    assert m["mcc"] == pytest.approx(mcc, abs=1e-12)
    assert m["per_class"]["1"]["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert m["accuracy"] == pytest.approx((tp + tn) / 200)
    scores = np.round(rng.random(200), 1)  # ties included
    pairs = [(1.0 if a > b else 0.5 if a == b else 0.0) for a, b in product(scores[y == 1], scores[y == 0])]
    assert binary_auroc(y, scores) == pytest.approx(np.mean(pairs), abs=1e-12)
    assert matthews_corrcoef([[5, 0], [0, 0]]) == 0.0  # undefined: one class only
    t, p = rng.random(50), rng.random(50)
    r = regression_metrics(t, p)
    assert r["pearson"] == pytest.approx(np.corrcoef(t, p)[0, 1], abs=1e-12)
    ranks = lambda a: np.argsort(np.argsort(a))  # noqa: E731  (no ties in random floats)
    assert r["spearman"] == pytest.approx(np.corrcoef(ranks(t), ranks(p))[0, 1], abs=1e-12)


def test_the_synthetic_benchmark_decides_by_two_distant_motifs():
    rng = np.random.default_rng(0)
    for label in (0, 1):
        seq = make_example(rng, "motif_order", 256, label)
        a, b = seq.find("GATTACAG"), seq.find("CCTAGGTC")
        assert (a < 128 <= b) if label == 0 else (b < 128 <= a)
    assert set(TASKS) == {"motif_order", "middle_motif"}


def gc_task(root, n_train=240, n_test=80, length=48):
    """GC-rich against AT-rich sequences in the GenomicBenchmarks layout: learnable in a few dozen steps."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for i in range(n):
            rich = i % 2
            p = [0.1, 0.4, 0.4, 0.1] if rich else [0.4, 0.1, 0.1, 0.4]
            folder = root / split / ("gc_rich" if rich else "at_rich")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i}.txt").write_text("".join(rng.choice(list("ACGT"), size=length, p=p)))
    return root


def tiny_lm_dir(tmp_path):
    torch.manual_seed(0)
    CausalLM(LMConfig(vocab_size=VOCAB, d_model=32, n_layer=2, n_head=2, qkv_bias=True)).save_pretrained(tmp_path / "lm")
    return str(tmp_path / "lm")


def test_the_config_fine_tunes_a_checkpoint_to_the_target_and_the_eval_command_reports_it(tmp_path):
    from zoo.eval import main as eval_main
    from zoo.fit import main as fit_main

    run = tmp_path / "run"
    cli = fit_main(["--config", str(ROOT / "configs" / "genomic_cls_attention.yaml"),
                    "--model.init_args.pretrained", tiny_lm_dir(tmp_path), "--model.init_args.lr", "3e-3",
                    "--model.init_args.warmup_steps", "5", "--data.init_args.path", str(gc_task(tmp_path / "gc")),
                    "--data.init_args.synthetic", "null", "--data.init_args.max_len", "64",
                    "--data.init_args.batch_size", "16", "--trainer.max_epochs", "4",
                    "--trainer.default_root_dir", str(run), "--trainer.enable_progress_bar", "false",
                    "--trainer.enable_model_summary", "false"])
    assert cli.trainer.callback_metrics["val/accuracy"] >= 0.9
    out = tmp_path / "eval" / "gc.json"
    result = eval_main(["genomic-classification", "--ckpt", str(run / "checkpoints" / "last.ckpt"), "--json", str(out)])
    assert result["accuracy"] >= 0.9 and result["auroc"] >= 0.95 and result["n"] == 80
    assert set(result["per_class"]) == {"at_rich", "gc_rich"}
    assert json.loads(out.read_text()) == result and (tmp_path / "eval" / "gc.png").stat().st_size > 0


def writer(test_file: str):
    """The original-layout writers of the loaders' own tests (test_hyenadna.py, test_caduceus_loading.py)."""
    spec = importlib.util.spec_from_file_location(test_file[:-3] + "_layout", Path(__file__).with_name(test_file))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hyenadna_fine_tunes_from_its_original_layout(tmp_path):
    """weights.ckpt + config.json as LongSafari publishes them."""
    layout = writer("test_hyenadna.py")
    (tmp_path / "config.json").write_text(json.dumps(layout.CONFIG))
    torch.save({"state_dict": layout._original_state()}, tmp_path / "weights.ckpt")
    module = SequenceTaskModule(pretrained=str(tmp_path), pooling="last")
    assert [type(b.mixer).__name__ for b in module.model.backbone.blocks] == ["Hyena", "Hyena"]
    ids, mask = torch.randint(7, 11, (2, 20)), torch.ones(2, 20, dtype=torch.long)
    with torch.no_grad():  # the head reads the backbone's last hidden state, HyenaDNA's causal pooling
        hidden = module.model.backbone(ids, output_hidden_states=True).hidden_states[:, -1]
        torch.testing.assert_close(module.model(ids, mask), module.model.score(hidden), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("rcps", [True, False], ids=["ps", "ph"])
def test_caduceus_fine_tunes_from_its_original_layout(tmp_path, rcps):
    """CaduceusForMaskedLM's config.json + model.safetensors, as kuleshov-group publishes them."""
    writer("test_caduceus_loading.py").write_checkpoint(tmp_path / "caduceus", rcps=rcps, fused=True)
    module = SequenceTaskModule(pretrained=str(tmp_path / "caduceus"), conjoin=None if rcps else "eval")
    assert isinstance(module.model.backbone, Caduceus) and module.model.rcps == rcps
    ids = torch.randint(7, 11, (3, 16))
    module.eval()
    with torch.no_grad():  # PS by construction, Ph by post-hoc conjoining: the same score for either strand
        rc = torch.tensor(module.model.backbone.config.permutation())[ids].flip(1)
        torch.testing.assert_close(module.model(rc), module.model(ids), atol=1e-5, rtol=1e-5)


def test_frozen_backbone_trains_the_head_only_and_layer_decay_scales_each_block(tmp_path):
    lm = tiny_lm_dir(tmp_path)
    frozen = SequenceTaskModule(pretrained=lm, freeze_backbone=True)
    opt = frozen.configure_optimizers()["optimizer"]
    trained = {id(p) for g in opt.param_groups for p in g["params"]}
    assert trained == {id(frozen.model.score.weight)}
    decayed = SequenceTaskModule(pretrained=lm, layer_lr_decay=0.5, lr=1.0)
    assert decayed.lr_scale("model.backbone.blocks.1.mixer.q_proj.weight") == 0.5
    assert decayed.lr_scale("model.backbone.blocks.0.mixer.q_proj.weight") == 0.25
    assert decayed.lr_scale("model.backbone.embed.weight") == 0.125
    assert decayed.lr_scale("model.score.weight") == 1.0
    lrs = sorted({g["initial_lr"] for g in decayed.configure_optimizers()["optimizer"].param_groups})
    assert lrs == [0.125, 0.25, 0.5, 1.0]


@pytest.mark.parametrize("family", ["attention", "hyena", "mamba", "caduceus_ps", "caduceus_ph"])
def test_every_dna_family_fine_tunes_from_a_zoo_checkpoint(tmp_path, family):
    torch.manual_seed(0)
    if family.startswith("caduceus"):
        backbone = Caduceus(CaduceusConfig(d_model=16, n_layer=2, rcps=family == "caduceus_ps",
                                           mixer_kwargs={"tie": "projections", "d_state": 4}))
    else:
        extra = {"hyena": dict(layout="hyena", mixer_kwargs={"hyena": {"emb_dim": 5, "filter_order": 16}},
                               max_position_embeddings=64),
                 "mamba": dict(layout="mamba", mlp="none", mixer_kwargs={"mamba": {"d_state": 4}})}.get(family, {})
        backbone = CausalLM(LMConfig(vocab_size=VOCAB if not family.startswith("cad") else 16, d_model=16,
                                     n_layer=2, n_head=2, **extra))
    ckpt = tmp_path / "backbone.ckpt"
    hparams = {"zoo_model": {"arch": backbone.arch, "config": backbone.config_dict(), "prefix": "model."}}
    torch.save({"state_dict": {f"model.{k}": v for k, v in backbone.state_dict().items()},
                "hyper_parameters": hparams}, ckpt)
    module = SequenceTaskModule(pretrained=str(ckpt), conjoin="eval" if family == "caduceus_ph" else None)
    for k, v in backbone.state_dict().items():
        torch.testing.assert_close(module.model.backbone.state_dict()[k], v, atol=0, rtol=0)
    ids = torch.randint(7, 11, (4, 32))  # A C G T in both vocabularies
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor([0, 1, 0, 1])}
    loss = module.loss(module.model(batch["input_ids"], batch["attention_mask"]), batch["labels"])
    loss.backward()
    assert torch.isfinite(loss) and module.model.score.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.model.backbone.parameters())


def test_a_classifier_checkpoint_reloads_whole_and_refuses_another_head_size(tmp_path):
    from zoo.loading import load_pretrained

    module = SequenceTaskModule(pretrained=tiny_lm_dir(tmp_path), n_outputs=3, pooling="last")
    ckpt = tmp_path / "cls.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, ckpt)
    again = load_pretrained(ckpt)
    assert again.pooling == "last" and again.score.out_features == 3
    torch.testing.assert_close(again.score.weight, module.model.score.weight, atol=0, rtol=0)
    with pytest.raises(ValueError, match=r"has a head of 3 outputs, not n_outputs=2"):
        SequenceTaskModule(pretrained=str(ckpt), n_outputs=2)


def test_write_benchmark_is_reproducible(tmp_path):
    a = write_benchmark(tmp_path / "a", "middle_motif", 64, 10, 4, seed=1)
    b = write_benchmark(tmp_path / "b", "middle_motif", 64, 10, 4, seed=1)
    files = sorted(p.relative_to(a) for p in a.rglob("*.txt"))
    assert len(files) == 14 and all((a / f).read_text() == (b / f).read_text() for f in files)


def test_from_scratch_backbone_and_the_choice_between_the_two():
    module = SequenceTaskModule(backbone={"arch": "causal_lm", "config": LMConfig(vocab_size=VOCAB, d_model=16,
                                                                                  n_layer=1, n_head=1).to_dict()})
    assert module.hparams.zoo_model["config"]["backbone"]["d_model"] == 16
    with pytest.raises(ValueError, match="give exactly one of pretrained .* and backbone"):
        SequenceTaskModule()
    with pytest.raises(ValueError, match=r"backbone needs exactly the keys arch and config, got \['config'\]"):
        SequenceTaskModule(backbone={"config": {}})


def test_token_level_labels_train_a_per_base_head_and_are_scored_per_base(tmp_path):
    """Per-base labels (here: 1 on G or C) in a TSV; cropping cuts sequence and labels alike; padding is -100."""
    from zoo.eval import main as eval_main
    from zoo.fit import main as fit_main
    from zoo.modalities.genomic.finetune import LabelledDataset, collate_labelled
    from zoo.modalities.genomic.labelled import LabelledDataError, read_labelled

    rng = np.random.default_rng(0)
    rows = []
    for _ in range(200):
        seq = "".join(rng.choice(list("ACGT"), int(rng.integers(20, 40))))
        rows.append(f"{seq}\t{''.join('1' if b in 'GC' else '0' for b in seq)}")
    (tmp_path / "train.tsv").write_text("\n".join(rows[:160]) + "\n")
    (tmp_path / "test.tsv").write_text("\n".join(rows[160:]) + "\n")
    data = read_labelled(tmp_path / "train.tsv", task="token_classification")
    assert data.labels[0] == [1 if b in "GC" else 0 for b in data.sequences[0]] and data.n_classes == 2
    cropped = LabelledDataset(data, CharTokenizer(), 10, "center")
    a, b = cropped.spans[0]
    assert cropped[0]["label"] == data.labels[0][a:b] and len(cropped[0]["ids"]) == 10
    batch = collate_labelled([cropped[0], {"ids": [7, 8], "label": [0, 1]}], CharTokenizer().pad_token_id, False)
    assert batch["labels"][1].tolist() == [-100] * 8 + [0, 1]
    (tmp_path / "bad.tsv").write_text("ACGT\t010\n")
    with pytest.raises(LabelledDataError, match=r"bad\.tsv:1: 3 per-base labels for a sequence of 4 bases"):
        read_labelled(tmp_path / "bad.tsv", task="token_classification")

    run = tmp_path / "run"
    cli = fit_main(["--config", str(ROOT / "configs" / "genomic_cls_attention.yaml"),
                    "--model.init_args.pretrained", tiny_lm_dir(tmp_path), "--model.init_args.lr", "3e-3",
                    "--model.init_args.task", "token_classification", "--model.init_args.pooling", "none",
                    "--model.init_args.warmup_steps", "5", "--data.init_args.path", str(tmp_path / "train.tsv"),
                    "--data.init_args.test_path", str(tmp_path / "test.tsv"), "--data.init_args.synthetic", "null",
                    "--data.init_args.task", "token_classification", "--data.init_args.batch_size", "16",
                    "--trainer.max_epochs", "6", "--trainer.default_root_dir", str(run),
                    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"])
    assert cli.trainer.callback_metrics["val/accuracy"] >= 0.95
    result = eval_main(["genomic-classification", "--ckpt", str(run / "checkpoints" / "last.ckpt")])
    bases = sum(len(r.split("\t")[0]) for r in rows[160:])
    assert result["n"] == bases and result["accuracy"] >= 0.95
    with pytest.raises(ValueError, match="token_classification scores every position"):
        SequenceTaskModule(pretrained=tiny_lm_dir(tmp_path / "x"), task="token_classification")


def test_rc_augmentation_flips_rows_from_a_seeded_generator(tmp_path):
    from zoo.modalities.genomic.downstream import reverse_complement_batch

    module = SequenceTaskModule(pretrained=tiny_lm_dir(tmp_path), rc_augment=True, seed=1)
    tok = CharTokenizer()
    enc = tok(["ACGTTG", "GGA", "TTTACG", "CA"], add_special_tokens=False, padding=True)
    ids, mask = torch.tensor(enc["input_ids"]), torch.tensor(enc["attention_mask"])
    state = module._gen.get_state()
    out_ids, out_mask = module.augment(ids, mask)
    flip = torch.rand(4, generator=torch.Generator().set_state(state)) < 0.5
    rc, rc_mask = reverse_complement_batch(ids, mask.bool(), module.complement)
    for row in range(4):
        want = (rc[row], rc_mask[row].long()) if flip[row] else (ids[row], mask[row])
        assert torch.equal(out_ids[row], want[0]) and torch.equal(out_mask[row], want[1])
    assert 0 < int(flip.sum()) < 4  # seed 1 flips some rows and keeps others
    with pytest.raises(ValueError, match="rc_augment needs a DNA tokenizer"):
        SequenceTaskModule(pretrained=tiny_lm_dir(tmp_path / "p"), rc_augment=True, tokenizer="protein")
