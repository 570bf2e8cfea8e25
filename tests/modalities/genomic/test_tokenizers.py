"""DNA / k-mer / protein tokenizers: HyenaDNA's ids, transformers' calling conventions (encode, decode,
add_special_tokens, __call__ with padding), round trips, and save / load."""

import pytest
import torch

from zoo.modalities.genomic import CharTokenizer, KmerTokenizer, ProteinTokenizer, SequenceTokenizer


def test_char_tokenizer_has_hyenadna_ids():
    tok = CharTokenizer()
    assert tok.encode("ACGTN", add_special_tokens=False) == [7, 8, 9, 10, 11]
    assert tok.encode("ACGTN") == [0, 7, 8, 9, 10, 11, 1]  # [CLS] … [SEP]
    assert [tok.token_id(t) for t in ("[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]")] == \
        list(range(7))
    assert tok.vocab_size == 12 and tok.pad_token_id == 4
    assert tok.encode("acgtn", add_special_tokens=False) == [7, 8, 9, 10, 11]  # soft-masked bases, same ids
    assert tok.encode("ACXG", add_special_tokens=False) == [7, 8, 6, 9]  # unknown → [UNK]
    assert CharTokenizer(case_sensitive=True).encode("a", add_special_tokens=False) == [6]


def test_char_tokenizer_pads_on_the_left_like_hyenadna():
    tok = CharTokenizer()
    batch = tok(["ACGT", "AC"], padding=True, return_tensors="pt", add_special_tokens=False)
    assert torch.equal(batch["input_ids"], torch.tensor([[7, 8, 9, 10], [4, 4, 7, 8]]))
    assert torch.equal(batch["attention_mask"], torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1]]))
    out = tok(["ACGTACGT"], truncation=True, max_length=3, add_special_tokens=False)
    assert out["input_ids"] == [[8, 9, 10]]  # left truncation keeps the end, next to the padding side
    single = tok("ACG", padding="max_length", max_length=5, add_special_tokens=False)
    assert single == {"input_ids": [4, 4, 7, 8, 9], "attention_mask": [0, 0, 1, 1, 1]}
    with pytest.raises(ValueError, match="need padding=True"):
        tok(["A", "AC"], return_tensors="pt")


@pytest.mark.parametrize("tok, text", [
    (CharTokenizer(), "ACGTNNACGT"),
    (KmerTokenizer(6), "ACGTACGTTGCAAC"),  # 14 bases: two 6-mers and a 2-base tail
    (KmerTokenizer(3), "ACG"),
    (ProteinTokenizer(), "MKTAYIAKQRQISFVKSHFSRQ"),
])
def test_round_trip_and_save_load(tok, text, tmp_path):
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert tok.decode(ids, skip_special_tokens=False) != text  # the special tokens are there
    tok.save_pretrained(tmp_path)
    again = SequenceTokenizer.from_pretrained(tmp_path)
    assert type(again) is type(tok) and again.encode(text) == ids and again.vocab == tok.vocab


def test_kmer_tokenizer_is_non_overlapping_6mers():
    tok = KmerTokenizer()
    assert tok.vocab_size == 5 + 4**6 + sum(4**m for m in range(1, 6))
    ids = tok.encode("AAAAAACCCCCCGT", add_special_tokens=False)
    assert [tok.ids_to_tokens[i] for i in ids] == ["AAAAAA", "CCCCCC", "GT"]
    assert tok.encode("AAAAAA", add_special_tokens=False) == [5]  # first k-mer after the 5 specials
    assert tok.encode("ACGTNA", add_special_tokens=False) == [tok.unk_token_id]  # N inside a 6-mer


def test_protein_tokenizer_and_errors(tmp_path):
    tok = ProteinTokenizer()
    assert tok.decode(tok.encode("mkt")) == "MKT"
    assert tok.encode("MJ", add_special_tokens=False)[1] == tok.unk_token_id
    with pytest.raises(ValueError, match="token id 999 is outside the 30-token vocabulary"):
        tok.decode([999])
    with pytest.raises(FileNotFoundError, match="no tokenizer config"):
        SequenceTokenizer.from_pretrained(tmp_path)
