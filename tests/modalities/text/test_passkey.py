"""Passkey data: exact lengths, key placement, label masking, and the exact-match metric."""

import pytest
import torch

from zoo.metrics import answer_exact_match
from zoo.modalities.text import PasskeySet, PasskeyStream, make_passkey_sample
from zoo.tokenizers import ByteTokenizer
from zoo.modalities.text.passkey import QUESTION


@pytest.mark.parametrize("seq_len", [160, 512, 1000])
@pytest.mark.parametrize("depth", [0.0, 0.5, 1.0])
def test_sample_has_exact_length_and_key_at_depth(seq_len, depth):
    tok = ByteTokenizer()
    s = make_passkey_sample(seq_len, depth, 7041, tok)
    text = tok.decode(s.input_ids)
    assert len(s.input_ids) == seq_len and s.input_ids[0] == tok.bos_token_id
    assert text.endswith(QUESTION + "07041")
    assert tok.decode(s.input_ids[s.answer_start:]) == "07041"
    key_len = len("The pass key is 07041. Remember it. 07041 is the pass key. ")
    budget = seq_len - 1 - key_len - len(QUESTION) - 5  # filler characters
    start = text.index("The pass key is 07041")
    # the key starts at the last sentence boundary at or before depth·budget (sentences are ≤ 24 characters)
    assert depth * budget - 24 <= start <= depth * budget + 0.5
    assert start == 0 or text[start - 2 : start] == ". "


def test_too_short_length_is_refused():
    with pytest.raises(ValueError, match=r"seq_len=40 is too short for a passkey sample \(needs ≥ 103\)"):
        make_passkey_sample(40, 0.5, 1)


def test_eval_set_is_reproducible():
    a, b = PasskeySet(200, n_per_depth=3), PasskeySet(200, n_per_depth=3)
    assert [s.input_ids for s in a.samples] == [s.input_ids for s in b.samples]


def test_exact_match_needs_every_digit():
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    mask = torch.tensor([[False, False, False, True, True, True]])
    logits = torch.nn.functional.one_hot(torch.tensor([[2, 3, 4, 5, 6, 0]]), 10).float()
    assert answer_exact_match(logits, ids, mask).item() == 1.0
    logits[0, 3] = torch.nn.functional.one_hot(torch.tensor(9), 10).float()
    assert answer_exact_match(logits, ids, mask).item() == 0.0


def test_stream_draws_one_length_per_batch_within_bounds():
    from torch.utils.data import DataLoader


    loader = iter(DataLoader(PasskeyStream(256, batch_size=4, seed=3, min_seq_len=128), batch_size=4))
    lengths = [next(loader)["input_ids"].shape[1] for _ in range(12)]
    assert all(128 <= n <= 256 for n in lengths)
    assert len(set(lengths)) > 3
    with pytest.raises(ValueError, match=r"min_seq_len must be in \[103, seq_len=256\], got 300"):
        PasskeyStream(256, min_seq_len=300)


def test_answer_only_labels_mask_everything_but_the_key():

    ex = next(iter(PasskeyStream(200, loss_on="answer")))
    kept = ex["labels"][ex["labels"] != -100]
    assert ByteTokenizer().decode(kept) == ByteTokenizer().decode(ex["input_ids"][-5:])
    assert len(kept) == 5


def test_weight_decay_groups_follow_the_option():
    from zoo.lm import LMConfig
    from zoo.modalities.text import LMModule

    cfg = LMConfig(d_model=32, n_layer=1, n_head=2, vocab_size=260)
    for decay_all, want_exempt in ((False, True), (True, False)):
        module = LMModule(cfg, decay_norms_and_biases=decay_all)
        opt = module.configure_optimizers()["optimizer"]
        decayed, exempt = opt.param_groups
        assert all(g["weight_decay"] == 0.1 for g in [decayed]) and exempt["weight_decay"] == 0.0
        assert (len(exempt["params"]) > 0) == want_exempt
        assert len(decayed["params"]) + len(exempt["params"]) == len(list(module.model.parameters()))
