"""Caduceus-PS: BiMamba blocks with reverse-complement parameter sharing (RCPS), for DNA.

Every hidden state has 2·d channels: the first d follow the strand as read, the last d the reverse complement,
stored flipped in sequence and channel. With RC(h) = h flipped in both the sequence and the channel axis:

- embedding: [e(x), RC(e(rc(x)))], where rc(x) complements the bases and reverses the sequence;
- each block: [f(h₁), RC(f(RC(h₂)))] for the same mixer f (a BiMamba) on both halves, and likewise for the norms
  (a channel-flipped norm on the second half);
- the LM head: h₁ Wᵀ + flip_c(h₂) (P W)ᵀ, with P the complement permutation of the vocabulary.

So the model is reverse-complement equivariant exactly: logits(rc(x)) = P · reverse(logits(x)) (tested). Parameters
are those of a d-channel model; compute is that of two. ``d_model`` here is the width of one strand: Caduceus'
own configs give the doubled width (d_model 256 = 2 × 128 per strand). The vocabulary is HyenaDNA's character ids (A 7, C 8, G 9,
T 10, N 11); masked-LM or next-token training both fit on top.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.block import SeqContext
from zoo.layers import make_norm
from zoo.lm import LMOutput
from zoo.registry import ARCHITECTURES, MIXERS

# HyenaDNA's character ids: A 7 ↔ T 10, C 8 ↔ G 9, N 11 and the special tokens map to themselves
DNA_COMPLEMENT = {7: 10, 8: 9, 9: 8, 10: 7}


def rc_flip(h: Tensor) -> Tensor:
    """Reverse a (B, L, C) tensor in the sequence and the channel axis."""
    return h.flip(1, 2)


@dataclass
class CaduceusConfig:
    vocab_size: int = 16
    d_model: int = 128
    n_layer: int = 4
    norm: str = "rmsnorm"
    norm_eps: float = 1e-5
    mixer: str = "bimamba"
    mixer_kwargs: dict[str, Any] = field(default_factory=lambda: {"tie": "projections", "d_state": 16, "expand": 2})
    complement: dict[int, int] = field(default_factory=lambda: dict(DNA_COMPLEMENT))

    def permutation(self) -> list[int]:
        """Vocabulary permutation of the complement (identity for ids without a partner); must be an involution."""
        perm = list(range(self.vocab_size))
        for a, b in self.complement.items():
            perm[int(a)] = int(b)
        if any(perm[perm[i]] != i for i in range(self.vocab_size)):
            raise ValueError(f"complement map {self.complement} is not its own inverse (A↔T needs both entries)")
        return perm


class RCPSNorm(nn.Module):
    def __init__(self, kind: str, d_model: int, eps: float):
        super().__init__()
        self.norm = make_norm(kind, d_model, eps)

    def forward(self, h: Tensor) -> Tensor:
        d = h.shape[-1] // 2
        return torch.cat((self.norm(h[..., :d]), self.norm(h[..., d:].flip(-1)).flip(-1)), dim=-1)


class RCPSBlock(nn.Module):
    """Pre-norm residual block whose mixer runs on both strands with shared parameters."""

    def __init__(self, config: CaduceusConfig):
        super().__init__()
        self.norm = RCPSNorm(config.norm, config.d_model, config.norm_eps)
        self.mixer = MIXERS.get(config.mixer)(d_model=config.d_model, **config.mixer_kwargs)

    def forward(self, h: Tensor, ctx: SeqContext) -> Tensor:
        x = self.norm(h)
        d = x.shape[-1] // 2
        y = torch.cat((self.mixer(x[..., :d], ctx), rc_flip(self.mixer(rc_flip(x[..., d:]), ctx))), dim=-1)
        return h + y


class Caduceus(nn.Module):
    arch = "caduceus"

    def __init__(self, config: CaduceusConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(RCPSBlock(config) for _ in range(config.n_layer))
        self.norm_f = RCPSNorm(config.norm, config.d_model, config.norm_eps)
        self.register_buffer("complement_ids", torch.tensor(config.permutation()), persistent=False)

    def reverse_complement_ids(self, input_ids: Tensor) -> Tensor:
        return self.complement_ids[input_ids].flip(-1)

    def hidden_states(self, input_ids: Tensor) -> Tensor:
        """(B, L) ids → (B, L, 2·d_model) RCPS hidden states."""
        h = torch.cat((self.embed(input_ids), rc_flip(self.embed(self.reverse_complement_ids(input_ids)))), dim=-1)
        ctx = SeqContext()
        for block in self.blocks:
            h = block(h, ctx)
        return self.norm_f(h)

    def forward(self, input_ids: Tensor, labels: Tensor | None = None) -> LMOutput:
        """Logits (B, L, vocab); with ``labels`` (-100 ignored) the per-token cross-entropy at the same positions
        (masked-LM style: a bidirectional model predicts the token at each position, not the next one)."""
        h = self.hidden_states(input_ids)
        d = self.config.d_model
        w = self.embed.weight  # tied, as in Caduceus
        logits = F.linear(h[..., :d], w) + F.linear(h[..., d:].flip(-1), w[self.complement_ids])
        loss = None
        if labels is not None:
            target = labels.reshape(-1)
            total = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target, ignore_index=-100,
                                    reduction="sum")
            loss = total / (target != -100).sum().clamp(min=1)
        return LMOutput(logits=logits, loss=loss)

    def config_dict(self) -> dict:
        return asdict(self.config)

    @classmethod
    def from_config_dict(cls, d: dict, **overrides) -> Caduceus:
        d = {**d, **overrides}
        if "complement" in d:  # JSON / YAML give string keys
            d["complement"] = {int(k): int(v) for k, v in d["complement"].items()}
        return cls(CaduceusConfig(**d))


ARCHITECTURES.register("caduceus")(Caduceus)
