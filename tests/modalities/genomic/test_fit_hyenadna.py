"""`python -m zoo.fit --config configs/hyenadna.yaml` on short windows learns DNA below the 2 bits per base of a
uniform guess on held-out bases, and a batch with nothing to predict (all N / padding) gives a zero loss, not NaN."""

import math
from pathlib import Path

import torch

from zoo.fit import main as fit_main
from zoo.lm import CausalLM, LMConfig
from zoo.modalities.genomic import CharTokenizer
from zoo.modalities.genomic.lightning import collate_windows

ROOT = Path(__file__).resolve().parents[3]


def test_fit_hyenadna_config_beats_two_bits_per_base(tmp_path):
    cli = fit_main(["--config", str(ROOT / "configs" / "hyenadna.yaml"), "--trainer.default_root_dir", str(tmp_path),
                    "--data.init_args.path", str(ROOT / "tests" / "data" / "genomic" / "chr17.hg19.part.fa"),
                    "--trainer.max_steps", "60", "--trainer.val_check_interval", "60", "--data.init_args.window", "256",
                    "--data.init_args.batch_size", "8", "--trainer.enable_progress_bar", "false",
                    "--trainer.enable_model_summary", "false"])
    bpb = cli.trainer.callback_metrics["val/bits_per_base"].item()
    assert math.isfinite(bpb) and bpb < 2.0, f"held-out bits per base {bpb:.3f}"
    loss = cli.trainer.callback_metrics["val/loss"].item()
    assert abs(bpb - loss / math.log(2)) < 1e-5


def test_a_batch_of_only_n_and_padding_gives_zero_loss_not_nan():
    tok = CharTokenizer()
    batch = collate_windows([{"input_ids": torch.tensor(tok.encode("NNNN", add_special_tokens=False))},
                             {"input_ids": torch.tensor(tok.encode("NN", add_special_tokens=False))}], tok)
    assert batch["input_ids"][1].tolist() == [4, 4, 11, 11]  # left padding, HyenaDNA's ids
    assert (batch["labels"] == -100).all()
    model = CausalLM(LMConfig(vocab_size=16, d_model=32, n_layer=1, layout="hyena", norm="layernorm"))
    out = model(batch["input_ids"], labels=batch["labels"])
    assert out.loss.item() == 0.0
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    mixed = collate_windows([{"input_ids": torch.tensor(tok.encode("ACNGT", add_special_tokens=False))}], tok)
    assert mixed["labels"].tolist() == [[7, 8, -100, 9, 10]]
