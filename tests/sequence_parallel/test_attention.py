"""Ring, Ulysses and 2-D hybrid attention on 2 and 4 gloo processes equal single-process attention (outputs and
q/k/v gradients, fp32, 1e-5): causal and bidirectional, zigzag and contiguous sharding, GQA / MQA with fewer KV heads
than ranks, packed documents, a length that needs padding. The shards come from the helpers training uses."""

import pytest
import torch
import torch.distributed as dist

from zoo.kernels.attention import attention_ref
from zoo.sequence_parallel.ring import ring_attention
from zoo.sequence_parallel.sharding import gather, pad_length, shard, shard_indices
from zoo.sequence_parallel.testing import run_distributed
from zoo.sequence_parallel.ulysses import hybrid_attention, ulysses_attention

TOL = dict(atol=1e-5, rtol=1e-5)


def _case(n, hq, hkv, packed, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(2, h, n, 16, generator=g) for h in (hq, hkv, hkv))
    seg = None
    if packed:  # three documents of uneven length per row, different per row
        cuts = torch.tensor([[n // 5, n // 2], [n // 3, 3 * n // 4]])
        seg = (torch.arange(n)[None, :, None] >= cuts[:, None, :]).sum(-1)
    return q, k, v, seg


def _check(rank, world, n, hq, hkv, causal, packed, mode, kind):
    q, k, v, seg = _case(n, hq, hkv, packed)
    dout = torch.randn(q.shape, generator=torch.Generator().manual_seed(1))
    pad = pad_length(n, world, mode)
    if pad:  # padding keys get their own segment id, so no real query sees them
        q, k, v = (torch.cat((t, torch.zeros(*t.shape[:2], pad, t.shape[3])), 2) for t in (q, k, v))
        seg = torch.cat((seg if seg is not None else torch.zeros(2, n, dtype=torch.long),
                         torch.full((2, pad), -1)), 1)
        dout = torch.cat((dout, torch.zeros(*dout.shape[:2], pad, dout.shape[3])), 2)
    total = n + pad
    want_q, want_k, want_v = (t.clone().requires_grad_() for t in (q, k, v))
    want = attention_ref(want_q, want_k, want_v, _mask(causal, seg))[0]
    want.backward(dout)

    lq, lk, lv = (shard(t, world, rank, dim=2, mode=mode).requires_grad_() for t in (q, k, v))
    lseg = shard(seg, world, rank, dim=1, mode=mode) if seg is not None else None
    pos = shard_indices(total, world, rank, mode)
    if kind == "ring":
        out = ring_attention(lq, lk, lv, pos, lseg, causal=causal)
    elif kind.startswith("ulysses"):  # "ulysses": one KV head per rank per chunk; "ulysses1": all heads at once
        out = ulysses_attention(lq, lk, lv, pos, lseg, causal=causal, head_chunks=1 if kind == "ulysses1" else None)
    else:  # 2 × 2 mesh: Ulysses inside pairs of ranks, ring across the pairs
        from torch.distributed.device_mesh import init_device_mesh

        mesh = init_device_mesh("cpu", (2, world // 2), mesh_dim_names=("ring", "ulysses"))
        out = hybrid_attention(lq, lk, lv, pos, lseg, causal=causal, ulysses_group=mesh.get_group("ulysses"),
                               ring_group=mesh.get_group("ring"))
    out.backward(shard(dout, world, rank, dim=2, mode=mode))
    for name, got, ref in [("out", out, want), ("dq", lq.grad, want_q.grad), ("dk", lk.grad, want_k.grad),
                           ("dv", lv.grad, want_v.grad)]:
        full = gather(got.detach().transpose(1, 2).contiguous(), dim=1, mode=mode).transpose(1, 2)
        torch.testing.assert_close(full[:, :, :n], ref.detach()[:, :, :n], **TOL,
                                   msg=lambda m, name=name: f"{kind}, causal={causal}, packed={packed}, {mode}, Hq={hq}, "
                                   f"Hkv={hkv}, N={n}, rank {rank}/{world} {name}: {m}")


def _mask(causal, seg):
    from zoo.kernels.attention import make_mask

    return make_mask(causal=causal, segment_ids=seg)


CASES = [
    (True, False, "zigzag", 4, 2, 64),       # GQA, causal, balanced sharding
    (False, False, "contiguous", 4, 4, 48),  # bidirectional
    (True, True, "zigzag", 4, 1, 72),        # packed documents, MQA (fewer KV heads than ranks)
    (True, False, "zigzag", 4, 2, 37),       # odd length: padded to a multiple of 2P
    (True, True, "zigzag", 8, 4, 40),        # GQA with several KV heads per rank: Ulysses head chunks
]


def _check_all(rank, world, kind):
    # every case in one process group: spawning processes costs seconds, the cases milliseconds
    for causal, packed, mode, hq, hkv, n in CASES:
        _check(rank, world, n, hq, hkv, causal, packed, mode, kind)


@pytest.mark.parametrize("world", [2, 4])
def test_ring_attention_equals_full_attention(world):
    run_distributed(_check_all, world, "ring")


@pytest.mark.parametrize("world,kind", [(2, "ulysses"), (4, "ulysses"), (2, "ulysses1")])
def test_ulysses_attention_equals_full_attention(world, kind):
    run_distributed(_check_all, world, kind)


def test_ulysses_head_chunks_must_divide_the_kv_heads_per_rank():
    from zoo.sequence_parallel.ulysses import _head_chunks

    assert [(q.tolist(), k.tolist()) for q, k in _head_chunks(8, 4, 2, None, "cpu")] == [
        ([0, 1, 4, 5], [0, 2]), ([2, 3, 6, 7], [1, 3])]
    with pytest.raises(ValueError, match=r"head_chunks \(3\) must divide the KV heads per Ulysses rank \(2\)"):
        _head_chunks(8, 4, 2, 3, "cpu")


def test_hybrid_2x2_attention_equals_full_attention():
    run_distributed(_check_all, 4, "hybrid")


def test_sharding_round_trips_and_zigzag_balances_causal_work():
    from zoo.sequence_parallel.sharding import unshard

    x = torch.arange(48)[None]
    for mode in ("zigzag", "contiguous"):
        parts = [shard(x, 4, r, mode=mode) for r in range(4)]
        assert torch.equal(unshard(parts, mode=mode), x)
    assert shard_indices(16, 2, 0).tolist() == [0, 1, 2, 3, 12, 13, 14, 15]  # chunks 0 and 3 of 4
    work = [int((shard_indices(64, 4, r) + 1).sum()) for r in range(4)]  # keys visible to the rank's queries
    assert len(set(work)) == 1
    with pytest.raises(ValueError, match="needs a length divisible by 8, got 37"):
        shard_indices(37, 4, 0)
