"""Scale-out: FSDP (fully_shard over all ranks) combined with sequence parallelism on 4 CPU processes (gloo) gives
the loss and every gradient of a single-process run within 1e-5; activation checkpointing per block gives the same
loss and gradients as without it (dropout included), and refuses a model without zoo blocks; a weight read outside its
module (Caduceus' tied head) stays in the parent's FSDP unit."""

import pytest
import torch

from zoo.lm import CausalLM, LMConfig
from zoo.parallel import set_activation_checkpointing
from zoo.sequence_parallel.testing import run_distributed

CFG = dict(vocab_size=64, d_model=32, n_layer=2, n_head=4, n_kv_head=2, d_ff=64, init_std=0.1)
CKPT = True  # the FSDP units are checkpointed blocks, as a long-context run would train them
N = 32  # tokens per sequence; 2 sequences = one per data-parallel group


def _reference(checkpointing=False):
    torch.manual_seed(0)
    model = CausalLM(LMConfig(**CFG))
    ids = torch.randint(0, 64, (2, N), generator=torch.Generator().manual_seed(1))
    set_activation_checkpointing(model, checkpointing)
    loss = model(ids, labels=ids).loss
    loss.backward()
    return ids, loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}


def _fsdp_sp_rank(rank, world, kind, ids, ref_loss, ref_grads, out):
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    from zoo.parallel import apply_fsdp
    from zoo.sequence_parallel import SequenceParallel, shard, shift_labels, sp_loss
    from zoo.sequence_parallel.sharding import shard_indices

    sp, dp = 2, world // 2
    mesh = init_device_mesh("cpu", (dp, sp), mesh_dim_names=("dp", "sp"))
    torch.manual_seed(0)
    model = CausalLM(LMConfig(**CFG))
    set_activation_checkpointing(model, CKPT)
    apply_fsdp(model, mesh._flatten("fsdp"))
    dp_rank, sp_rank = mesh["dp"].get_local_rank(), mesh["sp"].get_local_rank()
    sp_group = mesh["sp"].get_group()
    row = ids[dp_rank: dp_rank + 1]
    labels = shift_labels(row)
    positions = shard_indices(N, sp, sp_rank)
    ctx = SequenceParallel(kind, positions, group=sp_group)
    logits = model(shard(row, sp, sp_rank), position_ids=positions[None], sequence_parallel=ctx).logits
    # this rank's share of its sequence's mean loss; FSDP averages gradients over dp × sp ranks, the reference
    # averages over the dp sequences' tokens: scale by sp and divide by the dp groups' token count ratio
    loss = sp_loss(logits, shard(labels, sp, sp_rank), group=sp_group) * sp
    loss.backward()
    total = loss.detach() / sp
    dist.all_reduce(total)
    total /= dp
    grads = {k: p.grad.full_tensor() for k, p in model.named_parameters()}
    if rank == 0:
        torch.testing.assert_close(total, ref_loss, atol=1e-5, rtol=1e-5)
        for k, g in ref_grads.items():
            torch.testing.assert_close(grads[k], g, atol=1e-5, rtol=1e-5, msg=lambda m, k=k: f"{k}: {m}")
        torch.save({"ok": True}, out)


@pytest.mark.parametrize("kind", ["ring", "ulysses"])
def test_fsdp_with_sequence_parallelism_on_4_processes_equals_one_process(tmp_path, kind):
    ids, loss, grads = _reference()
    # the single-process reference is the mean over both sequences' tokens; each sequence has N-1 labels, so the
    # mean of the two per-sequence means is the same number
    out = tmp_path / "ok.pt"
    run_distributed(_fsdp_sp_rank, 4, kind, ids, loss, grads, str(out), timeout_s=120)
    assert torch.load(out, weights_only=True)["ok"]


def test_activation_checkpointing_keeps_loss_and_gradients():
    cfg = {**CFG}
    torch.manual_seed(0)
    model = CausalLM(LMConfig(**cfg))
    for block in model.blocks:
        block.dropout = torch.nn.Dropout(0.3)  # recomputation must replay the same dropout masks
    ids = torch.randint(0, 64, (2, N), generator=torch.Generator().manual_seed(1))
    results = []
    for enabled in (False, True):
        assert set_activation_checkpointing(model, enabled) == CFG["n_layer"]
        model.zero_grad()
        torch.manual_seed(5)
        loss = model(ids, labels=ids).loss
        loss.backward()
        results.append((loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}))
    torch.testing.assert_close(results[0][0], results[1][0], atol=0, rtol=0)
    for k in results[0][1]:
        torch.testing.assert_close(results[0][1][k], results[1][1][k], atol=1e-6, rtol=1e-6)


def test_activation_checkpointing_needs_zoo_blocks():
    with pytest.raises(ValueError, match="Linear has no zoo Block to checkpoint"):
        set_activation_checkpointing(torch.nn.Linear(2, 2))


def _caduceus():
    from zoo.modalities.genomic import Caduceus, CaduceusConfig

    torch.manual_seed(0)
    return Caduceus(CaduceusConfig(d_model=16, n_layer=2))


def _fsdp_caduceus_rank(rank, world, ids, ref_loss, ref_grads, out):
    import torch.distributed as dist

    from zoo.parallel import apply_fsdp

    model = apply_fsdp(_caduceus())
    loss = model(ids[rank: rank + 1], labels=ids[rank: rank + 1]).loss
    loss.backward()
    total = loss.detach().clone()
    dist.all_reduce(total)
    grads = {k: p.grad.full_tensor() for k, p in model.named_parameters()}
    if rank == 0:
        torch.testing.assert_close(total / world, ref_loss, atol=1e-5, rtol=1e-5)
        for k, g in ref_grads.items():
            torch.testing.assert_close(grads[k], g, atol=1e-5, rtol=1e-5, msg=lambda m, k=k: f"{k}: {m}")
        torch.save({"ok": True}, out)


def test_fsdp_keeps_a_weight_read_outside_its_module_in_the_parent_unit(tmp_path):
    """Caduceus' tied head reads embed.weight directly (``fsdp_in_parent``); RCPS blocks are the units. Two ranks,
    one sequence each, equal one process on both (every sequence has the same number of labels)."""
    from zoo.parallel import fsdp_units

    model = _caduceus()
    assert model.embed not in fsdp_units(model) and model.blocks[0] in fsdp_units(model)
    ids = torch.randint(7, 11, (2, 32), generator=torch.Generator().manual_seed(1))
    losses = []
    for row in ids:
        model.zero_grad()
        losses.append(model(row[None], labels=row[None]).loss)
    loss = torch.stack(losses).mean()
    model.zero_grad()
    loss.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    out = tmp_path / "ok.pt"
    run_distributed(_fsdp_caduceus_rank, 2, ids, loss.detach(), grads, str(out), timeout_s=120)
    assert torch.load(out, weights_only=True)["ok"]


def _mesh_rank(rank, world, out):
    import torch.distributed as dist

    from zoo.parallel import sequence_parallel_mesh

    ranks = dist.get_process_group_ranks
    ring = sequence_parallel_mesh("ring", sp_size=2)
    hybrid = sequence_parallel_mesh("hybrid", hybrid_mesh=[2, 2])
    got = {"ring": ranks(ring.group), "ring_sp": ring.sp_size, "ring_sub": (ring.ring_group, ring.ulysses_group),
           "hybrid": ranks(hybrid.group), "hybrid_ring": ranks(hybrid.ring_group),
           "hybrid_ulysses": ranks(hybrid.ulysses_group), "hybrid_sp": hybrid.sp_size}
    torch.save(got, f"{out}.{rank}")


def test_sequence_parallel_mesh_lays_groups_out_row_major_with_ulysses_innermost(tmp_path):
    out = tmp_path / "mesh"
    run_distributed(_mesh_rank, 4, str(out), timeout_s=120)
    for rank in range(4):
        got = torch.load(f"{out}.{rank}", weights_only=True)
        # 2 data-parallel groups of 2 ring ranks: {0, 1}, {2, 3}
        assert got["ring"] == [rank // 2 * 2, rank // 2 * 2 + 1] and got["ring_sp"] == 2
        assert got["ring_sub"] == (None, None)
        # one 2 × 2 group: Ulysses pairs of consecutive ranks {0, 1}, {2, 3}, rings across them {0, 2}, {1, 3}
        assert got["hybrid"] == [0, 1, 2, 3] and got["hybrid_sp"] == 4
        assert got["hybrid_ulysses"] == [rank // 2 * 2, rank // 2 * 2 + 1]
        assert got["hybrid_ring"] == [rank % 2, rank % 2 + 2]


@pytest.mark.parametrize("args, message", [
    ((4, "zigzag"), "sequence_parallel must be one of ring, ulysses, hybrid (or null: none), got 'zigzag'"),
    ((6, "ring", 4), "sp_size 4 does not divide the 6 processes"),
    ((4, "hybrid", 4), "sequence_parallel: hybrid needs hybrid_mesh: [ring_size, ulysses_size]"),
    ((8, "hybrid", 4, [4, 2]), "hybrid_mesh 4×2 does not multiply to sp_size 4"),
])
def test_sequence_parallel_shape_errors_name_the_setting(args, message):
    import re

    from zoo.parallel import sequence_parallel_shape

    with pytest.raises(ValueError, match=re.escape(message)):
        sequence_parallel_shape(*args)


def test_sequence_parallel_shape():
    from zoo.parallel import sequence_parallel_shape

    assert sequence_parallel_shape(8, "ulysses", 4) == (2, 4, 1)
    assert sequence_parallel_shape(8, "hybrid", None, [4, 2]) == (1, 4, 2)
