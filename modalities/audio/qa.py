"""Audio question answering: ``answer(model, "talk.flac", "What is said?")``.

The file is read with :func:`load_audio` (an unreadable file raises, naming it), cut into 30 s windows and encoded;
audio longer than the model's 750-token window gets Partial YaRN positions when the model has them configured
(``partial_yarn=True/False`` forces it). Decoding is greedy with a KV cache; new tokens continue both position tracks
(original positions in the high-frequency pairs, remapped ones in the low-frequency pairs). ``stream=True`` returns an
iterator over text pieces as they are generated (what the Gradio demo shows).

Prompting: byte-level zoo models (vocab 260) get ``[BOS, <audio>…, question bytes]`` as in needle training; a model
with a Hugging Face tokenizer gets Qwen2-Audio-Instruct's chat template (``Audio 1: <|audio_bos|><|AUDIO|>…
<|audio_eos|>`` then the question).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch

from ..text.tokenizer import ByteTokenizer, stream_text
from .features import audio_features
from .io import load_audio
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


def answer(model: Qwen2Audio, audio, question: str, max_new_tokens: int = 64, tokenizer=None,
           stream: bool = False, partial_yarn: bool | None = None):
    """Answer ``question`` about ``audio``: the text, or an iterator of text pieces with stream=True.

    ``audio`` is a file path, or mono 16 kHz samples :func:`load_audio` already returned (so a caller that plots them
    does not decode the file twice)."""
    if not isinstance(model, Qwen2Audio):
        raise TypeError(f"answer() needs a Qwen2Audio model, got {type(model).__name__}")
    samples = load_audio(audio) if isinstance(audio, (str, Path)) else audio
    feats, mask = audio_features(samples, model.audio_tower.config.n_mels, model.audio_tower.window_seconds)
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
