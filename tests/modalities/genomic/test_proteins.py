"""Protein data for LC-PLM: the synthetic Markov-chain set is reproducible and learnable, whole records are held out
by name (disjoint, stable), non-amino-acid characters fail naming file and record, asparagine (N) is a target (only
DNA's N is not), and configs/lcplm.yaml trains a BiMamba-S masked LM well below a uniform guess."""

import math
from pathlib import Path

import pytest
import torch

import zoo
from zoo.modalities.genomic import Caduceus, ProteinRecords, ProteinTokenizer, write_synthetic_proteins
from zoo.modalities.genomic.fasta import FastaFormatError
from zoo.modalities.genomic.lightning import mask_for_mlm

ROOT = Path(__file__).resolve().parents[3]


def test_synthetic_set_is_reproducible_and_split_by_record(tmp_path):
    a = write_synthetic_proteins(tmp_path / "a.fa", n_sequences=200, seed=3)
    b = write_synthetic_proteins(tmp_path / "b.fa", n_sequences=200, seed=3)
    assert a.read_text() == b.read_text()
    train, val = ProteinRecords(a, 128, "train"), ProteinRecords(a, 128, "val")
    names_t, names_v = {n for _, n in train.records}, {n for _, n in val.records}
    assert not names_t & names_v and len(names_t | names_v) == 200
    assert 0.03 < len(val) / 200 < 0.2
    item = val[0]
    assert 1 <= len(item["input_ids"]) <= 128 and torch.equal(val[0]["input_ids"], item["input_ids"])
    tok = ProteinTokenizer()
    assert set(tok.decode(item["input_ids"])) <= set("ACDEFGHIKLMNPQRSTVWY")


def test_bad_residue_names_file_and_record(tmp_path):
    path = tmp_path / "bad.fa"
    path.write_text(">ok\nMKTAYIAK\n>broken\nMKT1AYIAK\n")
    data = ProteinRecords(path, 64, "train", val_fraction=0.0)
    with pytest.raises(FastaFormatError, match=r"bad\.fa: record 'broken' has characters \['1'\]"):
        [data[i] for i in range(len(data))]


def test_asparagine_is_a_masking_target():
    tok = ProteinTokenizer()
    ids = torch.tensor([tok.encode("N" * 4000, add_special_tokens=False)])
    _, labels = mask_for_mlm(ids, tok, 0.15, torch.Generator().manual_seed(0), [tok.vocab["A"]])
    assert 0.12 < (labels != -100).float().mean().item() < 0.18


def test_fit_lcplm_config_learns_masked_residues(tmp_path, monkeypatch):
    from zoo.fit import main as fit_main

    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    cli = fit_main(["--config", str(ROOT / "configs" / "lcplm.yaml"), "--trainer.default_root_dir", str(tmp_path),
                    "--trainer.max_steps", "60", "--trainer.val_check_interval", "60",
                    "--data.init_args.max_len", "128", "--data.init_args.n_synthetic", "400",
                    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"])
    bits = cli.trainer.callback_metrics["val/bits_per_residue"].item()
    assert math.isfinite(bits) and bits < 3.5, f"held-out bits per masked residue {bits:.3f} (uniform: 4.32)"
    model = zoo.load_pretrained(tmp_path / "checkpoints" / "last.ckpt")
    assert isinstance(model, Caduceus) and not model.config.rcps
