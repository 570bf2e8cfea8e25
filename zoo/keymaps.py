"""One declarative idiom for checkpoint key maps (torchtune's: one table per layout), read in both directions.

A :class:`KeyMap` is a list of ``(hf, zoo)`` module paths; ``{i}`` stands for a layer number, and a path matches a
key that equals it or continues with ``.`` (the rest, ``weight`` / ``bias`` / deeper names, is kept)::

    QWEN2 = KeyMap([("model.embed_tokens", "embed"),
                    ("model.layers.{i}.input_layernorm", "blocks.{i}.norm1"), ...])
    QWEN2.to_zoo("model.layers.3.input_layernorm.weight")   # 'blocks.3.norm1.weight'
    QWEN2.to_hf("blocks.3.norm1.weight")                      # 'model.layers.3.input_layernorm.weight'

The first rule that matches wins, in table order, both ways. ``read_only`` rules are older names the loader also
accepts (transformers 4's Qwen2-Audio keys) and that are never written; ``ignore`` patterns are checkpoint entries
that carry no weight (``rotary_emb.inv_freq``). Reading passes an unknown key through unchanged, so that the strict
loader names it; writing a key no rule covers raises, naming the layout.
"""

from __future__ import annotations

import re
from typing import Iterable

from torch import Tensor

Rule = tuple[str, str]


def _compile(path: str) -> re.Pattern:
    parts = re.split(r"(\{\w+\})", path)
    body = "".join(rf"(?P<{p[1:-1]}>\d+)" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(rf"^{body}(?=\.|$)")


class KeyMap:
    def __init__(self, rules: Iterable[Rule], *, name: str, read_only: Iterable[Rule] = (),
                 ignore: Iterable[str] = ()):
        self.name = name
        self.rules = list(rules)
        self.read_only = list(read_only)
        self.ignore = [re.compile(p) for p in ignore]
        self._read = [(_compile(hf), zoo) for hf, zoo in self.rules + self.read_only]
        self._write = [(_compile(zoo), hf) for hf, zoo in self.rules]

    @staticmethod
    def _apply(key: str, table) -> str | None:
        for pattern, target in table:
            m = pattern.match(key)
            if m:
                return target.format(**m.groupdict()) + key[m.end():]
        return None

    def to_zoo(self, key: str) -> str:
        """A checkpoint key → the zoo's name (unknown keys unchanged, for the strict loader to report)."""
        new = self._apply(key, self._read)
        return key if new is None else new

    def to_hf(self, key: str) -> str:
        new = self._apply(key, self._write)
        if new is None:
            raise ValueError(f"weight {key!r} has no place in the {self.name} layout")
        return new

    def state_to_zoo(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        return {self.to_zoo(k): v for k, v in state.items() if not any(p.search(k) for p in self.ignore)}

    def state_to_hf(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        return {self.to_hf(k): v for k, v in state.items()}


def prefixed(rules: Iterable[Rule], hf: str, zoo: str) -> list[Rule]:
    """``rules`` under other prefixes: a submodel's table inside a composite model (``hf`` and ``zoo`` are prepended
    with a dot unless empty; a rule of empty paths maps the prefixes themselves)."""
    join = lambda prefix, path: f"{prefix}.{path}" if prefix and path else prefix or path  # noqa: E731
    return [(join(hf, h), join(zoo, z)) for h, z in rules]
