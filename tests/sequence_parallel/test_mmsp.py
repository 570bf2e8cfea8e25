"""MM-SP on 4 gloo ranks: frames encoded 1/4 per rank, visual tokens gathered, the interleaved sequence re-sharded to
equal token counts; loss and every gradient (vision tower, projector, LM) equal one process on the same batch."""

import torch
import torch.distributed as dist

from zoo.modalities.video import IMAGE_TOKEN_INDEX, LongVA, LongVAConfig
from zoo.sequence_parallel import SequenceParallel, sp_loss
from zoo.sequence_parallel.mmsp import mmsp_shard
from zoo.sequence_parallel.testing import run_distributed


def _model(v2pe):
    torch.manual_seed(0)
    return LongVA(LongVAConfig(lm=dict(vocab_size=260, d_model=32, n_layer=2, n_head=4, n_kv_head=2, d_ff=64),
                               vision=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                           num_attention_heads=2, image_size=16, patch_size=8),
                               v2pe_delta=0.25 if v2pe else None))


def _check(rank, world):
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, 256, (2, 14), generator=g)
    ids[:, 2] = IMAGE_TOKEN_INDEX
    labels = ids.clone()
    labels[:, :6] = -100
    videos = [torch.randn(5, 3, 16, 16, generator=g), torch.randn(3, 3, 16, 16, generator=g)]  # 8 frames, 2 per rank
    for kind in ("ring", "ulysses"):
        for v2pe in (False, True):
            ref = _model(v2pe)
            want = ref(ids, videos, labels=labels).loss
            want.backward()
            model = _model(v2pe)
            part = mmsp_shard(model, ids, videos, labels)
            counts = [torch.zeros((), dtype=torch.long) for _ in range(world)]
            dist.all_gather(counts, torch.tensor(part["inputs_embeds"].shape[1]))
            assert len({int(c) for c in counts}) == 1  # every rank holds the same number of tokens
            sp = SequenceParallel(kind, part["indices"])
            logits = model.lm(inputs_embeds=part["inputs_embeds"], position_ids=part["position_ids"],
                              segment_ids=part["segment_ids"], sequence_parallel=sp).logits
            loss = sp_loss(logits, part["shifted_labels"])
            loss.backward()
            total = loss.detach().clone()
            dist.all_reduce(total)
            torch.testing.assert_close(total, want.detach(), atol=1e-5, rtol=1e-5)
            for (name, p), (_, p_ref) in zip(model.named_parameters(), ref.named_parameters()):
                grad = p.grad.clone() if p.grad is not None else torch.zeros_like(p)
                dist.all_reduce(grad)
                want_grad = p_ref.grad if p_ref.grad is not None else torch.zeros_like(p_ref)
                torch.testing.assert_close(grad, want_grad, atol=1e-5, rtol=1e-4,
                                           msg=lambda m, name=name: f"{kind} v2pe={v2pe} grad {name}: {m}")


def test_mmsp_matches_one_process_loss_and_gradients():
    run_distributed(_check, 4)
