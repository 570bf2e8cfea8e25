"""Caduceus checkpoints in the original layout (kuleshov-group/caduceus: CaduceusForMaskedLM, model_type "caduceus")
load through zoo.load_pretrained strictly, and their logits equal a restatement of the original forward pass within
1e-5 in fp32: Caduceus-PS with the fused add-norm path (how the published models ran; each block swaps the strands'
halves) and the unfused one, and Caduceus-Ph. The Mamba inside the restatement is transformers' MambaMixer, so
nothing of the zoo's mixer is reused by the oracle."""

import json

import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.loading import CheckpointError
from zoo.modalities.genomic import Caduceus, CharTokenizer

D, N_LAYER, D_STATE, VOCAB = 16, 3, 4, 16
COMPLEMENT = {i: i for i in range(VOCAB)} | {7: 10, 10: 7, 8: 9, 9: 8}
MAMBA_KEYS = ["in_proj.weight", "conv1d.weight", "conv1d.bias", "x_proj.weight", "dt_proj.weight", "dt_proj.bias",
              "A_log", "D", "out_proj.weight"]


def original_config(rcps: bool, fused: bool) -> dict:
    return {"model_type": "caduceus", "architectures": ["CaduceusForMaskedLM"], "d_model": D, "n_layer": N_LAYER,
            "vocab_size": 12, "pad_vocab_size_multiple": 8, "rms_norm": True, "fused_add_norm": fused,
            "residual_in_fp32": False, "norm_epsilon": 1e-5, "bidirectional": True, "bidirectional_strategy": "add",
            "bidirectional_weight_tie": True, "rcps": rcps,
            "complement_map": {str(k): v for k, v in COMPLEMENT.items()} if rcps else None,
            "ssm_cfg": {"d_state": D_STATE, "d_conv": 4, "expand": 2, "dt_rank": "auto", "dt_min": 0.001,
                        "dt_max": 0.1, "dt_init": "random", "dt_scale": 1.0, "dt_init_floor": 1e-4,
                        "conv_bias": True, "bias": False, "use_fast_path": True}}


def original_state(rcps: bool, fused: bool, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under the original module names (RCPS wrappers: .embedding, .submodule, .lm_head)."""
    g = torch.Generator().manual_seed(seed)
    d_inner, dt_rank = 2 * D, -(-D // 16)
    shapes = {"in_proj.weight": (2 * d_inner, D), "conv1d.weight": (d_inner, 1, 4), "conv1d.bias": (d_inner,),
              "x_proj.weight": (dt_rank + 2 * D_STATE, d_inner), "dt_proj.weight": (d_inner, dt_rank),
              "dt_proj.bias": (d_inner,), "A_log": (d_inner, D_STATE), "D": (d_inner,),
              "out_proj.weight": (D, d_inner)}

    def rand(*shape, scale=0.3):
        return torch.randn(*shape, generator=g) * scale

    wrap = ".submodule" if rcps else ""
    norm_wrap = ".submodule" if rcps and not fused else ""
    b = "caduceus.backbone."
    emb = rand(VOCAB, D, scale=1.0)
    s = {(b + "embeddings.word_embeddings" + (".embedding" if rcps else "") + ".weight"): emb}
    for i in range(N_LAYER):
        fwd = {k: rand(*shapes[k]) for k in MAMBA_KEYS}
        fwd["A_log"] = torch.log(torch.rand(d_inner, D_STATE, generator=g) * 4 + 0.5)
        rev = {k: (fwd[k].clone() if k in ("in_proj.weight", "out_proj.weight") else rand(*shapes[k]))
               for k in MAMBA_KEYS}
        rev["A_log"] = torch.log(torch.rand(d_inner, D_STATE, generator=g) * 4 + 0.5)
        for k in MAMBA_KEYS:
            s[f"{b}layers.{i}.mixer{wrap}.mamba_fwd.{k}"] = fwd[k]
            s[f"{b}layers.{i}.mixer{wrap}.mamba_rev.{k}"] = rev[k]
        s[f"{b}layers.{i}.norm{norm_wrap}.weight"] = 1 + rand(D)
    s[f"{b}norm_f{norm_wrap}.weight"] = 1 + rand(D)
    if rcps:
        cmap = torch.tensor([COMPLEMENT[i] for i in range(VOCAB)])
        s[b + "embeddings.word_embeddings.complement_map"] = cmap
        s["lm_head.complement_map"] = cmap.clone()
        s["lm_head.lm_head.weight"] = emb.clone()
    else:
        s["lm_head.weight"] = emb.clone()
    return s


def hf_mamba(weights: dict[str, torch.Tensor]):
    from transformers import MambaConfig
    from transformers.models.mamba.modeling_mamba import MambaMixer

    cfg = MambaConfig(hidden_size=D, state_size=D_STATE, expand=2, conv_kernel=4, use_bias=False,
                      use_conv_bias=True, time_step_rank=-(-D // 16), hidden_act="silu")
    mixer = MambaMixer(cfg, layer_idx=0)
    mixer.load_state_dict(weights)
    return mixer.eval()


def restated_forward(state, ids, rcps: bool, fused: bool) -> torch.Tensor:
    """The original CaduceusForMaskedLM forward (modeling_caduceus.py / modeling_rcps.py), restated."""
    b = "caduceus.backbone."
    wrap = ".submodule" if rcps else ""
    norm_wrap = ".submodule" if b + "norm_f.submodule.weight" in state else ""  # as saved, whichever path runs

    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w

    def rc(x):
        return x.flip(-2, -1)

    def bimamba(i, x):
        get = {d: hf_mamba({k: state[f"{b}layers.{i}.mixer{wrap}.mamba_{d}.{k}"] for k in MAMBA_KEYS})
               for d in ("fwd", "rev")}
        return get["fwd"](x) + get["rev"](x.flip(1)).flip(1)

    if not rcps:
        emb = state[b + "embeddings.word_embeddings.weight"]
        h, residual = F.embedding(ids, emb), None
        for i in range(N_LAYER):
            residual = h if residual is None else h + residual
            h = bimamba(i, rms(residual, state[f"{b}layers.{i}.norm.weight"]))
        return F.linear(rms(h + residual, state[b + "norm_f.weight"]), state["lm_head.weight"])

    emb = state[b + "embeddings.word_embeddings.embedding.weight"]
    cmap = state[b + "embeddings.word_embeddings.complement_map"]
    rc_ids = torch.gather(cmap[None].expand(ids.shape[0], -1), 1, ids.flip(-1))
    h = torch.cat([F.embedding(ids, emb), F.embedding(rc_ids, emb).flip(-2, -1)], dim=-1)
    residual = None
    for i in range(N_LAYER):
        w = state[f"{b}layers.{i}.norm{norm_wrap}.weight"]
        if fused:  # RCPSMambaBlock's fused_add_norm branch
            a = h if residual is None else h + residual
            fwd, rc_half = a[..., D:], rc(a[..., :D])
            h = torch.cat([rms(fwd, w), rc(rms(rc_half, w))], dim=-1)
            residual = torch.cat([fwd, rc(rc_half)], dim=-1)
        elif residual is None:  # RCPSAddNormWrapper, prenorm
            residual = h
            h = torch.cat([rms(h[..., :D], w), rc(rms(rc(h[..., D:]), w))], dim=-1)
        else:
            r_fwd = h[..., :D] + residual[..., :D]
            r_rc = rc(h[..., D:]) + rc(residual[..., D:])
            residual = torch.cat([r_fwd, rc(r_rc)], dim=-1)
            h = torch.cat([rms(r_fwd, w), rc(rms(r_rc, w))], dim=-1)
        h = torch.cat([bimamba(i, h[..., :D]), rc(bimamba(i, rc(h[..., D:])))], dim=-1)  # RCPSWrapper
    w = state[f"{b}norm_f{norm_wrap}.weight"]
    if fused:
        out = torch.cat([rms(h[..., :D] + residual[..., :D], w),
                         rc(rms(rc(h[..., D:]) + rc(residual[..., D:]), w))], dim=-1)
    else:
        r_fwd, r_rc = h[..., :D] + residual[..., :D], rc(h[..., D:]) + rc(residual[..., D:])
        out = torch.cat([rms(r_fwd, w), rc(rms(r_rc, w))], dim=-1)
    head = state["lm_head.lm_head.weight"]
    hcmap = state["lm_head.complement_map"]
    return F.linear(out[..., :D], head) + F.linear(out[..., D:].flip(-1), head[hcmap, :])


def write_checkpoint(path, rcps: bool, fused: bool, seed: int = 0) -> dict:
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    state = original_state(rcps, fused, seed)
    (path / "config.json").write_text(json.dumps(original_config(rcps, fused)))
    save_file(state, path / "model.safetensors")
    return state


@pytest.mark.parametrize("rcps, fused", [(True, True), (True, False), (False, True)],
                         ids=["ps-fused", "ps-unfused", "ph"])
def test_original_caduceus_checkpoint_matches_restated_forward(tmp_path, rcps, fused):
    state = write_checkpoint(tmp_path, rcps, fused)
    model = zoo.load_pretrained(tmp_path)
    assert isinstance(model, Caduceus) and model.config.rcps == rcps
    assert model.config.swap_strands == (rcps and fused)
    ids = torch.tensor([CharTokenizer().encode("ACGTTGCANACCGTAGGTCCAT", add_special_tokens=False),
                        CharTokenizer().encode("GGGTACCATTANCGATCGTTAC", add_special_tokens=False)])
    with torch.no_grad():
        expected = restated_forward(state, ids, rcps, fused)
        torch.testing.assert_close(model(ids).logits, expected, atol=1e-5, rtol=1e-5)
        if rcps:  # the fused path is a different function: the strand swap matters
            other = restated_forward(state, ids, rcps, not fused)
            assert (other - expected).abs().max() > 1e-2
            rc_ids = model.reverse_complement_ids(ids)
            torch.testing.assert_close(model(rc_ids).logits, expected[:, :, model.complement_ids].flip(1),
                                       atol=1e-5, rtol=1e-5)


def test_original_caduceus_checkpoint_errors_name_the_problem(tmp_path):
    state = write_checkpoint(tmp_path, rcps=True, fused=True)
    del state["caduceus.backbone.layers.1.norm.weight"]
    state["caduceus.backbone.layers.1.extra.weight"] = torch.zeros(3)
    from safetensors.torch import save_file

    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): blocks\.1\.norm\.norm\.weight"):
        zoo.load_pretrained(tmp_path)
    state = write_checkpoint(tmp_path / "b", rcps=True, fused=True)
    state["lm_head.complement_map"] = torch.arange(VOCAB)
    save_file(state, tmp_path / "b" / "model.safetensors")
    with pytest.raises(ValueError, match="lm_head.complement_map: complement map"):
        zoo.load_pretrained(tmp_path / "b")
    cfg = original_config(True, True)
    cfg["bidirectional_strategy"] = "ew_multiply"
    (tmp_path / "b" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="only 'add' is supported"):
        zoo.load_pretrained(tmp_path / "b")
