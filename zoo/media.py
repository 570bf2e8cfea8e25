"""Splicing media tokens (video frames, audio windows, ...) into token sequences: one splicer for every modality.

A prompt holds placeholder token ids; placeholder k (in reading order over the batch, row by row) stands for
``lengths[k]`` media tokens. LongVA's convention is one placeholder per video (expanded to T × tokens per frame);
Qwen2-Audio's processor already writes one placeholder per audio token (lengths of 1). Everything is vectorised
(``repeat_interleave`` and boolean scatters): no Python step per token at 224K-token contexts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


def expand_placeholders(input_ids: Tensor, placeholder_id: int, lengths: list[int] | Tensor) -> tuple[Tensor, Tensor]:
    """One row: input_ids (N,), ``lengths`` one per placeholder in it → ``source`` (M,): the index in input_ids each
    expanded token comes from, and ``is_media`` (M,)."""
    is_placeholder = input_ids == placeholder_id
    lengths = torch.as_tensor(lengths, dtype=torch.long, device=input_ids.device)
    n_placeholders = int(is_placeholder.sum())
    if lengths.numel() != n_placeholders:
        raise ValueError(f"{n_placeholders} placeholders (id {placeholder_id}) but {lengths.numel()} media lengths")
    repeats = torch.ones_like(input_ids, dtype=torch.long)
    repeats[is_placeholder] = lengths
    source = torch.repeat_interleave(torch.arange(input_ids.shape[0], device=input_ids.device), repeats)
    return source, is_placeholder[source]


def _expand_rows(input_ids: Tensor, placeholder_id: int, lengths: list[int]) -> list[tuple[Tensor, Tensor]]:
    """:func:`expand_placeholders` for every row of (B, N) input_ids, ``lengths`` over the batch in reading order."""
    per_row = (input_ids == placeholder_id).sum(1).tolist()
    if sum(per_row) != len(lengths):
        raise ValueError(f"input_ids hold {sum(per_row)} placeholders (id {placeholder_id}) but {len(lengths)} "
                         "media were given")
    bounds = torch.tensor([0, *per_row]).cumsum(0).tolist()
    return [expand_placeholders(input_ids[b], placeholder_id, lengths[bounds[b]: bounds[b + 1]])
            for b in range(input_ids.shape[0])]


@dataclass
class Spliced:
    embeds: Tensor  # (B, M, d), right-padded with zeros
    labels: Tensor | None  # (B, M): the text's labels, -100 on media and padding
    is_media: Tensor  # (B, M) bool
    lengths: list[int]  # real (unpadded) length of each row


def splice_media(input_ids: Tensor, placeholder_id: int, media: Tensor | None, lengths: list[int],
                 embed: Callable[[Tensor], Tensor], labels: Tensor | None = None, pad_to: int | None = None) -> Spliced:
    """input_ids (B, N) with placeholders; ``media`` (Σ lengths, d): every placeholder's tokens, concatenated in
    reading order; ``embed`` the text embedding → :class:`Spliced`. Media is cast to the embeddings' dtype."""
    expanded = _expand_rows(input_ids, placeholder_id, lengths)
    total = sum(lengths)
    if total and (media is None or media.shape[0] != total):
        got = "none" if media is None else media.shape[0]
        raise ValueError(f"the media give {got} tokens but the placeholders stand for {total}")
    text = embed(input_ids.masked_fill(input_ids == placeholder_id, 0))
    row_lengths = [len(source) for source, _ in expanded]
    m = max(max(row_lengths), pad_to or 0)
    embeds = text.new_zeros(input_ids.shape[0], m, text.shape[-1])
    is_media = torch.zeros(input_ids.shape[0], m, dtype=torch.bool, device=input_ids.device)
    out_labels = input_ids.new_full((input_ids.shape[0], m), -100) if labels is not None else None
    start = 0  # media tokens of the rows before this one
    for b, (source, row_media) in enumerate(expanded):
        n, k = len(source), int(row_media.sum())
        embeds[b, :n] = text[b, source]
        is_media[b, :n] = row_media
        if k:
            embeds[b, :n][row_media] = media[start: start + k].to(embeds.dtype)
        start += k
        if labels is not None:
            out_labels[b, :n] = labels[b, source].masked_fill(row_media, -100)
    return Spliced(embeds, out_labels, is_media, row_lengths)


def splice_labels(input_ids: Tensor, labels: Tensor, placeholder_id: int, lengths: list[int]) -> Tensor:
    """The labels :func:`splice_media` would give, without embedding anything (for scoring against logits)."""
    rows = [labels[b, source].masked_fill(is_media, -100)
            for b, (source, is_media) in enumerate(_expand_rows(input_ids, placeholder_id, lengths))]
    m = max(len(r) for r in rows)
    return torch.stack([torch.nn.functional.pad(r, (0, m - len(r)), value=-100) for r in rows])
