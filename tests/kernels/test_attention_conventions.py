"""flash-attn's conventions on every attention path: packed sequences with different query and key lengths
(``cu_seqlens_q`` / ``cu_seqlens_k``, causal and windows aligned bottom-right within each sequence), more queries than
keys, ``window_size=(left, right)`` in full, and bf16 held to flash-attn's rule.

The oracle below is written the way flash-attn's tests write ``attention_ref``: one sequence at a time, the local mask
from row/column indices with ``sk - sq`` alignment, never through ``zoo``'s :class:`AttentionMask`.
"""

import pytest
import torch

from zoo.kernels.attention import (
    AttentionMask,
    attention,
    attention_chunked,
    attention_ref,
    attention_sdpa,
    attention_varlen,
    make_mask,
    segment_ids_from_cu_seqlens,
    varlen_cu_seqlens,
)

TOL = dict(atol=1e-5, rtol=1e-5)  # fp32
BACKENDS = ("ref", "sdpa", "chunked", "auto")


def _hidden(sq: int, sk: int, causal: bool, window_size: tuple[int, int]) -> torch.Tensor:
    """(sq, sk) True where flash-attn hides the pair: bottom-right alignment, -1 = unbounded side."""
    left, right = window_size
    if causal:
        right = 0
    row = torch.arange(sq)[:, None]
    col = torch.arange(sk)[None, :]
    hidden = torch.zeros(sq, sk, dtype=torch.bool)
    if right >= 0:
        hidden |= col > row + sk - sq + right
    if left >= 0:
        hidden |= col < row + sk - sq - left
    return hidden


def _one_sequence(q, k, v, causal, window_size, upcast=True):
    """q (Hq, sq, D), k/v (Hkv, sk, D) → out (Hq, sq, D), lse (Hq, sq) fp32."""
    dtype = torch.float32 if upcast else q.dtype
    groups = q.shape[0] // k.shape[0]
    k, v = k.repeat_interleave(groups, 0).to(dtype), v.repeat_interleave(groups, 0).to(dtype)
    scores = (q.to(dtype) * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)
    hidden = _hidden(q.shape[1], k.shape[1], causal, window_size)
    scores = scores.masked_fill(hidden, float("-inf"))
    lse = torch.logsumexp(scores.float(), -1)
    probs = torch.softmax(scores.float(), -1).to(dtype)
    probs = probs.masked_fill(hidden.all(-1, keepdim=True), 0.0)  # a row that sees no key outputs 0
    return (probs @ v).to(q.dtype), lse


def flash_style_ref(q, k, v, cu_q, cu_k, causal=False, window_size=(-1, -1), upcast=True):
    """flash-attn varlen layout: q (total_q, Hq, D), k/v (total_k, Hkv, D) → out (total_q, Hq, D), lse (Hq, total_q)."""
    outs, lses = [], []
    for i in range(len(cu_q) - 1):
        sl_q, sl_k = slice(int(cu_q[i]), int(cu_q[i + 1])), slice(int(cu_k[i]), int(cu_k[i + 1]))
        o, l = _one_sequence(q[sl_q].transpose(0, 1), k[sl_k].transpose(0, 1), v[sl_k].transpose(0, 1), causal,
                             window_size, upcast)
        outs.append(o.transpose(0, 1))
        lses.append(l)
    return torch.cat(outs, 0), torch.cat(lses, 1)


def batched_ref(q, k, v, causal=False, window_size=(-1, -1), upcast=True):
    """(B, H, N, D) inputs, each row one sequence → out (B, Hq, N, D), lse (B, Hq, N)."""
    res = [_one_sequence(q[b], k[b], v[b], causal, window_size, upcast) for b in range(q.shape[0])]
    return torch.stack([r[0] for r in res]), torch.stack([r[1] for r in res])


def _leaf(*shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).to(dtype).requires_grad_()


def _cu(lengths):
    return torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)


def _outputs_and_grads(fn, inputs, seed=11):
    """out, lse and the gradients of a random functional of out and of lse's finite entries."""
    out, lse = fn()
    g = torch.Generator().manual_seed(seed)
    go = torch.randn(out.shape, generator=g).to(out.dtype)
    gl = torch.randn(lse.shape, generator=g)
    loss = (out.float() * go.float()).sum() + (lse.masked_fill(torch.isinf(lse), 0.0) * gl).sum()
    grads = torch.autograd.grad(loss, inputs, allow_unused=True)
    grads = [torch.zeros_like(t) if gr is None else gr for t, gr in zip(inputs, grads)]
    return out.detach(), lse.detach(), grads


# Per-sequence (query, key) lengths: a chunk of a longer document (q < k), a fresh document (q = k), more queries than
# keys (q > k: causal rows before the first key see nothing), a sequence with no queries and one with no keys.
VARLEN = {
    "prefill_chunks": ([5, 17, 3], [12, 17, 30]),
    "q_longer": ([9, 6, 4], [4, 6, 11]),
    "empty_sequences": ([7, 0, 5, 3], [9, 6, 5, 0]),
}
WINDOWS = {"none": (-1, -1), "left": (4, -1), "right": (-1, 2), "asymmetric": (6, 3), "zero": (0, 0)}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidirectional"])
@pytest.mark.parametrize("window", list(WINDOWS))
@pytest.mark.parametrize("lengths", list(VARLEN))
def test_varlen_matches_flash_attn_semantics(lengths, window, causal, backend):
    len_q, len_k = VARLEN[lengths]
    cu_q, cu_k = _cu(len_q), _cu(len_k)
    q, k, v = _leaf(sum(len_q), 4, 8, seed=1), _leaf(sum(len_k), 2, 8, seed=2), _leaf(sum(len_k), 2, 8, seed=3)
    ws = WINDOWS[window]
    want = _outputs_and_grads(lambda: flash_style_ref(q, k, v, cu_q, cu_k, causal, ws), (q, k, v))
    grad_lse = backend in ("ref", "chunked", "auto")  # sdpa's lse carries no gradient (it says so)

    def run():
        if backend == "sdpa":
            out = attention_varlen(q, k, v, cu_q, cu_k, causal=causal, window_size=ws, backend="sdpa")
            with torch.no_grad():
                _, lse = attention_varlen(q, k, v, cu_q, cu_k, causal=causal, window_size=ws, return_lse=True,
                                          backend="sdpa")
            return out, lse
        return attention_varlen(q, k, v, cu_q, cu_k, max(len_q), max(len_k), causal=causal, window_size=ws,
                                return_lse=True, backend=backend)

    got = _outputs_and_grads(run, (q, k, v))
    torch.testing.assert_close(got[0], want[0], **TOL)
    torch.testing.assert_close(got[1], want[1], **TOL)  # -inf where a row sees no key, on both sides
    if not grad_lse:
        want = _outputs_and_grads(lambda: (flash_style_ref(q, k, v, cu_q, cu_k, causal, ws)[0],
                                           torch.zeros(4, sum(len_q))), (q, k, v))
    for g_got, g_want in zip(got[2], want[2]):
        torch.testing.assert_close(g_got, g_want, **TOL)


def test_varlen_differs_from_one_alignment_for_the_whole_row():
    """The bug class this guards: aligning once to the end of the packed row is wrong when lengths differ."""
    cu_q, cu_k = _cu([3, 5]), _cu([10, 8])
    q, k, v = _leaf(8, 2, 8), _leaf(18, 2, 8, seed=1), _leaf(18, 2, 8, seed=2)
    want, _ = flash_style_ref(q, k, v, cu_q, cu_k, causal=True)
    got = attention_varlen(q, k, v, cu_q, cu_k, causal=True, backend="chunked")
    torch.testing.assert_close(got, want, **TOL)
    seg_q, seg_k = segment_ids_from_cu_seqlens(cu_q), segment_ids_from_cu_seqlens(cu_k)
    whole_row = AttentionMask(mask_mod=lambda qp, kp: kp <= qp, q_segment_ids=seg_q, kv_segment_ids=seg_k)
    wrong, _ = attention_ref(q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None], whole_row)
    assert (wrong[0].transpose(0, 1) - want).abs().max() > 0.1


def test_segment_ids_with_kv_segment_ids_are_the_varlen_semantics():
    """The same packed batch given as segment ids (B > 1 rows, KV-cache style kv_segment_ids) and as cu_seqlens."""
    len_q, len_k = [[4, 6], [3, 7]], [[9, 6], [3, 12]]
    q = _leaf(2, 4, 10, 8).detach()
    k, v = _leaf(2, 2, 15, 8, seed=1).detach(), _leaf(2, 2, 15, 8, seed=2).detach()
    seg_q = torch.stack([torch.repeat_interleave(torch.arange(2), torch.tensor(lq)) for lq in len_q])
    seg_k = torch.stack([torch.repeat_interleave(torch.arange(2), torch.tensor(lk)) for lk in len_k])
    for backend in BACKENDS:
        got = attention(q, k, v, causal=True, window_size=(5, -1), segment_ids=seg_q, kv_segment_ids=seg_k,
                        backend=backend)
        for b in range(2):
            want, _ = flash_style_ref(q[b].transpose(0, 1), k[b].transpose(0, 1), v[b].transpose(0, 1),
                                      _cu(len_q[b]), _cu(len_k[b]), causal=True, window_size=(5, -1))
            torch.testing.assert_close(got[b].transpose(0, 1), want, **TOL)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidirectional"])
@pytest.mark.parametrize("window", ["none", "asymmetric", "left"])
def test_more_queries_than_keys(backend, causal, window):
    q, k, v = _leaf(2, 4, 41, 16), _leaf(2, 2, 17, 16, seed=1), _leaf(2, 2, 17, 16, seed=2)
    ws = WINDOWS[window]
    want = batched_ref(q, k, v, causal, ws)
    with torch.no_grad():
        out, lse = attention(q, k, v, causal=causal, window_size=ws, return_lse=True, backend=backend)
    torch.testing.assert_close(out, want[0], **TOL)
    torch.testing.assert_close(lse, want[1], **TOL)
    if causal:  # the first 41 - 17 = 24 rows sit before every key
        assert torch.equal(out[:, :, :24], torch.zeros_like(out[:, :, :24]))
        assert torch.isneginf(lse[:, :, :24]).all()
    out = attention(q, k, v, causal=causal, window_size=ws, backend=backend)
    go = torch.randn(out.shape, generator=torch.Generator().manual_seed(5))
    grads = torch.autograd.grad((out * go).sum(), (q, k, v))
    want_grads = torch.autograd.grad((want[0] * go).sum(), (q, k, v))
    for g_got, g_want in zip(grads, want_grads):
        torch.testing.assert_close(g_got, g_want, **TOL)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n,m", [(64, 64), (23, 70)])
@pytest.mark.parametrize("window", ["left", "right", "asymmetric", "zero"])
def test_window_size_in_full(backend, n, m, window):
    """Asymmetric, one-sided and zero windows, bidirectional, on every path (and a KV-cache offset)."""
    q, k, v = _leaf(1, 2, n, 8), _leaf(1, 2, m, 8, seed=1), _leaf(1, 2, m, 8, seed=2)
    want, want_lse = batched_ref(q, k, v, False, WINDOWS[window])
    with torch.no_grad():
        out, lse = attention(q, k, v, window_size=WINDOWS[window], return_lse=True, backend=backend)
    torch.testing.assert_close(out, want, **TOL)
    torch.testing.assert_close(lse, want_lse, **TOL)


def test_window_width_is_flash_attn_window_size():
    """``window=w`` (the zoo's width) is ``window_size=(w-1, w-1)``, or ``(w-1, 0)`` with causal."""
    assert make_mask(window=9) == make_mask(window_size=(8, 8))
    assert make_mask(window=9, causal=True) == make_mask(window_size=(8, 0), causal=True)
    assert make_mask(window_size=(8, 5), causal=True).window_right == 0  # causal wins, as in flash-attn


def test_chunked_skips_tiles_with_per_sequence_positions():
    """Small tiles over packed sequences: skipped tiles must not change the result, and must be skipped."""
    len_q, len_k = [40, 30, 50], [90, 30, 60]
    cu_q, cu_k = _cu(len_q), _cu(len_k)
    q, k, v = _leaf(120, 2, 8).detach(), _leaf(180, 2, 8, seed=1).detach(), _leaf(180, 2, 8, seed=2).detach()
    mask = make_mask(causal=True, window_size=(7, -1), cu_seqlens_q=cu_q, cu_seqlens_k=cu_k, n_q=120, n_k=180)
    qb, kb, vb = (t.transpose(0, 1)[None] for t in (q, k, v))
    out, _ = attention_chunked(qb, kb, vb, mask, block_q=8, block_k=8)
    want, _ = flash_style_ref(q, k, v, cu_q, cu_k, True, (7, -1))
    torch.testing.assert_close(out[0].transpose(0, 1), want, **TOL)
    tiles = [mask.tile(q0, q0 + 8, k0, min(k0 + 8, 180), 60) for q0 in range(0, 120, 8) for k0 in range(0, 180, 8)]
    skipped = sum(t is False for t in tiles)
    assert skipped > 0.8 * len(tiles)  # a window of 8 touches few 8×8 tiles


def test_varlen_cu_seqlens_round_trip():
    """Segment ids of a batch → flash-attn's cu_seqlens over the flattened batch, keeping empty sequences."""
    seg_q = torch.tensor([[0, 0, 2, 2, 2], [1, 1, 1, 1, 1]])
    seg_k = torch.tensor([[0, 1, 1, 2, 2, 2, 2], [0, 0, 1, 1, 1, 1, 1]])
    cu_q, cu_k, max_q, max_k = varlen_cu_seqlens(seg_q, seg_k)
    assert cu_q.tolist() == [0, 2, 2, 5, 5, 10] and cu_k.tolist() == [0, 1, 3, 7, 9, 14]
    assert (max_q, max_k) == (5, 5)
    with pytest.raises(ValueError, match="segment ids that do not decrease along each row"):
        varlen_cu_seqlens(torch.tensor([[1, 0]]), torch.tensor([[0, 1]]))


def test_bad_varlen_arguments_raise_clear_errors():
    q = torch.randn(1, 2, 8, 4)
    k = torch.randn(1, 2, 10, 4)
    with pytest.raises(ValueError, match="give cu_seqlens_q and cu_seqlens_k together"):
        attention(q, k, k, cu_seqlens_q=_cu([8]))
    with pytest.raises(ValueError, match="cu_seqlens_q has 1 sequences but cu_seqlens_k has 2"):
        attention(q, k, k, cu_seqlens_q=_cu([8]), cu_seqlens_k=_cu([4, 6]))
    with pytest.raises(ValueError, match="cu_seqlens_k ends at 9 but the packed sequence has 10 tokens"):
        attention(q, k, k, cu_seqlens_q=_cu([3, 5]), cu_seqlens_k=_cu([4, 5]))
    with pytest.raises(ValueError, match="cu_seqlens_q must start at 0"):
        attention(q, k, k, cu_seqlens_q=torch.tensor([1, 8]), cu_seqlens_k=_cu([10]))
    with pytest.raises(ValueError, match=r"give either window \(a width\) or window_size"):
        attention(q, k, k, window=4, window_size=(3, 3))
    with pytest.raises(ValueError, match=r"window_size entries must be ≥ 0, or -1 for unbounded; got \(-2, 0\)"):
        attention(q, k, k, window_size=(-2, 0))
    with pytest.raises(ValueError, match="max_seqlen_q=2 but cu_seqlens_q has a sequence of length 8"):
        attention_varlen(q[0].transpose(0, 1), k[0].transpose(0, 1), k[0].transpose(0, 1), _cu([8]), _cu([10]), 2)


# ---- bf16 / fp16: flash-attn's rule ---------------------------------------------------------------------------------
# A half-precision path may be off the fp32 reference by at most twice what a plain PyTorch computation in that dtype
# is off (scores, softmax and products in bf16), plus a floor for entries both get exactly.
HALF_CASES = {
    "causal": dict(n=96, m=96, causal=True),
    "kv_cache_offset": dict(n=33, m=120, causal=True),
    "q_longer": dict(n=80, m=30, causal=True),
    "asymmetric_window": dict(n=96, m=96, window_size=(9, 4)),
    "causal_window": dict(n=96, m=96, causal=True, window_size=(15, -1)),
}


def _half_errors(got, pt, ref) -> tuple[float, float]:
    """(this path's error, the bound: 2 × the plain-PyTorch half computation's error + a floor), against ref."""
    err, pt_err = (got.float() - ref.float()).abs().max().item(), (pt.float() - ref.float()).abs().max().item()
    return err, 2 * pt_err + 1e-5


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("backend", ["sdpa", "chunked", "auto"])
@pytest.mark.parametrize("case", list(HALF_CASES))
def test_half_precision_follows_flash_attn_rule(case, backend, dtype):
    kw = dict(HALF_CASES[case])
    n, m = kw.pop("n"), kw.pop("m")
    causal, ws = kw.get("causal", False), kw.get("window_size", (-1, -1))
    q, k, v = _leaf(2, 4, n, 32, dtype=dtype), _leaf(2, 2, m, 32, dtype=dtype, seed=1), \
        _leaf(2, 2, m, 32, dtype=dtype, seed=2)
    go = torch.randn(2, 4, n, 32, generator=torch.Generator().manual_seed(9)).to(dtype)

    def run(fn):
        out = fn()
        return (out.detach(), *torch.autograd.grad(out, (q, k, v), go))

    ref = run(lambda: batched_ref(q, k, v, causal, ws, upcast=True)[0])
    pt = run(lambda: batched_ref(q, k, v, causal, ws, upcast=False)[0])
    got = run(lambda: attention(q, k, v, causal=causal, window_size=ws, backend=backend))
    assert got[0].dtype == dtype
    for name, g, p, r in zip(("out", "dq", "dk", "dv"), got, pt, ref):
        err, bound = _half_errors(g, p, r)
        assert err <= bound, f"{backend} {name}: error {err:.3g} > 2 × plain-PyTorch error + 1e-5 = {bound:.3g}"


def test_attention_ref_without_upcast_computes_in_half():
    """The yardstick itself: upcast=False must actually lose precision (else the rule above tests nothing)."""
    q, k, v = (_leaf(1, 2, 64, 32, dtype=torch.bfloat16, seed=s).detach() for s in range(3))
    full, _ = attention_ref(q, k, v, make_mask(causal=True))
    half, _ = attention_ref(q, k, v, make_mask(causal=True), upcast=False)
    assert half.dtype == torch.bfloat16 and 0 < (half.float() - full.float()).abs().max() < 0.1
    torch.testing.assert_close(full.float(), batched_ref(q, k, v, True)[0].float(), atol=1e-2, rtol=0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("window", ["none", "asymmetric"])
@pytest.mark.parametrize("lengths", list(VARLEN))
def test_flash_varlen_matches_oracle_on_cuda(lengths, window):
    pytest.importorskip("flash_attn", reason="needs the [cuda] extra (flash-attn)")
    len_q, len_k = VARLEN[lengths]
    cu_q, cu_k = _cu(len_q).cuda(), _cu(len_k).cuda()
    q, k, v = (t.detach().cuda().requires_grad_() for t in (
        _leaf(sum(len_q), 4, 64, dtype=torch.bfloat16, seed=1), _leaf(sum(len_k), 2, 64, dtype=torch.bfloat16, seed=2),
        _leaf(sum(len_k), 2, 64, dtype=torch.bfloat16, seed=3)))
    ws = WINDOWS[window]
    ref, _ = flash_style_ref(q.cpu(), k.cpu(), v.cpu(), cu_q.cpu(), cu_k.cpu(), True, ws, upcast=True)
    pt, _ = flash_style_ref(q.cpu(), k.cpu(), v.cpu(), cu_q.cpu(), cu_k.cpu(), True, ws, upcast=False)
    got = attention_varlen(q, k, v, cu_q, cu_k, causal=True, window_size=ws, backend="flash")
    err, bound = _half_errors(got.cpu(), pt, ref)
    assert err <= bound, f"flash out: error {err:.3g} > 2 × plain-PyTorch error + 1e-5 = {bound:.3g}"
