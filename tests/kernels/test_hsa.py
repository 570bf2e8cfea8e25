"""HSA: the blocked, gathering path against the dense masked reference (outputs and all gradients), the chunk
selection rule (top-k of complete past chunks, most recent first), the stick-breaking/softmax weights, and errors."""

import math

import pytest
import torch
import torch.nn.functional as F

from zoo.kernels.hsa import chunk_weights, hsa, hsa_ref, select_chunks


def _inputs(b=2, n=300, h=4, g=2, d=16, r=8, s=16, dtype=torch.float64, n_q=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    n_q = n if n_q is None else n_q

    def rnd(*shape):
        return torch.randn(*shape, generator=gen, dtype=dtype).requires_grad_()

    return rnd(b, n_q, h, d), rnd(b, n, g, d), rnd(b, n, g, d), rnd(b, n_q, g, r), rnd(b, n // s, g, r)


TOL = {torch.float64: dict(atol=1e-10, rtol=1e-10), torch.float32: dict(atol=2e-5, rtol=2e-5)}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("weighting", ["stick_breaking", "softmax"])
@pytest.mark.parametrize("top_k, block_q", [(3, 37), (8, 256), (40, 64)])  # 40 > the 18 chunks there are
def test_blocked_matches_dense_reference_with_all_gradients(dtype, weighting, top_k, block_q):
    args = _inputs(dtype=dtype)  # n=300 is not a multiple of S=16: the tail 12 keys are never attended
    want = hsa_ref(*args, chunk_size=16, top_k=top_k, weighting=weighting)
    got = hsa(*args, chunk_size=16, top_k=top_k, weighting=weighting, block_q=block_q)
    assert got.dtype == dtype
    torch.testing.assert_close(got, want, **TOL[dtype])
    grad = torch.randn_like(want)
    for name, a, b in zip("q k v q_r landmarks".split(), torch.autograd.grad((got * grad).sum(), args),
                          torch.autograd.grad((want * grad).sum(), args)):
        torch.testing.assert_close(a, b, **TOL[dtype], msg=lambda m, name=name: f"grad of {name}: {m}")


def test_queries_with_an_offset_equal_the_tail_of_the_full_result():
    q, k, v, q_r, lm = _inputs()
    full = hsa(q, k, v, q_r, lm, chunk_size=16, top_k=4)
    tail = hsa(q[:, 250:], k, v, q_r[:, 250:], lm, chunk_size=16, top_k=4, q_offset=250)
    torch.testing.assert_close(tail, full[:, 250:], atol=1e-12, rtol=0)


def test_outputs_up_to_t_ignore_everything_after_t():
    q, k, v, q_r, lm = (x.detach() for x in _inputs())
    t = 170  # chunks 0..9 end at or before 160 ≤ t; chunk 10 = [160, 176) is incomplete at t
    later = [x.clone() for x in (q, k, v, q_r)]
    for x in later:
        x[:, t + 1:] = torch.randn_like(x[:, t + 1:])
    lm2 = lm.clone()
    lm2[:, 10:] = torch.randn_like(lm2[:, 10:])  # landmarks of chunks not complete by t
    q2, k2, v2, q_r2 = later
    a = hsa(q, k, v, q_r, lm, chunk_size=16, top_k=4)
    b = hsa(q2, k2, v2, q_r2, lm2, chunk_size=16, top_k=4)
    torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1], atol=0, rtol=0)
    assert not torch.allclose(a[:, t + 1:], b[:, t + 1:])


def test_queries_before_the_first_complete_chunk_get_zero():
    args = _inputs(n=64)
    for fn in (hsa, hsa_ref):
        out = fn(*args, chunk_size=16, top_k=2)
        assert out[:, :16].abs().max() == 0  # positions 0..15: chunk 0 = [0, 16) ends after them
        assert out[:, 16:].abs().min() > 0


def test_selection_is_top_k_of_complete_past_chunks_most_recent_first():
    q_r, lm = torch.randn(1, 200, 1, 8), torch.randn(1, 12, 1, 8)
    q_pos = torch.arange(200)
    scores, idx, valid = select_chunks(q_r, lm, 16, 3, q_pos)
    brute = (q_r[0, :, 0] @ lm[0, :, 0].t()) / math.sqrt(8)  # (N, C)
    for t in range(200):
        complete = [c for c in range(12) if (c + 1) * 16 <= t]
        best = sorted(sorted(complete, key=lambda c: -brute[t, c].item())[:3], reverse=True)
        got = idx[0, t, 0][valid[0, t, 0]].tolist()
        assert got == best, f"position {t}: chose {got}, the top-3 complete past chunks are {best}"
        torch.testing.assert_close(scores[0, t, 0][valid[0, t, 0]], brute[t, best])


def test_stick_breaking_weights_are_sigmoid_products_and_softmax_sums_to_one():
    s = torch.randn(5, 4, dtype=torch.float64)
    valid = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    w = chunk_weights(s, valid, "stick_breaking")
    for i in range(5):
        left = 1.0
        for j in range(4):
            want = (torch.sigmoid(s[i, j]) * left).item() if valid[i, j] else 0.0
            assert w[i, j].item() == pytest.approx(want, rel=1e-12, abs=1e-15)
            left *= (1 - torch.sigmoid(s[i, j])).item() if valid[i, j] else 1.0
    assert (w.sum(-1) < 1).all()
    sm = chunk_weights(s, valid, "softmax")
    torch.testing.assert_close(sm[0], F.softmax(s[0], -1))
    torch.testing.assert_close(sm.sum(-1), torch.tensor([1.0, 1, 0, 1, 1], dtype=torch.float64))
    assert (sm[~valid] == 0).all()


def test_memory_is_linear_in_blocks_not_quadratic():
    """Under autograd the blocked path saves only its inputs per block: the activation graph holds no (N, C·S) or
    (N, k·S) tensor, so the saved bytes stay a small multiple of the inputs' size."""
    n = 4096
    q, k, v = (torch.randn(1, n, 2, 16, requires_grad=True) for _ in range(3))
    q_r, lm = torch.randn(1, n, 1, 16, requires_grad=True), torch.randn(1, n // 64, 1, 16, requires_grad=True)
    k, v = k[:, :, :1].detach().requires_grad_(), v[:, :, :1].detach().requires_grad_()
    saved: dict[tuple, int] = {}  # every block saves the same k/v/landmarks: count each storage once

    def pack(t):
        saved[(t.untyped_storage().data_ptr(), t.storage_offset(), t.shape)] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        hsa(q, k, v, q_r, lm, chunk_size=64, top_k=8, block_q=256)
    input_bytes = sum(x.numel() * 4 for x in (q, k, v, q_r, lm))
    # one block's gathered keys alone would be 256·8·64·16·4 B = 8 MB; a dense score matrix 64 MB
    total = sum(saved.values())
    assert total < 4 * input_bytes, f"saved {total / 2**20:.1f} MB for {input_bytes / 2**20:.1f} MB inputs"


def test_errors_name_the_problem():
    q, k, v, q_r, lm = _inputs(n=64)
    with pytest.raises(ValueError, match="64 keys in chunks of 16 make 4 complete chunks, but 3 landmarks"):
        hsa(q, k, v, q_r, lm[:, :3], chunk_size=16)
    with pytest.raises(ValueError, match="weighting must be one of"):
        hsa(q, k, v, q_r, lm, chunk_size=16, weighting="max")
    with pytest.raises(ValueError, match=r"q_offset 5 must lie in \[0, N_k − N_q\] = \[0, 0\]"):
        hsa(q, k, v, q_r, lm, chunk_size=16, q_offset=5)
    with pytest.raises(ValueError, match="H a multiple of G"):
        hsa(q[:, :, :3], k, v, q_r, lm, chunk_size=16)
