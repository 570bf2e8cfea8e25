"""HyenaDNA from its original checkpoints (LongSafari/hyenadna-*-seqlen): ``config.json`` + Lightning ``weights.ckpt``.

HyenaDNA is the zoo's causal LM with Hyena mixers: LayerNorm pre-norm blocks, a tanh-GELU MLP (d_inner), tied
embeddings over the 12 character ids padded to a multiple of 8, and Hyena filters whose positional features are
computed once for ``l_max`` and stored with the weights. ``hyenadna_config(cfg)`` maps the original config; the loader
maps the original keys (``model.backbone.layers.{i}.mixer.filter_fn.implicit_filter.*``, ``…norm1``, ``…mlp.fc1`` …)
strictly. Two details of the original are carried over exactly:

- its gating uses the first projected chunk outside the long convolution and the second inside (the zoo's mixer
  has them the other way round), so the loader swaps the two chunks of ``in_proj`` and ``short_filter``;
- its exponential modulation adds ``shift`` 0.05 to the decay window.

``weights.ckpt`` is read with ``torch.load(weights_only=True)``: a checkpoint that pickles other objects is refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor

from zoo.keymaps import KeyMap, prefixed
from zoo.lm import CausalLM, LMConfig
from zoo.registry import CHECKPOINT_LAYOUTS, CheckpointLayout

HYENADNA_SHIFT = 0.05


def hyenadna_config(cfg: dict) -> LMConfig:
    """The original config.json (d_model, n_layer, d_inner, vocab_size, pad_vocab_size_multiple, layer: {emb_dim,
    filter_order, l_max, w, …}) → LMConfig."""
    layer = cfg.get("layer") or {}
    if layer.get("_name_", "hyena") != "hyena":
        raise ValueError(f"config.json layer._name_={layer.get('_name_')!r}: only Hyena HyenaDNA models load")
    if cfg.get("attn_layer_idx"):
        raise ValueError("config.json attn_layer_idx: HyenaDNA models with attention layers are not supported")
    multiple = cfg.get("pad_vocab_size_multiple", 8)
    vocab = cfg.get("vocab_size", 12)
    vocab += (-vocab) % multiple
    hyena = dict(emb_dim=layer.get("emb_dim", 3), filter_order=layer.get("filter_order", 64),
                 w=layer.get("w", 1), l_max=layer["l_max"], shift=layer.get("shift", HYENADNA_SHIFT))
    if layer.get("local_order", 3) != 3:
        hyena["short_filter_order"] = layer["local_order"]
    if not layer.get("modulate", True):
        raise ValueError("config.json layer.modulate=false is not supported")
    return LMConfig(vocab_size=vocab, d_model=cfg["d_model"], n_layer=cfg["n_layer"], layout="hyena",
                    mixer_kwargs={"hyena": hyena}, mlp="gelu", d_ff=cfg.get("d_inner", 4 * cfg["d_model"]),
                    mlp_bias=True, norm="layernorm", norm_eps=cfg.get("layer_norm_epsilon", 1e-5),
                    tie_word_embeddings=True, max_position_embeddings=layer["l_max"])


def _swap_gates(w: Tensor, d: int) -> Tensor:
    """Swap the first two d-sized chunks along dim 0 (the original's outer/inner gates → the zoo's order)."""
    return torch.cat((w[d: 2 * d], w[:d], w[2 * d:]), dim=0)


_RULES = [
    ("backbone.embeddings.word_embeddings", "embed"),
    ("backbone.ln_f", "norm"),
    ("backbone.layers.{i}.mlp.fc1", "blocks.{i}.mlp.up_proj"),
    ("backbone.layers.{i}.mlp.fc2", "blocks.{i}.mlp.down_proj"),
    ("backbone.layers.{i}.mixer.filter_fn.pos_emb", "blocks.{i}.mixer.filter"),  # z, t
    ("backbone.layers.{i}.mixer.filter_fn.modulation", "blocks.{i}.mixer.filter"),  # deltas
    ("backbone.layers.{i}.mixer.filter_fn.implicit_filter", "blocks.{i}.mixer.filter.mlp"),
    ("backbone.layers.{i}.mixer.filter_fn.bias", "blocks.{i}.mixer.filter.bias"),
    ("backbone.layers.{i}", "blocks.{i}"),  # norm1, norm2, mixer.in_proj / short_filter / out_proj keep their names
]
# the original layout, with or without the Lightning ``model.`` prefix; its lm_head is tied to the embeddings
HYENADNA_KEYS = KeyMap(_RULES, read_only=prefixed(_RULES, hf="model", zoo=""), name="HyenaDNA weights.ckpt",
                       ignore=[r"^(model\.)?lm_head\."])
# what differs beyond the names: the order of the outer / inner gates, and the filter tensors' shapes
_VALUES = [
    (re.compile(r"\.mixer\.(in_proj|short_filter)\."), _swap_gates),
    (re.compile(r"\.mixer\.filter\.z$"), lambda v, d: v.reshape(v.shape[-2], v.shape[-1])),
    (re.compile(r"\.mixer\.filter\.t$"), lambda v, d: v.reshape(-1, 1)),
    (re.compile(r"\.mixer\.filter\.deltas$"), lambda v, d: v.reshape(1, -1)),
]


def state_dict_from_original(state: dict[str, Tensor], d_model: int) -> dict[str, Tensor]:
    """Original HyenaDNA keys (with or without the Lightning ``model.`` prefix) → the zoo's CausalLM keys."""
    out = HYENADNA_KEYS.state_to_zoo(state)
    for k, v in out.items():
        for pattern, convert in _VALUES:
            if pattern.search(k):
                out[k] = convert(v, d_model)
                break
    if "embed.weight" in out:
        out["lm_head.weight"] = out["embed.weight"]
    return out


def load_hyenadna(directory: str | Path, **overrides) -> CausalLM:
    """A LongSafari-layout directory (config.json + weights.ckpt) → CausalLM with its weights, loaded strictly."""
    from zoo.checkpoints import torch_load
    from zoo.loading import load_state_dict_strict

    directory = Path(directory)
    cfg = json.loads((directory / "config.json").read_text())
    config = hyenadna_config(cfg)
    if overrides:
        config = LMConfig.from_dict({**asdict(config), **overrides})
    ckpt = torch_load(directory / "weights.ckpt")
    state = ckpt.get("state_dict", ckpt)
    model = CausalLM(config)
    load_state_dict_strict(model, state_dict_from_original(state, config.d_model), str(directory / "weights.ckpt"))
    return model.eval()


def is_hyenadna_directory(directory: Path) -> bool:
    if not (directory / "weights.ckpt").exists() or not (directory / "config.json").exists():
        return False
    cfg = json.loads((directory / "config.json").read_text())
    return "model_type" not in cfg and "layer" in cfg and "d_model" in cfg


CHECKPOINT_LAYOUTS.register("hyenadna")(CheckpointLayout(detect=is_hyenadna_directory, load=load_hyenadna,
                                                                  tokenizer="char"))
