"""Sequence-level heads on any DNA / protein backbone: a pooled linear ``score`` as the papers fine-tune them.

``SequenceClassifier(backbone, n_outputs, pooling)`` over a :class:`zoo.lm.CausalLM` (attention LM, HyenaDNA,
RAMba, GENERator) or a :class:`Caduceus` (PS / Ph, LC-PLM's BiMamba):

- ``pooling``: ``mean`` over real tokens, ``first`` or ``last`` real token (HyenaDNA pools the last token of its
  causal model), or ``max``; ``none`` scores every position (token-level labels, e.g. splice sites).
- Caduceus-PS (RCPS): the hidden state's two halves are the strand as read and its reverse complement; as in
  ``CaduceusForSequenceClassification`` the second half is flipped along sequence and channels, both halves are
  pooled and scored by the same head, and the two scores are averaged, so the prediction is the same for a sequence
  and its reverse complement.
- ``conjoin`` (Caduceus-Ph's post-hoc conjoining, any bidirectional or causal model): the scores of the sequence and
  of its reverse complement are averaged; ``conjoin: eval`` only at evaluation, ``train`` in training too.

Batches are left-padded with the tokenizer's pad id (HyenaDNA's convention); ``attention_mask`` marks real tokens.
Attention stacks see the mask; stacks with a recurrence or a long convolution (Hyena, Mamba) run over the padding
as HyenaDNA's own fine-tuning does, and pooling reads real tokens only.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from zoo.lm import CausalLM
from zoo.registry import ARCHITECTURES, register_architecture

from .caduceus import Caduceus

POOLINGS = ("mean", "max", "first", "last")
PER_TOKEN = "none"  # no pooling: a score per position (token-level labels such as splice sites)
CONJOIN = (None, "eval", "train")


def pool(hidden: Tensor, mask: Tensor, how: str) -> Tensor:
    """(B, L, D[, 2]) hidden states, (B, L) bool mask of real tokens → (B, D[, 2])."""
    if how not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {how!r}")
    m = mask.to(hidden.dtype).reshape(*mask.shape, *([1] * (hidden.ndim - 2)))
    if how == "mean":
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1)
    if how == "max":
        return hidden.masked_fill(m == 0, float("-inf")).amax(1)
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    if how == "first":
        index = torch.where(mask, positions, mask.shape[1]).amin(1)
    else:
        index = torch.where(mask, positions, -1).amax(1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]


@register_architecture
class SequenceClassifier(nn.Module):
    """A backbone and a head of ``n_outputs`` scores (classes, or 1 for regression). Saved by ``zoo.fit`` with its
    backbone's arch and config, so ``zoo.load_pretrained(ckpt)`` rebuilds the whole classifier."""

    arch = "sequence_classifier"
    hf_model_types = ()

    def __init__(self, backbone: nn.Module, n_outputs: int, pooling: str = "mean", conjoin: str | None = None,
                 complement: Tensor | None = None):
        super().__init__()
        if pooling not in (*POOLINGS, PER_TOKEN):
            raise ValueError(f"pooling must be one of {', '.join((*POOLINGS, PER_TOKEN))}, got {pooling!r}")
        if pooling == PER_TOKEN and conjoin is not None:
            raise ValueError("conjoin averages whole-sequence predictions; per-token heads (pooling: none) take none")
        if conjoin not in CONJOIN:
            raise ValueError(f"conjoin must be eval, train or null, got {conjoin!r}")
        if not isinstance(backbone, (CausalLM, Caduceus)):
            raise TypeError(f"SequenceClassifier needs a CausalLM or Caduceus backbone, got {type(backbone).__name__}")
        self.backbone, self.pooling, self.conjoin = backbone, pooling, conjoin
        d = backbone.config.d_model
        self.score = nn.Linear(d, n_outputs, bias=False)
        if conjoin is not None:
            if complement is None and isinstance(backbone, Caduceus):
                complement = torch.tensor(backbone.config.permutation())
            if complement is None:
                raise ValueError("conjoin needs the token ids' complement map (complement=...)")
            self.register_buffer("complement", torch.as_tensor(complement, dtype=torch.long), persistent=False)
        self.rcps = isinstance(backbone, Caduceus) and backbone.config.rcps

    # ---- zoo checkpoints ------------------------------------------------------------------------------------------

    def config_dict(self) -> dict:
        complement = self.complement.tolist() if self.conjoin is not None else None
        return {"backbone_arch": self.backbone.arch, "backbone": self.backbone.config_dict(),
                "n_outputs": self.score.out_features, "pooling": self.pooling, "conjoin": self.conjoin,
                "complement": complement}

    @classmethod
    def from_config_dict(cls, d: dict, **overrides) -> SequenceClassifier:
        d = {**d, **overrides}
        backbone = ARCHITECTURES.get(d["backbone_arch"]).from_config_dict(d["backbone"])
        return cls(backbone, d["n_outputs"], d["pooling"], d["conjoin"], d["complement"])

    @classmethod
    def from_hf(cls, hf_config: dict, **overrides):
        raise ValueError("a sequence classifier has no Hugging Face layout: load its backbone, or a zoo .ckpt")

    def state_dict_from_hf(self, hf_state: dict) -> dict:
        raise ValueError("a sequence classifier has no Hugging Face layout")

    # ---- forward ------------------------------------------------------------------------------------------------

    def hidden(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """(B, L) → (B, L, d) or, for RCPS, (B, L, d, 2): the strand as read and its reverse complement."""
        b = self.backbone
        if isinstance(b, Caduceus):
            h = b.hidden_states(input_ids)
            if self.rcps:
                d = b.config.d_model
                # the reverse strand's channels of position i describe the same base: per token they are read in
                # place (channels flipped); pooled, the whole strand is flipped, as CaduceusForSequenceClassification
                rev = h[..., d:].flip(-1) if self.pooling == PER_TOKEN else h[..., d:].flip(1, 2)
                h = torch.stack((h[..., :d], rev), -1)
            return h
        masked = not b.non_attention_mixers()  # every mixer honours the padding mask
        out = b(input_ids, attention_mask=attention_mask if masked else None, output_hidden_states=True)
        return out.hidden_states

    def _scores(self, input_ids: Tensor, mask: Tensor) -> Tensor:
        hidden = self.hidden(input_ids, mask)
        pooled = hidden if self.pooling == PER_TOKEN else pool(hidden, mask, self.pooling)
        if self.rcps:  # one head over both strands, averaged (per position: the flipped half is aligned with it)
            return (self.score(pooled[..., 0]) + self.score(pooled[..., 1])) / 2
        return self.score(pooled)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """(B, L) ids (left-padded), (B, L) 1/0 mask → (B, n_outputs) scores ((B, L, n_outputs) per token with
        ``pooling: none``)."""
        mask = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        scores = self._scores(input_ids, mask)
        if self.conjoin == "train" or (self.conjoin == "eval" and not self.training):
            rc_ids, rc_mask = reverse_complement_batch(input_ids, mask, self.complement)
            scores = (scores + self._scores(rc_ids, rc_mask)) / 2
        return scores


def dna_complement_ids(tokenizer) -> Tensor:
    """The id permutation of a character tokenizer's complement (A↔T, C↔G, N and special tokens to themselves)."""
    perm = torch.arange(tokenizer.vocab_size)
    for a, b in (("A", "T"), ("C", "G"), ("a", "t"), ("c", "g")):
        if a in tokenizer.vocab and b in tokenizer.vocab:
            perm[tokenizer.vocab[a]], perm[tokenizer.vocab[b]] = tokenizer.vocab[b], tokenizer.vocab[a]
    return perm


def reverse_complement_batch(input_ids: Tensor, mask: Tensor, complement: Tensor) -> tuple[Tensor, Tensor]:
    """The reverse complement of each row's real tokens, left-padded again like the input."""
    if bool((mask[:, 1:] < mask[:, :-1]).any()):
        raise ValueError("reverse-complement conjoining needs left-padded batches (padding before the sequence)")
    pad = input_ids.masked_select(~mask)[:1]
    lengths = mask.sum(1)
    n = input_ids.shape[1]
    # row-wise: real tokens of a left-padded row are its last `length` positions; reversed, they stay right-aligned
    rc = complement[input_ids].flip(1)  # real tokens now sit first, padding last
    shift = (torch.arange(n, device=input_ids.device)[None] - (n - lengths)[:, None]) % n
    rc = rc.gather(1, shift)  # rotate each row right by its padding, so that the padding leads again
    new_mask = torch.arange(n, device=input_ids.device)[None] >= (n - lengths)[:, None]
    if len(pad):
        rc = rc.masked_fill(~new_mask, int(pad))
    return rc, new_mask
