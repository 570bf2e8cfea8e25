"""A whole causal LM run sequence-parallel: the batch sharded with shard_batch (padding, pre-shifted labels, global
positions), attention layers on ring / Ulysses / 2×2 hybrid. The per-rank losses sum to the single-process loss and
the summed gradients equal single-process gradients (fp32)."""

import torch
import torch.distributed as dist

from zoo.lm import CausalLM, LMConfig
from zoo.sequence_parallel import SequenceParallel, shard_batch, sp_loss
from zoo.sequence_parallel.testing import run_distributed


def _model():
    torch.manual_seed(0)
    return CausalLM(LMConfig(vocab_size=50, d_model=32, n_layer=2, n_head=4, n_kv_head=2, d_ff=64))


def _check(rank, world):
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh("cpu", (2, world // 2), mesh_dim_names=("ring", "ulysses"))
    ids = torch.randint(0, 50, (2, 45), generator=torch.Generator().manual_seed(3))  # 45: padded to 48
    labels = ids.clone()
    labels[:, :10] = -100
    ref = _model()
    want = ref(ids, labels=labels).loss
    want.backward()
    for kind in ("ring", "ulysses", "hybrid"):
        model = _model()
        part = shard_batch({"input_ids": ids, "labels": labels}, world, rank)
        sp = SequenceParallel(kind, part["indices"], ulysses_group=mesh.get_group("ulysses"),
                              ring_group=mesh.get_group("ring"))
        logits = model(part["input_ids"], position_ids=part["position_ids"], segment_ids=part["segment_ids"],
                       sequence_parallel=sp).logits
        loss = sp_loss(logits, part["shifted_labels"])
        loss.backward()
        total = loss.detach().clone()
        dist.all_reduce(total)
        torch.testing.assert_close(total, want.detach(), atol=1e-5, rtol=1e-5, msg=lambda m: f"{kind} loss: {m}")
        for (name, p), (_, p_ref) in zip(model.named_parameters(), ref.named_parameters()):
            g = p.grad.clone()
            dist.all_reduce(g)
            torch.testing.assert_close(g, p_ref.grad, atol=1e-5, rtol=1e-4,
                                       msg=lambda m, name=name: f"{kind} grad {name}: {m}")


def test_sequence_parallel_lm_matches_single_process_loss_and_gradients():
    run_distributed(_check, 4)


def test_sequence_parallel_refuses_what_it_cannot_shard():
    import pytest

    model = CausalLM(LMConfig(vocab_size=50, d_model=32, n_layer=2, n_head=4, layout="mamba"))
    sp = SequenceParallel("ring", torch.arange(8))
    with pytest.raises(ValueError, match="covers attention layers only; this stack also has {'Mamba'}"):
        model(torch.zeros(1, 8, dtype=torch.long), position_ids=torch.arange(8.0)[None], sequence_parallel=sp)
    with pytest.raises(ValueError, match="kind must be one of"):
        SequenceParallel("tree", torch.arange(8))
