"""Tokenizers shared by several modalities. Byte-level: every UTF-8 byte is a token, plus BOS/EOS/PAD; needs no
vocabulary file or download (text, and the text of video and audio QA / needle prompts)."""

from __future__ import annotations

from collections.abc import Iterator


class ByteTokenizer:
    bos_token_id = 256
    eos_token_id = 257
    pad_token_id = 258
    vocab_size = 260  # 256 bytes + 3 specials, one spare

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        ids = list(text.encode("utf-8"))
        return ([self.bos_token_id] if bos else []) + ids + ([self.eos_token_id] if eos else [])

    def decode(self, ids) -> str:
        return bytes(int(i) for i in ids if 0 <= int(i) < 256).decode("utf-8", errors="replace")


def stream_text(tokens: Iterator[int], decode) -> Iterator[str]:
    """Text pieces as tokens arrive; multi-byte characters are emitted once complete."""
    done: list[int] = []
    shown = ""
    for t in tokens:
        done.append(t)
        text = decode(done)
        if text.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for its next byte
            continue
        yield text[len(shown):]
        shown = text
