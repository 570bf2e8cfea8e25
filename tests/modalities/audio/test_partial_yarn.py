"""Partial YaRN and VLAT positions against the direct formula (scb-10x/partial-yarn): high-frequency pairs keep the
original positions, low-frequency pairs squeeze a long audio span into the 750-token window, text after it resumes
at s + 750, the span's cos/sin are divided by √T; short spans are untouched."""

import math
import random

import pytest
import torch

from zoo.modalities.audio.partial_yarn import (VLAT_FACTORS, PartialYarnConfig, draw_virtual_length,
                                               partial_yarn_inputs, remapped_positions)
from zoo.positions import RotaryEmbedding


def _mask(*parts):
    """_mask((5, False), (2000, True), (7, False)) → (N,) bool."""
    return torch.cat([torch.full((n, ), a) for n, a in parts])


def test_long_span_is_squeezed_into_the_window_in_low_frequency_pairs_only():
    is_audio = _mask((5, False), (2000, True), (7, False))
    pos, scale = partial_yarn_inputs(is_audio[None], 16, PartialYarnConfig(start_dim=8, temperature=1.2))
    n = is_audio.numel()
    original = torch.arange(n, dtype=torch.float32)
    remapped = torch.cat([torch.arange(5.0), torch.linspace(5, 5 + 749, 2000, dtype=torch.float64).float(),
                          5 + 750 + torch.arange(7.0)])
    assert pos.shape == (1, n, 16)
    torch.testing.assert_close(pos[0, :, :8], original[:, None].expand(n, 8), rtol=0, atol=0)
    torch.testing.assert_close(pos[0, :, 8:], remapped[:, None].expand(n, 8), rtol=0, atol=1e-4)
    want_scale = torch.where(is_audio, 1 / math.sqrt(1.2), 1.0)
    torch.testing.assert_close(scale[0], want_scale)
    # the rotary embedding fed these positions rotates pair i by position × inv_freq[i], scaled on the span
    rope = RotaryEmbedding(32)
    cos, sin = rope(pos, scale)
    freqs = torch.cat([original[:, None] * rope.inv_freq[:8], remapped[:, None] * rope.inv_freq[8:]], 1)
    emb = torch.cat([freqs, freqs], 1)
    torch.testing.assert_close(cos[0], emb.cos() * want_scale[:, None], atol=1e-4, rtol=0)
    torch.testing.assert_close(sin[0], emb.sin() * want_scale[:, None], atol=1e-4, rtol=0)


def test_spans_within_the_window_are_untouched():
    is_audio = _mask((3, False), (750, True), (4, False), (100, True), (2, False))
    pos, scale = partial_yarn_inputs(is_audio[None], 16, PartialYarnConfig())
    torch.testing.assert_close(pos[0], torch.arange(is_audio.numel()).float()[:, None].expand(-1, 16))
    assert torch.equal(scale, torch.ones_like(scale))


def test_two_long_spans_each_take_one_window_and_shift_what_follows():
    is_audio = _mask((2, False), (1500, True), (3, False), (3000, True), (1, False))
    got = remapped_positions(is_audio, [750, 750])
    lin = lambda a, b, n: torch.linspace(a, b, n, dtype=torch.float64).float()  # noqa: E731
    want = torch.cat([torch.arange(2.0), lin(2, 751, 1500), 752 + torch.arange(3.0), lin(755, 1504, 3000),
                      torch.tensor([1505.0])])
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)


def test_vlat_spreads_a_30s_span_over_its_virtual_length():
    is_audio = _mask((4, False), (750, True), (5, False))
    pos, scale = partial_yarn_inputs(is_audio[None].repeat(2, 1), 8, PartialYarnConfig(start_dim=4),
                                     virtual_lengths=[3750, None])
    want = torch.cat([torch.arange(4.0), torch.linspace(4, 4 + 3749, 750, dtype=torch.float64).float(),
                      4 + 3750 + torch.arange(5.0)])
    torch.testing.assert_close(pos[0, :, 4], want, atol=1e-3, rtol=0)
    torch.testing.assert_close(pos[0, :, 0], torch.arange(759.0))
    torch.testing.assert_close(pos[1, :, 4], torch.arange(759.0))  # no virtual length: as is
    assert scale[0, 10] < 1 and scale[1, 10] == 1
    rng = random.Random(0)
    drawn = {draw_virtual_length(rng) for _ in range(200)}
    assert drawn == {750 * f for f in VLAT_FACTORS} and max(drawn) == 18750
    assert {draw_virtual_length(rng, cap=7500) for _ in range(100)} == {750, 3750, 7500}
    with pytest.raises(ValueError, match="no VLAT factor"):
        draw_virtual_length(rng, cap=100)


def test_config_is_checked():
    with pytest.raises(ValueError, match="partial_yarn.temperature must be > 0"):
        PartialYarnConfig(temperature=0)
