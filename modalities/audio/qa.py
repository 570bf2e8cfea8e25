"""Audio question answering: ``answer(model, "talk.flac", "What is said?")``.

A file is decoded and featurised one 30 s window at a time (:func:`iter_audio_features`; an unreadable or truncated
file raises, naming it), then the windows are encoded; audio longer than the model's 750-token window gets Partial
YaRN positions when the model has them configured (``partial_yarn=True/False`` forces it). Decoding is greedy with a
KV cache; new tokens continue both position tracks (original positions in the high-frequency pairs, remapped ones in
the low-frequency pairs). ``stream=True`` returns an iterator over text pieces as they are generated (what the Gradio
demo shows).

Prompting: byte-level zoo models (vocab 260) get ``[BOS, <audio>…, question bytes]`` as in needle training; a model
with a Hugging Face tokenizer gets Qwen2-Audio-Instruct's chat template (``Audio 1: <|audio_bos|><|AUDIO|>…
<|audio_eos|>`` then the question).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from zoo.tokenizers import ByteTokenizer, stream_text

from .features import audio_features, check_audio, iter_audio_features
from .qwen2_audio import Qwen2Audio, encoder_output_lengths

QWEN_SYSTEM = "You are a helpful assistant."


def prompt_ids(n_audio_tokens: int, question: str, audio_token_id: int, tokenizer=None) -> list[int]:
    """Token ids of the prompt with the audio placeholder expanded to ``n_audio_tokens``."""
    if tokenizer is None or isinstance(tokenizer, ByteTokenizer):
        tok = tokenizer or ByteTokenizer()
        return [tok.bos_token_id] + [audio_token_id] * n_audio_tokens + tok.encode(question)
    before = (f"<|im_start|>system\n{QWEN_SYSTEM}<|im_end|>\n<|im_start|>user\nAudio 1: <|audio_bos|>")
    after = f"<|audio_eos|>\n{question}<|im_end|>\n<|im_start|>assistant\n"
    return tokenizer.encode(before, add_special_tokens=False) + [audio_token_id] * n_audio_tokens + \
        tokenizer.encode(after, add_special_tokens=False)


@torch.no_grad()
def generate_tokens(model: Qwen2Audio, input_ids: torch.Tensor, input_features: torch.Tensor,
                    feature_attention_mask: torch.Tensor, max_new_tokens: int, eos_token_id: int | None,
                    partial_yarn: bool | None = None) -> Iterator[int]:
    """Greedy decoding for one prompt (1, L); yields token ids until EOS or the limit."""
    from zoo.lm import KVCache, greedy_tokens

    kwargs = model.build_inputs(input_ids, input_features, feature_attention_mask, partial_yarn=partial_yarn)
    cache = KVCache.empty(len(model.lm.blocks))
    out = model.lm(cache=cache, **kwargs)
    # (1, 1) or (1, 1, n_freq) positions: +1 moves both Partial YaRN tracks on together
    yield from greedy_tokens(model.lm, out, cache, kwargs["position_ids"][:, -1:], max_new_tokens, eos_token_id)


def audio_inputs(audio: str | Path | torch.Tensor | np.ndarray, n_mels: int,
                 window_seconds: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``input_features (W, n_mels, frames)`` and ``feature_attention_mask (W, frames)`` of a file or of samples.

    A file is decoded and featurised window by window (:func:`iter_audio_features`): the same rows as
    ``audio_features(load_audio(path))`` (within 1e-5; exactly for a 16 kHz file) without holding the decoded
    samples or the whole-audio spectrogram. Empty or too-short audio raises ValueError naming it."""
    if isinstance(audio, (str, Path)):
        rows = list(iter_audio_features(audio, n_mels, window_seconds))
        return torch.stack([f for f, _ in rows]), torch.stack([m for _, m in rows])
    return audio_features(check_audio(audio, "answer(): the audio"), n_mels, window_seconds)


def answer(model: Qwen2Audio, audio, question: str, max_new_tokens: int = 64, tokenizer=None,
           stream: bool = False, partial_yarn: bool | None = None):
    """Answer ``question`` about ``audio``: the text, or an iterator of text pieces with stream=True.

    ``audio`` is a file path, or mono 16 kHz samples :func:`load_audio` already returned (so a caller that plots them
    does not decode the file twice). Empty audio, or fewer samples than one FFT window (400, 25 ms: not one complete
    mel frame), raises ValueError naming it."""
    if not isinstance(model, Qwen2Audio):
        raise TypeError(f"answer() needs a Qwen2Audio model, got {type(model).__name__}")
    feats, mask = audio_inputs(audio, model.audio_tower.config.n_mels, model.audio_tower.window_seconds)
    n_tokens = int(encoder_output_lengths(mask.sum(-1))[1].sum())
    ids = torch.tensor([prompt_ids(n_tokens, question, model.config.audio_token_id, tokenizer)])
    model.eval()
    eos = model.lm.config.eos_token_id if tokenizer is None else tokenizer.eos_token_id
    dtype = next(model.parameters()).dtype
    tokens = generate_tokens(model, ids, feats.to(dtype), mask, max_new_tokens, eos, partial_yarn)
    decode = (tokenizer or ByteTokenizer()).decode
    if stream:
        return stream_text(tokens, decode)
    return decode(list(tokens))
