"""The synthetic audio needle: DTMF digits at the keypad's frequency pairs, a haystack that never sounds them, the
needle placed at the asked depth and louder than everything around it, prompts with one audio token per encoder
token, reproducible evaluation sets."""

import numpy as np
import pytest
import torch

from zoo.modalities.audio.needle import (DTMF_COLS, DTMF_ROWS, QUESTION, NeedleSet, NeedleTask, collate,
                                         dtmf_frequencies, encode_prompt, insert_needle, make_haystack, render_code)
from zoo.tokenizers import ByteTokenizer


def _peaks(x, n=2):
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / 16000)
    order = np.argsort(spectrum)[::-1]
    found = []
    for i in order:
        if all(abs(freqs[i] - f) > 30 for f in found):
            found.append(freqs[i])
        if len(found) == n:
            return sorted(found)


@pytest.mark.parametrize("digit", list("0123456789"))
def test_each_digit_sounds_its_keypad_frequency_pair(digit):
    tone = render_code(digit)[: int(0.2 * 16000)]
    low, high = dtmf_frequencies(digit)
    got = _peaks(tone)
    assert abs(got[0] - low) < 6 and abs(got[1] - high) < 6, (digit, got)


def test_haystack_avoids_dtmf_frequencies_and_needle_stands_out():
    rng = np.random.default_rng(0)
    hay = make_haystack(30, rng)
    assert hay.dtype == np.float32 and hay.shape == (480000,)
    spectrum = np.abs(np.fft.rfft(hay))
    freqs = np.fft.rfftfreq(len(hay), 1 / 16000)
    near = np.zeros_like(freqs, dtype=bool)
    for f in DTMF_ROWS + DTMF_COLS:
        near |= np.abs(freqs - f) < 20
    assert spectrum[near].max() < 0.5 * spectrum[(freqs > 200) & (freqs < 3000)].max()
    code = render_code("123")
    mixed, at = insert_needle(hay, code, 0.25)
    assert at == round(0.25 * (480000 - len(code)))
    rms = np.sqrt((mixed[: 480000 // 1600 * 1600].reshape(-1, 1600) ** 2).mean(1))  # per 0.1 s
    frame = np.arange(len(rms)) * 1600
    in_needle = (frame >= at) & (frame + 1600 <= at + len(code))
    assert rms[in_needle].max() > 2 * rms[~in_needle & ((frame + 1600 <= at) | (frame >= at + len(code)))].max()
    with pytest.raises(ValueError, match="does not fit"):
        insert_needle(hay[:100], code, 0.5)
    with pytest.raises(ValueError, match="'A' is not a DTMF key"):
        dtmf_frequencies("A")


def test_prompt_has_one_audio_token_per_encoder_token_and_labels_on_the_code():
    tok = ByteTokenizer()
    ids, labels = encode_prompt(750, "407", 259)
    q = 1 + 750 + len(QUESTION.encode())
    assert ids[0] == tok.bos_token_id and (ids[1:751] == 259).all() and len(ids) == q + 4
    assert labels[:q].eq(-100).all() and labels[q:].tolist() == [52, 48, 55, tok.eos_token_id]
    sample = NeedleTask(seconds=45).sample(0.5, np.random.default_rng(0))
    assert sample["input_features"].shape == (2, 128, 3000)  # 30 s + 15 s
    assert int((sample["input_ids"] == 259).sum()) == 750 + 375
    assert sample["feature_attention_mask"].sum(1).tolist() == [3000, 1500]


def test_evaluation_set_is_reproducible_and_collates():
    task = NeedleTask(seconds=2, code_length=2, window_seconds=2)
    data = NeedleSet(task, 2, depths=(0.0, 1.0), n_per_depth=2)
    a, b = data[3], data[3]
    assert a["code"] == b["code"] and torch.equal(a["input_features"], b["input_features"])
    assert [data[i]["depth"].item() for i in range(4)] == [0.0, 0.0, 1.0, 1.0]
    batch = collate([data[0], NeedleTask(seconds=3, window_seconds=2).sample(0.5, np.random.default_rng(1))])
    assert batch["input_features"].shape == (3, 128, 200)  # 1 window + 2 windows
    assert batch["attention_mask"][0].sum() < batch["attention_mask"][1].sum()
    assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()
