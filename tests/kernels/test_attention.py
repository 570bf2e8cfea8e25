"""Every attention path against attention_ref: outputs, log-sum-exp and all gradients (fp32, ≤ 1e-5)."""

import pytest
import torch

from zoo.kernels.attention import (
    AttentionMask,
    attention,
    attention_chunked,
    attention_ref,
    attention_sdpa,
    make_mask,
    merge_attention_partials,
    resolve_backend,
    segment_ids_from_cu_seqlens,
)

TOL = dict(atol=1e-5, rtol=1e-5)


def _inputs(b, hq, hkv, n, m, d, dtype=torch.float32):
    q = torch.randn(b, hq, n, d, dtype=dtype, requires_grad=True)
    k = torch.randn(b, hkv, m, d, dtype=dtype, requires_grad=True)
    v = torch.randn(b, hkv, m, d, dtype=dtype, requires_grad=True)
    return q, k, v


def _grads(fn, q, k, v, with_lse=True):
    """Outputs plus gradients of a random linear functional of out (and of the finite lse entries)."""
    out, lse = fn()
    g = torch.Generator().manual_seed(7)
    go = torch.randn(out.shape, generator=g)
    gl = torch.randn(lse.shape, generator=g)
    loss = (out * go).sum()
    if with_lse:
        loss = loss + (lse.masked_fill(torch.isinf(lse), 0.0) * gl).sum()
    grads = torch.autograd.grad(loss, (q, k, v), allow_unused=True)
    grads = [torch.zeros_like(t) if gr is None else gr for t, gr in zip((q, k, v), grads)]
    return out.detach(), lse.detach(), grads


def _packed_ids(b, n, lengths):
    ids = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    assert len(ids) == n
    return ids[None].expand(b, n).contiguous()


CASES = {
    # name: (b, hq, hkv, n, m, d, mask kwargs)
    "full": (2, 4, 4, 70, 70, 16, {}),
    "causal": (2, 4, 4, 100, 100, 16, dict(causal=True)),
    "causal_gqa": (2, 8, 2, 130, 130, 16, dict(causal=True)),
    "causal_kv_cache_offset": (1, 4, 2, 37, 150, 16, dict(causal=True)),
    "packed_segments": (2, 4, 2, 130, 130, 16, dict(causal=True, segment_ids=_packed_ids(2, 130, [31, 50, 1, 48]))),
    "bidirectional_segments": (1, 2, 2, 97, 97, 8, dict(segment_ids=_packed_ids(1, 97, [60, 37]))),
    "sliding_window": (1, 4, 4, 130, 130, 16, dict(causal=True, window=17)),
    "bidirectional_window": (1, 4, 4, 130, 130, 16, dict(window=9)),
    # Timer-XL style: 3 variables × 32 patches, variable dependency (all) ⊗ causal over patches
    "kronecker_mask_mod": (2, 2, 2, 96, 96, 8, dict(mask_mod=lambda qp, kp: kp % 32 <= qp % 32)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_chunked_matches_ref(case):
    b, hq, hkv, n, m, d, kw = CASES[case]
    q, k, v = _inputs(b, hq, hkv, n, m, d)
    mask = make_mask(n_q=n, n_k=m, **kw)
    ref = _grads(lambda: attention_ref(q, k, v, mask), q, k, v)
    # block sizes that do not divide the lengths, so ragged edge tiles are exercised
    got = _grads(lambda: attention_chunked(q, k, v, mask, block_q=32, block_k=48), q, k, v)
    torch.testing.assert_close(got[0], ref[0], **TOL)
    torch.testing.assert_close(got[1], ref[1], **TOL)
    for g_got, g_ref in zip(got[2], ref[2]):
        torch.testing.assert_close(g_got, g_ref, **TOL)


@pytest.mark.parametrize("case", list(CASES))
def test_sdpa_matches_ref(case):
    b, hq, hkv, n, m, d, kw = CASES[case]
    q, k, v = _inputs(b, hq, hkv, n, m, d)
    mask = make_mask(n_q=n, n_k=m, **kw)
    ref = _grads(lambda: attention_ref(q, k, v, mask), q, k, v, with_lse=False)
    got = _grads(lambda: (attention_sdpa(q, k, v, mask)[0], torch.zeros(b, hq, n)), q, k, v, with_lse=False)
    torch.testing.assert_close(got[0], ref[0], **TOL)
    for g_got, g_ref in zip(got[2], ref[2]):
        torch.testing.assert_close(g_got, g_ref, **TOL)
    with torch.no_grad():
        _, lse = attention_sdpa(q, k, v, mask, return_lse=True)
    torch.testing.assert_close(lse, ref[1], **TOL)


@pytest.mark.parametrize("backend", ["auto", "sdpa", "chunked", "ref"])
def test_entry_point_every_backend(backend):
    q, k, v = _inputs(1, 4, 2, 64, 64, 16)
    seg = _packed_ids(1, 64, [20, 44])
    want, want_lse = attention_ref(q, k, v, make_mask(causal=True, segment_ids=seg))
    with torch.no_grad():
        out, lse = attention(q, k, v, causal=True, segment_ids=seg, return_lse=True, backend=backend)
    torch.testing.assert_close(out, want, **TOL)
    torch.testing.assert_close(lse, want_lse, **TOL)


def test_cu_seqlens_equals_segment_ids():
    cu = torch.tensor([0, 10, 25, 40])
    ids = segment_ids_from_cu_seqlens(cu)
    assert ids.tolist() == [[0] * 10 + [1] * 15 + [2] * 15]
    q, k, v = _inputs(1, 2, 2, 40, 40, 8)
    a = attention(q, k, v, causal=True, cu_seqlens=cu, backend="chunked")
    b = attention(q, k, v, causal=True, segment_ids=ids, backend="ref")
    torch.testing.assert_close(a, b, **TOL)


def test_packed_documents_do_not_see_each_other():
    """Changing document 0 must leave document 1's outputs bit-identical."""
    q, k, v = _inputs(1, 2, 2, 60, 60, 8)
    seg = _packed_ids(1, 60, [25, 35])
    out1 = attention(q, k, v, causal=True, segment_ids=seg, backend="chunked")
    k2, v2 = k.detach().clone(), v.detach().clone()
    k2[:, :, :25] += 1.0
    v2[:, :, :25] -= 3.0
    out2 = attention(q, k2, v2, causal=True, segment_ids=seg, backend="chunked")
    assert torch.equal(out1[:, :, 25:], out2[:, :, 25:])
    assert not torch.allclose(out1[:, :, :25], out2[:, :, :25])


def test_rows_without_visible_keys_give_zero_and_minus_inf():
    q, k, v = _inputs(1, 2, 2, 8, 8, 4)
    mask = AttentionMask(mask_mod=lambda qp, kp: (qp >= 4) & (kp <= qp))  # queries 0..3 see nothing
    for fn in (attention_ref, attention_chunked):
        out, lse = fn(q, k, v, mask)
        assert torch.equal(out[:, :, :4], torch.zeros_like(out[:, :, :4]))
        assert torch.isinf(lse[:, :, :4]).all() and (lse[:, :, :4] < 0).all()
        assert torch.isfinite(out).all()


def test_merge_partials_equals_full_attention():
    """The ring-attention identity: attention over disjoint key sets merges through the log-sum-exp."""
    q, k, v = _inputs(2, 4, 2, 32, 96, 8)
    full, full_lse = attention_ref(q, k, v)
    parts = [attention_chunked(q, k[:, :, s], v[:, :, s]) for s in (slice(0, 40), slice(40, 96))]
    out, lse = merge_attention_partials([p[0] for p in parts], [p[1] for p in parts])
    torch.testing.assert_close(out, full, **TOL)
    torch.testing.assert_close(lse, full_lse, **TOL)


def test_auto_never_builds_dense_mask_for_long_sequences():
    q = torch.zeros(1, 1, 4096, 8)
    seg_mask = make_mask(causal=True, segment_ids=torch.zeros(1, 4096, dtype=torch.long))
    assert resolve_backend("auto", q, q, seg_mask, need_lse_grad=False) == "chunked"
    assert resolve_backend("auto", q, q, make_mask(causal=True), need_lse_grad=False) == "sdpa"
    assert resolve_backend("auto", q, q, make_mask(causal=True), need_lse_grad=True) == "chunked"


def test_sdpa_refuses_differentiable_lse():
    q, k, v = _inputs(1, 2, 2, 16, 16, 8)
    with pytest.raises(ValueError, match="log-sum-exp without gradient"):
        attention(q, k, v, causal=True, return_lse=True, backend="sdpa")


def test_unavailable_backend_raises():
    q, k, v = _inputs(1, 2, 2, 16, 16, 8)
    with pytest.raises(RuntimeError, match="'flash' needs the flash-attn package and CUDA"):
        attention(q, k, v, backend="flash")
    with pytest.raises(ValueError, match="unknown attention backend 'fast'"):
        attention(q, k, v, backend="fast")


def test_bad_shapes_raise_clear_errors():
    q = torch.randn(1, 3, 8, 4)
    k = torch.randn(1, 2, 8, 4)
    with pytest.raises(ValueError, match=r"query heads \(3\) must be a multiple of key/value heads \(2\)"):
        attention(q, k, k)
    with pytest.raises(ValueError, match="segment_ids has length 5 but there are 8 queries"):
        attention(torch.randn(1, 2, 8, 4), k, k, segment_ids=torch.zeros(1, 5, dtype=torch.long))


def test_bf16_chunked_close_to_fp32_ref():
    q, k, v = _inputs(1, 4, 2, 80, 80, 16)
    ref, _ = attention_ref(q, k, v, make_mask(causal=True))
    out, _ = attention_chunked(q.bfloat16(), k.bfloat16(), v.bfloat16(), make_mask(causal=True), block_q=32,
                               block_k=32)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=2e-2, rtol=2e-2)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("case", ["causal", "causal_gqa", "causal_kv_cache_offset", "packed_segments",
                                  "sliding_window"])
def test_flash_matches_ref_on_cuda(case):
    pytest.importorskip("flash_attn", reason="needs the [cuda] extra (flash-attn)")
    b, hq, hkv, n, m, d, kw = CASES[case]
    if "segment_ids" in kw:
        b, kw = 1, {**kw, "segment_ids": kw["segment_ids"][:1]}
    q, k, v = (t.detach().cuda().bfloat16().requires_grad_() for t in _inputs(b, hq, hkv, n, m, d))
    mask = make_mask(n_q=n, n_k=m, **{key: (val.cuda() if torch.is_tensor(val) else val) for key, val in kw.items()})
    want, _ = attention_ref(q.float(), k.float(), v.float(), mask)
    got = attention(q, k, v, mask=mask, backend="flash")
    torch.testing.assert_close(got.float(), want, atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("case", ["causal_gqa", "packed_segments", "causal_kv_cache_offset"])
def test_sink_matches_ref_with_an_extra_zero_value_key(case):
    b, hq, hkv, n, m, d, kw = CASES[case]
    q, k, v = _inputs(b, hq, hkv, n, m, d)
    sink = torch.randn(hq, requires_grad=True)
    mask = make_mask(n_q=n, n_k=m, **kw)

    def run(fn):
        out = fn()
        go = torch.randn(out.shape, generator=torch.Generator().manual_seed(3))
        grads = torch.autograd.grad((out * go).sum(), (q, k, v, sink))
        return out.detach(), grads

    want = run(lambda: attention_ref(q, k, v, mask, sink=sink)[0])
    for backend in ("chunked", "auto", "ref"):
        got = run(lambda: attention(q, k, v, mask=mask, sink=sink, backend=backend))
        torch.testing.assert_close(got[0], want[0], **TOL)
        for g_got, g_ref in zip(got[1], want[1]):
            torch.testing.assert_close(g_got, g_ref, **TOL)
    with torch.no_grad():  # inference may take the fused kernel's (non-differentiable) lse
        torch.testing.assert_close(attention(q, k, v, mask=mask, sink=sink, backend="sdpa"), want[0], **TOL)


def test_large_sink_silences_a_head():
    q, k, v = _inputs(1, 2, 2, 16, 16, 8)
    out = attention(q, k, v, causal=True, sink=torch.tensor([40.0, -40.0]))
    assert out[:, 0].abs().max() < 1e-10
    torch.testing.assert_close(out[:, 1], attention_ref(q, k, v, make_mask(causal=True))[0][:, 1], **TOL)
