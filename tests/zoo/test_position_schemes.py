"""Position-id schemes (zoo.positions, registry POSITIONS): the vectorised twins equal their one-token-at-a-time
references, stay fp32 under a bf16 default dtype, and run at LongVA's context in milliseconds."""

from __future__ import annotations

import time

import pytest
import torch

from zoo.positions import (media_spans, plain_positions, position_ids, remapped_positions, v2pe_positions,
                           v2pe_positions_ref)
from zoo.registry import POSITIONS


def random_layout(n: int, seed: int, media_first: bool = False) -> torch.Tensor:
    """Text and media runs of random lengths (1..300), as frames spliced into a prompt."""
    g = torch.Generator().manual_seed(seed)
    flags, media = [], media_first
    while len(flags) < n:
        flags += [media] * int(torch.randint(1, 300, (1,), generator=g))
        media = not media
    return torch.tensor(flags[:n])


def spans_ref(is_media):
    spans, start = [], None
    for i, f in enumerate(is_media.tolist() + [False]):
        if f and start is None:
            start = i
        elif not f and start is not None:
            spans.append((start, i))
            start = None
    return spans


@pytest.mark.parametrize("delta", [1 / 16, 0.25, 0.5, 1.0])
@pytest.mark.parametrize("media_first", [False, True])
def test_v2pe_equals_its_reference_exactly_for_dyadic_steps(delta, media_first):
    for seed in range(5):
        is_media = random_layout(3000, seed, media_first)
        assert torch.equal(v2pe_positions(is_media, delta), v2pe_positions_ref(is_media, delta))


@pytest.mark.parametrize("delta", [0.1, 1 / 3, 0.7])
def test_v2pe_equals_its_reference_for_inexact_steps(delta):
    # 30 × 0.1 is 3.0000000000000004 by multiplication and 2.9999999999999996 by repeated addition; both paths end
    # such a run on the integer 3, so the text after it resumes at 4 in both
    for seed in range(5):
        is_media = random_layout(3000, seed)
        got, ref = v2pe_positions(is_media, delta), v2pe_positions_ref(is_media, delta)
        torch.testing.assert_close(got, ref, rtol=0, atol=1e-3)
        text = ~is_media
        assert torch.equal(got[text], ref[text])  # text positions are integers: any ceil flip would show here
    run = torch.tensor([False] + [True] * 31 + [False])
    assert v2pe_positions(run, 0.1)[-1].item() == 5.0 == v2pe_positions_ref(run, 0.1)[-1].item()  # 1 + 30×0.1 = 4


def test_v2pe_edge_layouts():
    for flags in ([], [True], [False], [True] * 5, [False] * 5, [True, False], [False, True]):
        is_media = torch.tensor(flags, dtype=torch.bool)
        assert torch.equal(v2pe_positions(is_media, 0.25), v2pe_positions_ref(is_media, 0.25)), flags


def test_position_schemes_stay_fp32_under_a_bf16_default_dtype():
    is_media = random_layout(20000, 0)
    torch.set_default_dtype(torch.bfloat16)
    try:
        for name in ("plain", "v2pe", "span_remap"):
            params = {"v2pe": {"delta": 0.25}, "span_remap": {"targets": [None] * 100}}.get(name, {})
            pos = position_ids(name, is_media, **params)
            assert pos.dtype == torch.float32, name
        pos = position_ids("v2pe", is_media, delta=0.25)
        assert len(torch.unique(pos)) == len(pos)  # fractional steps past 256 stay distinct
    finally:
        torch.set_default_dtype(torch.float32)


def test_v2pe_at_longva_context_takes_milliseconds():
    is_media = random_layout(224_000, 1)
    t0 = time.perf_counter()
    pos = v2pe_positions(is_media, 0.25)
    vectorised = time.perf_counter() - t0
    assert pos.shape == (224_000,)
    assert vectorised < 0.5, f"{vectorised:.3f} s for 224K tokens"
    torch.testing.assert_close(pos[:5000], v2pe_positions_ref(is_media[:5000], 0.25), rtol=0, atol=0)


def test_media_spans_and_span_remapping():
    for seed in range(5):
        is_media = random_layout(2000, seed, media_first=bool(seed % 2))
        assert media_spans(is_media) == spans_ref(is_media)
    is_media = torch.tensor([False] * 3 + [True] * 10 + [False] * 2 + [True] * 4 + [False])
    pos = remapped_positions(is_media, [5, None])
    torch.testing.assert_close(pos[3:13], torch.linspace(3, 7, 10))  # 10 tokens over 5 positions
    assert pos[13:].tolist() == [8, 9, 10, 11, 12, 13, 14]  # what follows shifts by 5 − 10
    assert torch.equal(remapped_positions(is_media, [None, None]), plain_positions(is_media))


def test_a_new_scheme_registers_by_name():
    @POSITIONS.register("every_other")
    def every_other(is_media, stride: int = 2):
        return torch.arange(is_media.shape[0], dtype=torch.float32) * stride

    try:
        assert position_ids("every_other", torch.zeros(4, dtype=torch.bool)).tolist() == [0, 2, 4, 6]
        with pytest.raises(KeyError, match="unknown position scheme 'nope'; registered: .*v2pe"):
            position_ids("nope", torch.zeros(4, dtype=torch.bool))
    finally:
        POSITIONS._entries.pop("every_other")
