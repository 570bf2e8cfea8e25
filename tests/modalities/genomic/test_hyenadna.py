"""HyenaDNA loads from its original layout (config.json + Lightning weights.ckpt, keys as in hyena-dna's
standalone_hyenadna.py): strict keys, and logits equal an independent re-statement of the original forward pass
(chunk order of the gates, the 0.05 modulation shift, positional features computed for l_max and sliced,
tanh-GELU MLP, tied head) within 1e-5. Written and read back with zoo.load_pretrained."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.loading import CheckpointError

D, N_LAYER, D_INNER, EMB, ORDER, L_MAX = 16, 2, 32, 5, 8, 64
CONFIG = {"d_model": D, "n_layer": N_LAYER, "d_inner": D_INNER, "vocab_size": 12, "pad_vocab_size_multiple": 8,
          "resid_dropout": 0.0, "embed_dropout": 0.1, "layer_norm_epsilon": 1e-5,
          "layer": {"_name_": "hyena", "emb_dim": EMB, "filter_order": ORDER, "local_order": 3, "l_max": L_MAX,
                    "modulate": True, "w": 10, "lr": 6e-4, "wd": 0.0, "lr_pos_emb": 0.0}}


def _original_state(seed=0):
    """Random weights under the original key names (what weights.ckpt's state_dict holds)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g) * 0.3  # noqa: E731
    st = {"model.backbone.embeddings.word_embeddings.weight": r(16, D),
          "model.backbone.ln_f.weight": 1 + r(D), "model.backbone.ln_f.bias": r(D)}
    t = torch.linspace(0, 1, L_MAX)[None, :, None]
    w = 2 * math.pi * torch.linspace(0, L_MAX - 1, L_MAX)[None, :, None] / L_MAX
    f = torch.linspace(1e-4, (EMB - 1) // 2 - 1, (EMB - 1) // 2)[None, None]
    z = torch.exp(-1j * f * w)
    z = torch.cat([t, z.real, z.imag], dim=-1)
    for i in range(N_LAYER):
        p = f"model.backbone.layers.{i}."
        st.update({p + "norm1.weight": 1 + r(D), p + "norm1.bias": r(D), p + "norm2.weight": 1 + r(D),
                   p + "norm2.bias": r(D), p + "mlp.fc1.weight": r(D_INNER, D), p + "mlp.fc1.bias": r(D_INNER),
                   p + "mlp.fc2.weight": r(D, D_INNER), p + "mlp.fc2.bias": r(D),
                   p + "mixer.in_proj.weight": r(3 * D, D), p + "mixer.in_proj.bias": r(3 * D),
                   p + "mixer.out_proj.weight": r(D, D), p + "mixer.out_proj.bias": r(D),
                   p + "mixer.short_filter.weight": r(3 * D, 1, 3), p + "mixer.short_filter.bias": r(3 * D),
                   p + "mixer.filter_fn.bias": r(D), p + "mixer.filter_fn.pos_emb.z": z.clone(),
                   p + "mixer.filter_fn.pos_emb.t": t.clone(),
                   p + "mixer.filter_fn.modulation.deltas": torch.linspace(math.log(1e-2) / 1.5,
                                                                             math.log(1e-2) / 0.3, D)[None, None]})
        freq = 10 + r(1, ORDER)  # one Sin module shared by the filter MLP, so one value under three keys
        for j, shape in ((0, (ORDER, EMB)), (2, (ORDER, ORDER)), (4, (ORDER, ORDER)), (6, (D, ORDER))):
            st[p + f"mixer.filter_fn.implicit_filter.{j}.weight"] = r(*shape)
            if j < 6:
                st[p + f"mixer.filter_fn.implicit_filter.{j}.bias"] = r(shape[0])
                st[p + f"mixer.filter_fn.implicit_filter.{j + 1}.freq"] = freq
    return st


def _original_forward(st, ids):
    """hyena-dna's standalone forward, restated: pre-norm blocks, HyenaOperator order 2, tied head."""
    g = lambda k: st["model.backbone." + k]  # noqa: E731
    x = g("embeddings.word_embeddings.weight")[ids]
    L = ids.shape[1]
    for i in range(N_LAYER):
        p = f"layers.{i}."
        h = F.layer_norm(x, (D,), g(p + "norm1.weight"), g(p + "norm1.bias"), 1e-5)
        u = (h @ g(p + "mixer.in_proj.weight").T + g(p + "mixer.in_proj.bias")).transpose(1, 2)
        uc = F.conv1d(u, g(p + "mixer.short_filter.weight"), g(p + "mixer.short_filter.bias"), padding=2,
                      groups=3 * D)[..., :L]
        x0, x1, v = uc.split(D, dim=1)
        z, t = g(p + "mixer.filter_fn.pos_emb.z")[:, :L], g(p + "mixer.filter_fn.pos_emb.t")[:, :L]
        k = z
        for j in range(0, 6, 2):
            k = torch.sin(g(p + f"mixer.filter_fn.implicit_filter.{j + 1}.freq") *
                          (k @ g(p + f"mixer.filter_fn.implicit_filter.{j}.weight").T +
                           g(p + f"mixer.filter_fn.implicit_filter.{j}.bias")))
        k = k @ g(p + "mixer.filter_fn.implicit_filter.6.weight").T
        k = k * (torch.exp(-t * g(p + "mixer.filter_fn.modulation.deltas").abs()) + 0.05)
        k = k[0].T  # (D, L)
        v = v * x1
        n = 2 * L
        y = torch.fft.irfft(torch.fft.rfft(v, n=n) * torch.fft.rfft(k, n=n) / n, n=n, norm="forward")[..., :L]
        v = y + v * g(p + "mixer.filter_fn.bias")[:, None]
        y = (v * x0).transpose(1, 2) @ g(p + "mixer.out_proj.weight").T + g(p + "mixer.out_proj.bias")
        x = x + y
        h = F.layer_norm(x, (D,), g(p + "norm2.weight"), g(p + "norm2.bias"), 1e-5)
        h = F.gelu(h @ g(p + "mlp.fc1.weight").T + g(p + "mlp.fc1.bias"), approximate="tanh")
        x = x + h @ g(p + "mlp.fc2.weight").T + g(p + "mlp.fc2.bias")
    x = F.layer_norm(x, (D,), g("ln_f.weight"), g("ln_f.bias"), 1e-5)
    return x @ g("embeddings.word_embeddings.weight").T


@pytest.fixture
def original_dir(tmp_path):
    st = _original_state()
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    torch.save({"state_dict": st, "epoch": 3, "global_step": 100}, tmp_path / "weights.ckpt")
    return tmp_path, st


def test_hyenadna_original_layout_loads_and_matches_the_original_forward(original_dir):
    path, st = original_dir
    model = zoo.load_pretrained(path)
    assert model.config.vocab_size == 16 and model.config.layout == "hyena"
    ids = torch.randint(7, 12, (2, 50), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, _original_forward(st, ids), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="l_max=64 positions, got 65"):
        model(torch.full((1, 65), 7))


def test_hyenadna_loading_is_strict(original_dir):
    path, st = original_dir
    st = dict(st)
    st.pop("model.backbone.layers.1.mlp.fc2.bias")
    st["model.backbone.layers.0.mixer.extra"] = torch.zeros(1)
    torch.save({"state_dict": st}, path / "weights.ckpt")
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): blocks.1.mlp.down_proj.bias"):
        zoo.load_pretrained(path)
