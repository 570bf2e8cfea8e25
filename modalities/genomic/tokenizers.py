"""Sequence tokenizers for DNA and proteins, with transformers' calling conventions and no vocabulary download.

- :class:`CharTokenizer`: one token per base with HyenaDNA's ids — [CLS] 0, [SEP] 1, [BOS] 2, [MASK] 3, [PAD] 4,
  [RESERVED] 5, [UNK] 6, then A 7, C 8, G 9, T 10, N 11; special tokens ``[CLS] … [SEP]``; left padding.
- :class:`KmerTokenizer`: non-overlapping k-mers (GENERator: k = 6). A tail shorter than k becomes one shorter-mer
  token, so every sequence round-trips; a k-mer holding a base outside ACGT is [UNK].
- :class:`ProteinTokenizer`: one token per amino acid (the 20 standard ones plus X, B, Z, U, O).

All three: ``encode(text, add_special_tokens=True)``, ``decode(ids, skip_special_tokens=True)``,
``tokenizer(texts, padding=True, max_length=…, truncation=…, return_tensors="pt")`` → ``{"input_ids",
"attention_mask"}``, ``save_pretrained(dir)`` / ``from_pretrained(dir)`` (``tokenizer_config.json``).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import torch

CONFIG_NAME = "tokenizer_config.json"


class SequenceTokenizer:
    """Shared machinery: a fixed vocabulary of special tokens then symbols; subclasses split text into symbols."""

    kind = "base"
    special_tokens: tuple[str, ...] = ()

    def __init__(self, symbols: list[str], padding_side: str = "right", case_sensitive: bool = False):
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        self.padding_side, self.case_sensitive = padding_side, case_sensitive
        self.vocab: dict[str, int] = {t: i for i, t in enumerate(self.special_tokens)}
        for s in symbols:
            self.vocab.setdefault(s, len(self.vocab))
        self.ids_to_tokens = {i: t for t, i in self.vocab.items()}
        self.special_ids = {self.vocab[t] for t in self.special_tokens}

    # ---- vocabulary ------------------------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __len__(self) -> int:
        return len(self.vocab)

    def token_id(self, token: str) -> int:
        return self.vocab[token]

    @property
    def pad_token_id(self) -> int:
        return self.vocab["[PAD]"]

    @property
    def unk_token_id(self) -> int:
        return self.vocab["[UNK]"]

    @property
    def mask_token_id(self) -> int:
        return self.vocab["[MASK]"]

    # ---- subclass hooks --------------------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[str]:
        raise NotImplementedError

    def wrap(self, ids: list[int]) -> list[int]:
        """Special tokens around one sequence (``add_special_tokens=True``)."""
        return ids

    # ---- transformers-style API ------------------------------------------------------------------------------

    def convert_tokens_to_ids(self, tokens: list[str]) -> list[int]:
        unk = self.unk_token_id
        return [self.vocab.get(t, unk) for t in tokens]

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        if not self.case_sensitive:
            text = text.upper()
        ids = self.convert_tokens_to_ids(self.tokenize(text))
        return self.wrap(ids) if add_special_tokens else ids

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        if torch.is_tensor(ids):
            ids = ids.tolist()
        out = []
        for i in ids:
            i = int(i)
            if i not in self.ids_to_tokens:
                raise ValueError(f"token id {i} is outside the {self.vocab_size}-token vocabulary")
            if skip_special_tokens and i in self.special_ids:
                continue
            out.append(self.ids_to_tokens[i])
        return "".join(out)

    def __call__(self, text: str | list[str], add_special_tokens: bool = True, padding: bool | str = False,
                 max_length: int | None = None, truncation: bool = False,
                 return_tensors: str | None = None) -> dict[str, Any]:
        single = isinstance(text, str)
        rows = [self.encode(t, add_special_tokens) for t in ([text] if single else text)]
        if truncation:
            if max_length is None:
                raise ValueError("truncation=True needs max_length")
            rows = [r[-max_length:] if self.padding_side == "left" else r[:max_length] for r in rows]
        if padding in (True, "longest", "max_length"):
            target = max(len(r) for r in rows)
            if padding == "max_length":
                if max_length is None:
                    raise ValueError("padding='max_length' needs max_length")
                target = max(target, max_length)
            ids, mask = [], []
            for r in rows:
                pad = [self.pad_token_id] * (target - len(r))
                ids.append(pad + r if self.padding_side == "left" else r + pad)
                mask.append([0] * len(pad) + [1] * len(r) if self.padding_side == "left" else [1] * len(r) + [0] * len(pad))
        elif padding is False or padding == "do_not_pad":
            ids, mask = rows, [[1] * len(r) for r in rows]
        else:
            raise ValueError(f"padding must be True, False, 'longest' or 'max_length', got {padding!r}")
        if return_tensors == "pt":
            if len({len(r) for r in ids}) > 1:
                raise ValueError("sequences of different lengths need padding=True for return_tensors='pt'")
            out = {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask)}
        elif return_tensors is None:
            out = {"input_ids": ids, "attention_mask": mask}
        else:
            raise ValueError(f"return_tensors must be 'pt' or None, got {return_tensors!r}")
        if single and return_tensors is None:
            out = {k: v[0] for k, v in out.items()}
        return out

    # ---- persistence -----------------------------------------------------------------------------------------

    def config(self) -> dict:
        return {"kind": self.kind, "padding_side": self.padding_side, "case_sensitive": self.case_sensitive}

    def save_pretrained(self, directory: str | Path) -> Path:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        (path / CONFIG_NAME).write_text(json.dumps(self.config(), indent=2) + "\n")
        return path / CONFIG_NAME

    @staticmethod
    def from_pretrained(directory: str | Path) -> SequenceTokenizer:
        path = Path(directory) / CONFIG_NAME
        if not path.exists():
            raise FileNotFoundError(f"{path}: no tokenizer config (written by save_pretrained)")
        cfg = json.loads(path.read_text())
        kind = cfg.pop("kind", None)
        classes = {c.kind: c for c in (CharTokenizer, KmerTokenizer, ProteinTokenizer)}
        if kind not in classes:
            raise ValueError(f"{path}: unknown tokenizer kind {kind!r}; known: {sorted(classes)}")
        return classes[kind](**cfg)


class CharTokenizer(SequenceTokenizer):
    kind = "char"
    special_tokens = ("[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]")

    def __init__(self, characters: str = "ACGTN", padding_side: str = "left", case_sensitive: bool = False):
        self.characters = characters
        super().__init__(list(characters), padding_side, case_sensitive)

    def tokenize(self, text: str) -> list[str]:
        return list(text)

    def wrap(self, ids: list[int]) -> list[int]:
        return [self.vocab["[CLS]"]] + ids + [self.vocab["[SEP]"]]

    @property
    def eos_token_id(self) -> int:
        return self.vocab["[SEP]"]

    @property
    def bos_token_id(self) -> int:
        return self.vocab["[BOS]"]

    def config(self) -> dict:
        return {**super().config(), "characters": self.characters}


class KmerTokenizer(SequenceTokenizer):
    kind = "kmer"
    special_tokens = ("[PAD]", "[UNK]", "[BOS]", "[EOS]", "[MASK]")

    def __init__(self, k: int = 6, padding_side: str = "right", case_sensitive: bool = False):
        if not 1 <= k <= 8:
            raise ValueError(f"k must be in 1..8, got {k}")
        self.k = k
        # the k-mers first, then the shorter tails (1..k-1 bases), each in lexicographic order
        symbols = ["".join(p) for m in [k, *range(1, k)] for p in itertools.product("ACGT", repeat=m)]
        super().__init__(symbols, padding_side, case_sensitive)

    def tokenize(self, text: str) -> list[str]:
        return [text[i: i + self.k] for i in range(0, len(text), self.k)]

    def wrap(self, ids: list[int]) -> list[int]:
        return [self.vocab["[BOS]"]] + ids + [self.vocab["[EOS]"]]

    @property
    def eos_token_id(self) -> int:
        return self.vocab["[EOS]"]

    @property
    def bos_token_id(self) -> int:
        return self.vocab["[BOS]"]

    def config(self) -> dict:
        return {**super().config(), "k": self.k}


AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY" + "XBZUO"


class ProteinTokenizer(SequenceTokenizer):
    kind = "protein"
    special_tokens = ("[PAD]", "[UNK]", "[CLS]", "[EOS]", "[MASK]")

    def __init__(self, padding_side: str = "right", case_sensitive: bool = False):
        super().__init__(list(AMINO_ACIDS), padding_side, case_sensitive)

    def tokenize(self, text: str) -> list[str]:
        return list(text)

    def wrap(self, ids: list[int]) -> list[int]:
        return [self.vocab["[CLS]"]] + ids + [self.vocab["[EOS]"]]

    @property
    def eos_token_id(self) -> int:
        return self.vocab["[EOS]"]
