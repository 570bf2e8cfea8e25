"""Video question answering with a LongVA-style model: ``answer(model, "clip.mp4", "What happens?")``.

Frames are sampled with :func:`read_frames` (uniform ``num_frames``, or ``fps`` with ``max_frames``; ``on_short``
for a clip with fewer frames than ``num_frames``); a video that cannot be read, or no frames at all, raises — there
is no text-only fallback. Decoding is greedy with a KV cache; ``stream=True`` returns an iterator over text pieces
as they are generated (what the Gradio demo shows).

Prompting: byte-level zoo models (vocab 260) get ``[BOS, <image>, question bytes]`` as in V-NIAH training; a model
with a Hugging Face tokenizer gets LongVA's ``qwen_1_5`` chat template with the question after ``<image>\\n``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from zoo.tokenizers import ByteTokenizer, stream_text

from .frames import read_frames
from .longva import IMAGE_TOKEN_INDEX, LongVA, preprocess_frames

QWEN_SYSTEM = "You are a helpful assistant."


def prompt_ids(question: str, tokenizer=None) -> list[int]:
    """Token ids of the prompt with one ``IMAGE_TOKEN_INDEX`` placeholder where the video goes."""
    if tokenizer is None or isinstance(tokenizer, ByteTokenizer):
        tok = tokenizer or ByteTokenizer()
        return [tok.bos_token_id, IMAGE_TOKEN_INDEX] + tok.encode(question)
    before = f"<|im_start|>system\n{QWEN_SYSTEM}<|im_end|>\n<|im_start|>user\n"
    after = f"\n{question}<|im_end|>\n<|im_start|>assistant\n"
    return tokenizer.encode(before, add_special_tokens=False) + [IMAGE_TOKEN_INDEX] + \
        tokenizer.encode(after, add_special_tokens=False)


@torch.no_grad()
def generate_tokens(model: LongVA, input_ids: torch.Tensor, videos: list[torch.Tensor], max_new_tokens: int,
                    eos_token_id: int | None) -> Iterator[int]:
    """Greedy decoding for one prompt (1, L) with its videos; yields token ids until EOS or the limit."""
    from zoo.lm import KVCache, greedy_tokens

    embeds, _, positions, _ = model.build_inputs(input_ids, videos)
    cache = KVCache.empty(len(model.lm.blocks))
    out = model.lm(inputs_embeds=embeds, position_ids=positions, cache=cache)
    # text after the (possibly fractional V2PE) prompt positions steps by 1 from the floor
    yield from greedy_tokens(model.lm, out, cache, positions[:, -1:], max_new_tokens, eos_token_id,
                             step=lambda pos: pos.floor() + 1)


def answer(model: LongVA, video, question: str, num_frames: int | None = 16, fps: float | None = None,
           max_frames: int | None = None, max_new_tokens: int = 64, tokenizer=None, stream: bool = False,
           backend: str = "auto", on_short: str = "error"):
    """Answer ``question`` about ``video``: the text, or an iterator of text pieces with stream=True.

    ``video`` is a path (sampled with num_frames / fps / max_frames / on_short, see :func:`read_frames`) or frames
    :func:`read_frames` already returned, uint8 ``(T, H, W, 3)`` (so a caller that shows them does not decode the
    file twice). Zero frames (an empty array, ``num_frames=0``) raise a ``ValueError`` before anything runs."""
    if not isinstance(model, LongVA):
        raise TypeError(f"answer() needs a LongVA video model, got {type(model).__name__}")
    for name, value in (("num_frames", num_frames), ("max_frames", max_frames)):
        if value is not None and value < 1:
            raise ValueError(f"answer() needs at least one video frame: {name} must be ≥ 1, got {value}")
    if isinstance(video, (str, Path)):
        if fps is not None:
            num_frames = None
        frames, _ = read_frames(video, num_frames=num_frames, fps=fps, max_frames=max_frames, backend=backend,
                                on_short=on_short)
    else:
        frames = video
        shape = tuple(frames.shape) if hasattr(frames, "shape") else np.shape(frames)
        if 0 in shape:
            raise ValueError(f"answer() needs at least one video frame, got an empty array of shape {shape}")
    pixels = preprocess_frames(frames, model.image_size).to(next(model.parameters()).dtype)
    ids = torch.tensor([prompt_ids(question, tokenizer)])
    model.eval()
    eos = model.lm.config.eos_token_id if tokenizer is None else tokenizer.eos_token_id
    tokens = generate_tokens(model, ids, [pixels], max_new_tokens, eos)
    decode = (tokenizer or ByteTokenizer()).decode
    if stream:
        return stream_text(tokens, decode)
    return decode(list(tokens))
