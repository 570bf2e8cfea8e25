"""Text: byte tokenizer, synthetic passkey retrieval, Lightning module for causal LMs, passkey evaluation."""

from .lightning import LMModule, PasskeyDataModule
from .passkey import PasskeySet, PasskeyStream, answer_exact_match, make_passkey_sample
from .tokenizer import ByteTokenizer

__all__ = [
    "ByteTokenizer", "LMModule", "PasskeyDataModule", "PasskeySet", "PasskeyStream", "answer_exact_match",
    "make_passkey_sample",
]
