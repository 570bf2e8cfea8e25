"""Caduceus-PS is reverse-complement equivariant exactly: the logits of the reverse complement of a sequence are
the complement-permuted, reversed logits of the sequence (and its hidden states the RC-flipped ones), in fp64."""

import pytest
import torch

from zoo.modalities.genomic import CharTokenizer
from zoo.modalities.genomic.caduceus import Caduceus, CaduceusConfig, rc_flip


@pytest.fixture
def model():
    torch.manual_seed(0)
    m = Caduceus(CaduceusConfig(d_model=16, n_layer=2, mixer_kwargs={"tie": "projections", "d_state": 4,
                                                                     "expand": 2}))
    with torch.no_grad():  # non-trivial norm gains, so a channel flip in the wrong place shows
        for name, p in m.named_parameters():
            if "norm" in name:
                p.normal_(1.0, 0.3)
    return m.double().eval()


def test_reverse_complement_equivariance_is_exact(model):
    tok = CharTokenizer()
    ids = torch.tensor([tok.encode("ACGTTGCANACCGTAGGT", add_special_tokens=False)])
    rc_ids = model.reverse_complement_ids(ids)
    assert tok.decode(rc_ids[0]) == "ACCTACGGTNTGCAACGT"
    with torch.no_grad():
        logits, rc_logits = model(ids).logits, model(rc_ids).logits
        h, rc_h = model.hidden_states(ids), model.hidden_states(rc_ids)
    torch.testing.assert_close(rc_logits, logits[:, :, model.complement_ids].flip(1), atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(rc_h, rc_flip(h), atol=1e-10, rtol=1e-10)
    assert not torch.allclose(logits, logits.flip(1))  # not trivially symmetric


def test_parameters_are_those_of_one_strand_and_loss_is_finite(model):
    per_block = sum(p.numel() for p in model.blocks[0].parameters())
    assert per_block < 2 * sum(p.numel() for p in model.blocks[0].mixer.parameters())  # one mixer, not two
    ids = torch.randint(7, 12, (2, 12))
    labels = torch.full_like(ids, -100)
    assert model(ids, labels=labels).loss.item() == 0.0  # nothing to predict: 0, not NaN
    labels[:, 3] = ids[:, 3]
    assert torch.isfinite(model(ids, labels=labels).loss)
    with pytest.raises(ValueError, match="not its own inverse"):
        CaduceusConfig(complement={7: 10}).permutation()


def test_mlm_masking_follows_bert_and_never_targets_padding_or_n():
    from zoo.modalities.genomic.lightning import mask_for_mlm

    tok = CharTokenizer()
    ids = torch.tensor([tok.encode("ACGT" * 2000 + "N" * 500, add_special_tokens=False)])
    ids = torch.cat((torch.full((1, 500), tok.pad_token_id), ids), dim=1)
    masked, labels = mask_for_mlm(ids, tok, 0.15, torch.Generator().manual_seed(0), [7, 8, 9, 10])
    target = labels != -100
    assert abs(target[0, 500:8500].float().mean().item() - 0.15) < 0.02
    assert not target[0, :500].any() and not target[0, 8500:].any()  # padding and N
    assert torch.equal(labels[target], ids[target])
    share_mask = (masked[target] == tok.mask_token_id).float().mean().item()
    assert abs(share_mask - 0.8) < 0.05
    assert torch.equal(masked[~target], ids[~target])


def test_fit_caduceus_config_learns_masked_bases(tmp_path):
    import math
    from pathlib import Path

    from zoo.fit import main as fit_main

    root = Path(__file__).resolve().parents[3]
    cli = fit_main(["--config", str(root / "configs" / "caduceus.yaml"), "--trainer.default_root_dir", str(tmp_path),
                    "--data.init_args.path", str(root / "tests" / "data" / "genomic" / "chr17.hg19.part.fa"),
                    "--trainer.max_steps", "60", "--trainer.val_check_interval", "60",
                    "--data.init_args.window", "256", "--data.init_args.batch_size", "8",
                    "--model.init_args.model.n_layer", "2", "--trainer.enable_progress_bar", "false",
                    "--trainer.enable_model_summary", "false"])
    bpb = cli.trainer.callback_metrics["val/bits_per_base"].item()
    assert math.isfinite(bpb) and bpb < 2.0, f"held-out bits per masked base {bpb:.3f}"
    import zoo

    model = zoo.load_pretrained(tmp_path / "checkpoints" / "last.ckpt")
    assert isinstance(model, Caduceus)
