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


def _original_state(seed=0, d=D, n_layer=N_LAYER, d_inner=D_INNER, emb=EMB, order=ORDER, l_max=L_MAX):
    """Random weights under the original key names (what weights.ckpt's state_dict holds)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g) * 0.3  # noqa: E731
    st = {"model.backbone.embeddings.word_embeddings.weight": r(16, d),
          "model.backbone.ln_f.weight": 1 + r(d), "model.backbone.ln_f.bias": r(d)}
    t = torch.linspace(0, 1, l_max)[None, :, None]
    w = 2 * math.pi * torch.linspace(0, l_max - 1, l_max)[None, :, None] / l_max
    f = torch.linspace(1e-4, (emb - 1) // 2 - 1, (emb - 1) // 2)[None, None]
    z = torch.exp(-1j * f * w)
    z = torch.cat([t, z.real, z.imag], dim=-1)
    for i in range(n_layer):
        p = f"model.backbone.layers.{i}."
        st.update({p + "norm1.weight": 1 + r(d), p + "norm1.bias": r(d), p + "norm2.weight": 1 + r(d),
                   p + "norm2.bias": r(d), p + "mlp.fc1.weight": r(d_inner, d), p + "mlp.fc1.bias": r(d_inner),
                   p + "mlp.fc2.weight": r(d, d_inner), p + "mlp.fc2.bias": r(d),
                   p + "mixer.in_proj.weight": r(3 * d, d), p + "mixer.in_proj.bias": r(3 * d),
                   p + "mixer.out_proj.weight": r(d, d), p + "mixer.out_proj.bias": r(d),
                   p + "mixer.short_filter.weight": r(3 * d, 1, 3), p + "mixer.short_filter.bias": r(3 * d),
                   p + "mixer.filter_fn.bias": r(d), p + "mixer.filter_fn.pos_emb.z": z.clone(),
                   p + "mixer.filter_fn.pos_emb.t": t.clone(),
                   p + "mixer.filter_fn.modulation.deltas": torch.linspace(math.log(1e-2) / 1.5,
                                                                             math.log(1e-2) / 0.3, d)[None, None]})
        freq = 10 + r(1, order)  # one Sin module shared by the filter MLP, so one value under three keys
        for j, shape in ((0, (order, emb)), (2, (order, order)), (4, (order, order)), (6, (d, order))):
            st[p + f"mixer.filter_fn.implicit_filter.{j}.weight"] = r(*shape)
            if j < 6:
                st[p + f"mixer.filter_fn.implicit_filter.{j}.bias"] = r(shape[0])
                st[p + f"mixer.filter_fn.implicit_filter.{j + 1}.freq"] = freq
    return st


def _original_parameter_count(st):
    """Parameters of the original model: every tensor but the buffers (z, t, deltas), the shared freq once."""
    buffers = ("pos_emb.z", "pos_emb.t", "modulation.deltas")
    seen, total = set(), 0
    for key, value in st.items():
        if key.endswith(buffers) or id(value) in seen:
            continue
        seen.add(id(value))
        total += value.numel()
    return total


def _config(d=D, n_layer=N_LAYER, d_inner=D_INNER, emb=EMB, order=ORDER, l_max=L_MAX):
    layer = {**CONFIG["layer"], "emb_dim": emb, "filter_order": order, "l_max": l_max}
    return {**CONFIG, "d_model": d, "n_layer": n_layer, "d_inner": d_inner, "layer": layer}


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


@pytest.mark.parametrize("name, d, n_layer, l_max", [("hyenadna-tiny-1k", 128, 2, 1026),
                                                     ("hyenadna-small-32k", 256, 4, 32770)])
def test_real_size_counts_equal_the_original_layout_and_its_weights_load(tmp_path, name, d, n_layer, l_max):
    """The published registry's HyenaDNA sizes (zoo.published) against checkpoints of the original layout at those
    sizes: the same parameter count, a strict load through create_model(name, pretrained=DIR), and the other size
    refused by name."""
    st = _original_state(d=d, n_layer=n_layer, d_inner=4 * d, emb=5, order=64, l_max=l_max)
    params = _original_parameter_count(st)
    assert sum(p.numel() for p in zoo.create_model(name, device="meta").parameters()) == params
    (tmp_path / "config.json").write_text(json.dumps(_config(d, n_layer, 4 * d, 5, 64, l_max)))
    torch.save({"state_dict": st, "global_step": 1}, tmp_path / "weights.ckpt")
    loaded = zoo.create_model(name, pretrained=str(tmp_path))
    torch.testing.assert_close(loaded.embed.weight, st["model.backbone.embeddings.word_embeddings.weight"])
    other = "hyenadna-small-32k" if name == "hyenadna-tiny-1k" else "hyenadna-tiny-1k"
    with pytest.raises(ValueError, match=rf"holds a CausalLM of {params:,} parameters, not {other} \(CausalLM"):
        zoo.create_model(other, pretrained=str(tmp_path))
