"""Sequence-level heads: pooling over real tokens of left-padded batches, Caduceus-PS' reverse-complement-invariant
scoring (as CaduceusForSequenceClassification), and post-hoc conjoining; each against a direct computation."""

from __future__ import annotations

import pytest
import torch

from zoo.lm import CausalLM, LMConfig
from zoo.modalities.genomic.caduceus import Caduceus, CaduceusConfig
from zoo.modalities.genomic.downstream import (SequenceClassifier, dna_complement_ids, pool,
                                               reverse_complement_batch)
from zoo.modalities.genomic.fasta import reverse_complement
from zoo.modalities.genomic.tokenizers import CharTokenizer

TOK = CharTokenizer()


def batch(seqs):
    enc = TOK(seqs, add_special_tokens=False, padding=True)
    return torch.tensor(enc["input_ids"]), torch.tensor(enc["attention_mask"])


def test_pooling_reads_real_tokens_only():
    h = torch.randn(2, 5, 3)
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]).bool()
    torch.testing.assert_close(pool(h, mask, "mean")[0], h[0, 2:].mean(0))
    torch.testing.assert_close(pool(h, mask, "first"), torch.stack((h[0, 2], h[1, 0])))
    torch.testing.assert_close(pool(h, mask, "last"), h[:, -1])
    h[0, 0] = 100.0  # a padded position never wins the max
    torch.testing.assert_close(pool(h, mask, "max")[0], h[0, 2:].amax(0))
    with pytest.raises(ValueError, match="pooling must be one of mean, max, first, last, got 'cls'"):
        pool(h, mask, "cls")


def test_reverse_complement_batch_equals_each_row_alone():
    ids, mask = batch(["ACGTT", "GGA"])
    rc, rc_mask = reverse_complement_batch(ids, mask.bool(), dna_complement_ids(TOK))
    want, want_mask = batch([reverse_complement("ACGTT"), reverse_complement("GGA")])
    assert torch.equal(rc, want) and torch.equal(rc_mask, want_mask.bool())
    with pytest.raises(ValueError, match="needs left-padded batches"):
        reverse_complement_batch(ids, mask.flip(1).bool(), dna_complement_ids(TOK))


def _lm():
    torch.manual_seed(0)
    return CausalLM(LMConfig(vocab_size=TOK.vocab_size, d_model=32, n_layer=2, n_head=2)).eval()


@pytest.mark.parametrize("pooling", ["mean", "last", "first", "max"])
def test_a_padded_row_scores_as_it_does_alone(pooling):
    model = SequenceClassifier(_lm(), 3, pooling).eval()
    ids, mask = batch(["ACGTACGTAC", "GGAT"])
    alone, alone_mask = batch(["GGAT"])
    with torch.no_grad():
        torch.testing.assert_close(model(ids, mask)[1], model(alone, alone_mask)[0], atol=1e-5, rtol=1e-5)


def _caduceus_ps():
    torch.manual_seed(0)
    return Caduceus(CaduceusConfig(d_model=16, n_layer=2, mixer_kwargs={"tie": "projections", "d_state": 4}))


def test_caduceus_ps_scores_a_sequence_and_its_reverse_complement_the_same():
    backbone = _caduceus_ps()
    model = SequenceClassifier(backbone, 2, "mean").eval()
    # Caduceus' own vocabulary: its complement map is the config's; A..T ids are 7..10
    ids = torch.randint(7, 11, (3, 24))
    with torch.no_grad():
        scores = model(ids)
        rc = backbone.reverse_complement_ids(ids)
        torch.testing.assert_close(model(rc), scores, atol=1e-5, rtol=1e-5)
        # CaduceusForSequenceClassification's computation, written out
        h = backbone.hidden_states(ids)
        fwd, rev = h[..., :16], h[..., 16:].flip(1, 2)
        direct = (model.score(fwd.mean(1)) + model.score(rev.mean(1))) / 2
    torch.testing.assert_close(scores, direct, atol=1e-6, rtol=1e-6)


def test_post_hoc_conjoining_averages_the_two_strands_at_evaluation_only():
    model = SequenceClassifier(_lm(), 2, "mean", conjoin="eval", complement=dna_complement_ids(TOK))
    ids, mask = batch(["ACGTTGCA", "GGAC"])
    rc, rc_mask = batch([reverse_complement("ACGTTGCA"), reverse_complement("GGAC")])
    plain = SequenceClassifier(model.backbone, 2, "mean").eval()
    plain.score = model.score
    with torch.no_grad():
        model.eval()
        conjoined = model(ids, mask)
        torch.testing.assert_close(conjoined, (plain(ids, mask) + plain(rc, rc_mask)) / 2, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(model(rc, rc_mask), conjoined, atol=1e-5, rtol=1e-5)  # invariant by construction
        model.train()
        torch.testing.assert_close(model(ids, mask), plain(ids, mask), atol=1e-6, rtol=1e-6)


def test_caduceus_ps_per_token_scores_are_reverse_complement_equivariant():
    backbone = _caduceus_ps()
    model = SequenceClassifier(backbone, 3, "none").eval()
    ids = torch.randint(7, 11, (2, 20))
    with torch.no_grad():
        scores = model(ids)
        assert scores.shape == (2, 20, 3)
        # the score of base i of x is the score of base L − 1 − i of its reverse complement
        torch.testing.assert_close(model(backbone.reverse_complement_ids(ids)).flip(1), scores, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="per-token heads \\(pooling: none\\) take none"):
        SequenceClassifier(backbone, 3, "none", conjoin="eval")
