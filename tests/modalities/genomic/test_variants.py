"""Zero-shot variant-effect scoring: the causal and masked-marginal log-likelihood ratios equal a direct computation,
every variant is either scored or refused by name, and the eval command writes the TSV, JSON and AUROC."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from zoo.lm import CausalLM, LMConfig
from zoo.modalities.genomic.caduceus import Caduceus, CaduceusConfig
from zoo.modalities.genomic.fasta import open_fasta
from zoo.modalities.genomic.tokenizers import CharTokenizer
from zoo.modalities.genomic.variants import VcfFormatError, read_vcf, score_variants

TOK = CharTokenizer()


@pytest.fixture
def genome(tmp_path):
    rng = np.random.default_rng(0)
    seq = "".join(rng.choice(list("ACGT"), 300))
    (tmp_path / "g.fa").write_text(">chr1\n" + "\n".join(seq[i:i + 60] for i in range(0, 300, 60)) + "\n")
    ref_at = {p: seq[p - 1] for p in (10, 150, 298)}
    alt = {b: "A" if b != "A" else "C" for b in "ACGT"}
    lines = ["##fileformat=VCFv4.2", "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
             f"chr1\t10\t.\t{ref_at[10]}\t{alt[ref_at[10]]}\t.\t.\tCLNSIG=Benign",
             f"chr1\t150\t.\t{ref_at[150]}\t{alt[ref_at[150]]}\t.\t.\tCLNSIG=Pathogenic",
             f"chr1\t298\t.\t{ref_at[298]}\t{alt[ref_at[298]]}\t.\t.\tlabel=1",
             f"chr1\t20\t.\t{'T' if seq[19] != 'T' else 'G'}\tA\t.\t.\t.",  # REF disagrees with the FASTA
             "chr9\t5\t.\tA\tC\t.\t.\t.", f"chr1\t30\t.\t{seq[29]}\t{seq[29]}GG\t.\t.\t."]
    (tmp_path / "v.vcf").write_text("\n".join(lines) + "\n")
    return tmp_path, seq


def direct_causal(model, ids):
    logits = model(ids[None]).logits[0].double()
    return sum(torch.log_softmax(logits[t - 1], -1)[ids[t]] for t in range(1, len(ids)))


def test_causal_scores_equal_the_log_likelihood_ratio_and_refusals_are_named(genome):
    root, seq = genome
    torch.manual_seed(0)
    # float64: the ratio is a difference of two sums of 63 log-probabilities, where fp32's batched and one-row
    # forwards already differ by ~1e-3; in float64 the two computations agree to 1e-9
    model = CausalLM(LMConfig(vocab_size=16, d_model=32, n_layer=2, n_head=2)).double().eval()
    variants = read_vcf(root / "v.vcf")
    scored, refused = score_variants(model, TOK, variants, open_fasta(root / "g.fa"), 64, masked=False)
    assert [r["variant"].split(":")[1] for r in scored] == ["10", "150", "298"]
    assert [r["label"] for r in scored] == [0, 1, 1]
    reasons = [r["reason"] for r in refused]
    assert "disagrees with the FASTA" in reasons[0] and "chromosome 'chr9' is not in the FASTA" in reasons[1]
    assert reasons[2].startswith("not a single-nucleotide variant")
    v = variants[1]  # pos 150 (0-based 149) at index window // 2 = 32 of the window [117, 181)
    ref = seq[117:181]
    alt = ref[:32] + v.alt + ref[33:]
    with torch.no_grad():
        want = direct_causal(model, torch.tensor(TOK.encode(alt, False))) - \
            direct_causal(model, torch.tensor(TOK.encode(ref, False)))
    assert scored[1]["score"] == pytest.approx(float(want), abs=1e-9)


def test_masked_scores_are_the_masked_marginal_at_the_variant(genome):
    root, seq = genome
    torch.manual_seed(0)
    model = Caduceus(CaduceusConfig(d_model=16, n_layer=2, mixer_kwargs={"tie": "projections", "d_state": 4})).eval()
    variants = read_vcf(root / "v.vcf")[:1]  # pos 10: the window is the genome's first 64 bases
    (row,), _ = score_variants(model, TOK, variants, open_fasta(root / "g.fa"), 64, masked=True)
    ids = torch.tensor(TOK.encode(seq[:64], False))
    ids[9] = TOK.mask_token_id
    with torch.no_grad():
        logp = torch.log_softmax(model(ids[None]).logits[0, 9].float(), -1)
    want = logp[TOK.vocab[variants[0].alt]] - logp[TOK.vocab[variants[0].ref]]
    assert row["score"] == pytest.approx(float(want), abs=1e-5)


def test_the_eval_command_writes_scores_and_auroc(genome, tmp_path):
    from zoo.eval import main

    root, _ = genome
    torch.manual_seed(0)
    CausalLM(LMConfig(vocab_size=16, d_model=32, n_layer=2, n_head=2, qkv_bias=True)).save_pretrained(root / "lm")
    out = tmp_path / "out" / "vep.json"
    result = main(["variant-effect", "--ckpt", str(root / "lm"), "--fasta", str(root / "g.fa"), "--vcf",
                   str(root / "v.vcf"), "--window", "64", "--no-progress", "--json", str(out)])
    assert result["n_scored"] == 3 and result["n_refused"] == 3 and result["n_labelled"] == 3
    assert 0.0 <= result["auroc"] <= 1.0 and json.loads(out.read_text()) == result
    rows = (tmp_path / "out" / "vep.tsv").read_text().splitlines()
    assert rows[0] == "variant\tlabel\tscore" and len(rows) == 4


def test_vcf_errors_name_the_line(tmp_path):
    (tmp_path / "bad.vcf").write_text("#h\nchr1\tx\t.\tA\tC\n")
    with pytest.raises(VcfFormatError, match=r"bad\.vcf:2: POS 'x' is not a 1-based position"):
        read_vcf(tmp_path / "bad.vcf")
    (tmp_path / "bad.vcf").write_text("chr1\t5\t.\tA\tC\t.\t.\tlabel=maybe\n")
    with pytest.raises(VcfFormatError, match=r"bad\.vcf:1: INFO label='maybe' is not 0 or 1"):
        read_vcf(tmp_path / "bad.vcf")
