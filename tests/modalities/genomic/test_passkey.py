"""DNA passkey: sample layout, reproducible grids, scoring of causal and masked models (an oracle that copies the key
scores 1, one that copies the wrong base scores 0), and `python -m zoo.eval passkey` routing a DNA checkpoint to
the DNA task with its JSON and PNG."""

import json
import random

import pytest
import torch
from torch import nn

from zoo.lm import LMOutput
from zoo.modalities.genomic import CharTokenizer, DnaPasskeySet, make_dna_passkey
from zoo.modalities.genomic.passkey import masked_exact_match
from zoo.modalities.text.eval import causal_exact_match, passkey_accuracy

TOK = CharTokenizer()
SEP, MASK = TOK.vocab["[SEP]"], TOK.mask_token_id


@pytest.mark.parametrize("depth", [0.0, 0.3, 1.0])
def test_sample_layout(depth):
    s = make_dna_passkey(200, depth, random.Random(1), key_len=6)
    ids = s["input_ids"]
    assert ids.shape == (200,)
    seps = (ids == SEP).nonzero().flatten().tolist()
    assert len(seps) == 2 and seps[1] == 200 - 7
    key = ids[seps[0] + 1: seps[0] + 7]
    torch.testing.assert_close(ids[-6:], key)
    assert seps[0] == round(depth * (200 - 14))
    assert set(ids.tolist()) <= {SEP, 7, 8, 9, 10}
    assert s["answer_mask"].nonzero().flatten().tolist() == list(range(194, 200))
    assert (s["labels"] != -100).sum() == 6 and torch.equal(s["labels"][-6:], key)
    masked = make_dna_passkey(200, depth, random.Random(1), key_len=6, masked=True)
    assert (masked["input_ids"][-6:] == MASK).all() and torch.equal(masked["labels"], s["labels"])
    assert torch.equal(masked["input_ids"][:-6], ids[:-6])


def test_errors_and_reproducible_grid():
    with pytest.raises(ValueError, match=r"seq_len=10 is too short for a DNA passkey with a 6-base key \(needs ≥ 14\)"):
        make_dna_passkey(10, 0.5, random.Random(0))
    with pytest.raises(ValueError, match=r"depth must be in \[0, 1\], got 1.5"):
        make_dna_passkey(100, 1.5, random.Random(0))
    from zoo.modalities.genomic import DnaPasskeyStream

    with pytest.raises(ValueError, match=r"min_seq_len must be in \[28, seq_len=512\] for 6-base keys with 2 repeats"):
        DnaPasskeyStream(512, min_seq_len=20, repeats=2)
    a, b = DnaPasskeySet(300, n_per_depth=3, seed=5), DnaPasskeySet(300, n_per_depth=3, seed=5)
    assert len(a) == 15 and all(torch.equal(a[i]["input_ids"], b[i]["input_ids"]) for i in range(15))
    assert not torch.equal(a[0]["input_ids"], DnaPasskeySet(300, n_per_depth=3, seed=6)[0]["input_ids"])
    assert [a[i]["depth"].item() for i in (0, 3, 14)] == [0.0, 0.25, 1.0]


class CopyAfterSep(nn.Module):
    """Oracle: after the final [SEP] it predicts the base that followed the first [SEP] at the same offset (shifted
    by ``off`` to make a wrong oracle). Causal: logits at t predict token t+1; masked: logits at t predict token t."""

    def __init__(self, causal: bool, off: int = 0):
        super().__init__()
        self.is_causal, self.off = causal, off

    def forward(self, ids):
        logits = torch.zeros(*ids.shape, 16)
        for b, row in enumerate(ids):
            first, last = (row == SEP).nonzero().flatten().tolist()[:2]
            for j in range(len(row) - last - 1):
                src = row[first + 1 + (j + self.off) % (len(row) - last - 1)]
                logits[b, last + j if self.is_causal else last + 1 + j, src] = 1.0
        return LMOutput(logits=logits)


@pytest.mark.parametrize("causal", [True, False])
def test_scoring_counts_only_exact_keys(causal):
    masked = not causal

    def make_set(length, depths, n, seed):
        return DnaPasskeySet(length, depths, n, seed, masked=masked)

    def score(logits, batch):
        if masked:
            return masked_exact_match(logits, batch["labels"], batch["answer_mask"])
        return causal_exact_match(logits, batch)

    for off, want in ((0, 1.0), (1, 0.0)):
        acc, by_depth = passkey_accuracy(CopyAfterSep(causal, off), [128, 256], [0.0, 0.5, 1.0], 4, 3,
                                         make_set=make_set, score=score, progress=False)
        assert acc == {"128": want, "256": want}
        assert by_depth["256"] == {"0.0": want, "0.5": want, "1.0": want}


def test_eval_cli_routes_dna_checkpoints(tmp_path):
    from pathlib import Path

    from zoo.eval import main as eval_main
    from zoo.fit import main as fit_main

    root = Path(__file__).resolve().parents[3]
    fit_main(["--config", str(root / "configs" / "dna_passkey_attention.yaml"),
              "--trainer.default_root_dir", str(tmp_path), "--trainer.max_steps", "2",
              "--trainer.val_check_interval", "2", "--data.init_args.seq_len", "64", "--data.init_args.min_seq_len",
              "32", "--data.init_args.val_per_depth", "1", "--trainer.enable_progress_bar", "false",
              "--trainer.enable_model_summary", "false"])
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    result = eval_main(["passkey", "--ckpt", str(ckpt), "--lengths", "64,128", "--samples-per-depth", "2",
                        "--json", str(tmp_path / "out.json")])
    assert result["data"] == "dna" and result["trained_length"] == 64
    assert set(result["accuracy"]) == {"64", "128"}
    assert json.loads((tmp_path / "out.json").read_text())["accuracy"] == result["accuracy"]
    assert (tmp_path / "checkpoints" / "passkey_none.png").stat().st_size > 10_000
    with pytest.raises(SystemExit, match="no RoPE to scale"):
        ramba_like = tmp_path / "hyena"
        fit_main(["--config", str(root / "configs" / "dna_passkey_hyenadna.yaml"),
                  "--trainer.default_root_dir", str(ramba_like), "--trainer.max_steps", "1",
                  "--trainer.val_check_interval", "1", "--data.init_args.seq_len", "64",
                  "--data.init_args.min_seq_len", "32", "--data.init_args.val_per_depth", "1",
                  "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"])
        eval_main(["passkey", "--ckpt", str(ramba_like / "checkpoints" / "last.ckpt"), "--lengths", "64",
                   "--samples-per-depth", "1", "--rope-scaling", "none,yarn"])
