"""V2PE's fractional positions survive a bf16 model: computed in fp32 even where the default dtype is bf16
(Lightning's bf16-true), so visual tokens δ apart past position 256 do not collapse onto one bf16 value."""

import pytest
import torch

from zoo.modalities.video import IMAGE_TOKEN_INDEX, LongVA, LongVAConfig


def test_v2pe_positions_do_not_collapse_under_bf16():
    pytest.importorskip("timm")
    torch.manual_seed(0)
    cfg = LongVAConfig(lm=dict(vocab_size=260, d_model=32, n_layer=1, n_head=2), vision_tower="timm",
                       vision=dict(model_name="vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2),
                       v2pe_delta=0.25)
    model = LongVA(cfg).eval()
    ids = torch.cat((torch.randint(0, 200, (1, 600)), torch.tensor([[IMAGE_TOKEN_INDEX]]), torch.randint(0, 200, (1, 3))), 1)
    video = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        _, _, want, is_visual = model.build_inputs(ids, [video])
        model.to(torch.bfloat16)
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.bfloat16)
        try:
            _, _, got, _ = model.build_inputs(ids, [video.bfloat16()])
        finally:
            torch.set_default_dtype(previous)
    assert got.dtype == torch.float32
    assert torch.equal(got, want)
    steps = got[0, is_visual[0]].diff()
    assert torch.equal(steps, torch.full_like(steps, 0.25))  # bf16 would step 0 or 4 here (spacing 4 at 600+)
