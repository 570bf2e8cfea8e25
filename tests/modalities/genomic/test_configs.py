"""The RAMba and GENERator DNA configs train through the CLI on short windows and beat the 2 bits per base of a
uniform guess on held-out bases; GENERator-shaped weights in Hugging Face Llama layout load through
zoo.load_pretrained with logits equal to transformers' LlamaForCausalLM on 6-mer tokens (1e-4). Real-size counts:
tests/zoo/test_published.py."""

import math
from pathlib import Path

import pytest
import torch

import zoo
from zoo.fit import main as fit_main
from zoo.modalities.genomic import KmerTokenizer

ROOT = Path(__file__).resolve().parents[3]
FASTA = str(ROOT / "tests" / "data" / "genomic" / "chr17.hg19.part.fa")


@pytest.mark.parametrize("name, window, steps", [("ramba", "256", "80"), ("generator", "258", "300")])
def test_dna_config_trains_below_two_bits_per_base(tmp_path, name, window, steps):
    cli = fit_main(["--config", str(ROOT / "configs" / f"{name}.yaml"), "--trainer.default_root_dir", str(tmp_path),
                    "--data.init_args.path", FASTA, "--trainer.max_steps", steps, "--trainer.val_check_interval", steps,
                    "--data.init_args.window", window, "--data.init_args.batch_size", "8",
                    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"])
    bpb = cli.trainer.callback_metrics["val/bits_per_base"].item()
    assert math.isfinite(bpb) and bpb < 2.0, f"{name}: held-out bits per base {bpb:.3f}"
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    assert isinstance(zoo.load_pretrained(ckpt), torch.nn.Module)
    if name == "generator":  # a 6-mer model: the DNA passkey (character ids) refuses it by name
        from zoo.eval import main as eval_main

        with pytest.raises(SystemExit, match="a kmer-token model"):
            eval_main(["passkey", "--ckpt", str(ckpt), "--lengths", "64"])


def test_generator_weights_in_llama_layout_load_and_match_transformers(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    hf = LlamaForCausalLM(LlamaConfig(vocab_size=5472, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                      rope_theta=500000.0, tie_word_embeddings=False)).eval()
    hf.save_pretrained(tmp_path, safe_serialization=True)
    model = zoo.load_pretrained(tmp_path)
    ids = torch.tensor([KmerTokenizer().encode("ACGTAC" * 20 + "GGATCCTT")])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, hf(ids).logits, atol=1e-4, rtol=1e-4)
