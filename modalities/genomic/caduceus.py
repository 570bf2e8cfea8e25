"""Caduceus-PS: BiMamba blocks with reverse-complement parameter sharing (RCPS), for DNA.

Every hidden state has 2·d channels: the first d follow the strand as read, the last d the reverse complement,
stored flipped in sequence and channel. With RC(h) = h flipped in both the sequence and the channel axis:

- embedding: [e(x), RC(e(rc(x)))], where rc(x) complements the bases and reverses the sequence;
- each block: [f(h₁), RC(f(RC(h₂)))] for the same mixer f (a BiMamba) on both halves, and likewise for the norms
  (a channel-flipped norm on the second half);
- the LM head: h₁ Wᵀ + flip_c(h₂) (P W)ᵀ, with P the complement permutation of the vocabulary.

So the model is reverse-complement equivariant exactly: logits(rc(x)) = P · reverse(logits(x)) (tested). Parameters
are those of a d-channel model; compute is that of two. ``d_model`` is the width of one strand, as in Caduceus' own
config (caduceus-ps_…_d_model-256 carries 2 × 256 channels). The vocabulary is HyenaDNA's character ids (A 7, C 8,
G 9, T 10, N 11).

``rcps=False`` is Caduceus-Ph (and, over amino acids, LC-PLM's BiMamba-S): plain pre-norm BiMamba blocks, d
channels, a tied head. Both are masked LMs (each position predicts its own token).

The original checkpoints (kuleshov-group/caduceus-{ph,ps}_…, ``model_type: caduceus``) load through
``zoo.load_pretrained(dir)``. Their ``fused_add_norm: true`` path (how they were trained, with mamba-ssm's Triton
add-norm) differs from the unfused one in one respect that changes the function: each RCPS block's add-norm returns
the two strands' halves swapped. ``swap_strands`` reproduces it; it commutes with RC, so equivariance holds either way.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.block import Block, SeqContext, checkpointed
from zoo.layers import make_norm
from zoo.lm import LMOutput
from zoo.registry import MIXERS, register_architecture

# HyenaDNA's character ids: A 7 ↔ T 10, C 8 ↔ G 9, N 11 and the special tokens map to themselves
DNA_COMPLEMENT = {7: 10, 8: 9, 9: 8, 10: 7}


def rc_flip(h: Tensor) -> Tensor:
    """Reverse a (B, L, C) tensor in the sequence and the channel axis."""
    return h.flip(1, 2)


@dataclass
class CaduceusConfig:
    vocab_size: int = 16
    d_model: int = 128
    n_layer: int = 4
    norm: str = "rmsnorm"
    norm_eps: float = 1e-5
    mixer: str = "bimamba"
    mixer_kwargs: dict[str, Any] = field(default_factory=lambda: {"tie": "projections", "d_state": 16, "expand": 2})
    complement: dict[int, int] = field(default_factory=lambda: dict(DNA_COMPLEMENT))
    rcps: bool = True  # False: Caduceus-Ph / LC-PLM (no reverse-complement sharing)
    swap_strands: bool = False  # the original's fused add-norm order (see the module docstring)
    # std of the (tied) embedding's normal init, Caduceus' initializer_range: with nn.Embedding's default of 1 the
    # tied head starts with logits of std ≈ √d_model, and a masked LM starts near 45 nats instead of ln(V)
    init_std: float = 0.02

    def permutation(self) -> list[int]:
        """Vocabulary permutation of the complement (identity for ids without a partner); must be an involution."""
        perm = list(range(self.vocab_size))
        for a, b in self.complement.items():
            perm[int(a)] = int(b)
        if any(perm[perm[i]] != i for i in range(self.vocab_size)):
            raise ValueError(f"complement map {self.complement} is not its own inverse (A↔T needs both entries)")
        return perm


class RCPSNorm(nn.Module):
    def __init__(self, kind: str, d_model: int, eps: float):
        super().__init__()
        self.norm = make_norm(kind, d_model, eps)

    def forward(self, h: Tensor) -> Tensor:
        d = h.shape[-1] // 2
        return torch.cat((self.norm(h[..., :d]), self.norm(h[..., d:].flip(-1)).flip(-1)), dim=-1)


class RCPSBlock(nn.Module):
    """Pre-norm residual block whose mixer runs on both strands with shared parameters."""

    def __init__(self, config: CaduceusConfig):
        super().__init__()
        self.swap_strands = config.swap_strands
        self.norm = RCPSNorm(config.norm, config.d_model, config.norm_eps)
        self.mixer = MIXERS.get(config.mixer)(d_model=config.d_model, **config.mixer_kwargs)
        self.checkpointing = False  # as zoo.block.Block (zoo.parallel.set_activation_checkpointing)

    def forward(self, h: Tensor, ctx: SeqContext) -> Tensor:
        return checkpointed(self, self._forward, h, ctx)

    def _forward(self, h: Tensor, ctx: SeqContext) -> Tensor:
        d = h.shape[-1] // 2
        if self.swap_strands:
            h = torch.cat((h[..., d:], h[..., :d]), dim=-1)
        x = self.norm(h)
        y = torch.cat((self.mixer(x[..., :d], ctx), rc_flip(self.mixer(rc_flip(x[..., d:]), ctx))), dim=-1)
        return h + y


@register_architecture
class Caduceus(nn.Module):
    arch = "caduceus"
    hf_model_types = ("caduceus",)
    modality = "tokens"
    is_causal = False  # a masked LM: every position sees the whole sequence
    fsdp_in_parent = ("embed",)  # the tied head reads embed.weight directly: FSDP keeps it in this model's unit

    def __init__(self, config: CaduceusConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        nn.init.normal_(self.embed.weight, std=config.init_std)
        if config.rcps:
            self.blocks = nn.ModuleList(RCPSBlock(config) for _ in range(config.n_layer))
            self.norm_f = RCPSNorm(config.norm, config.d_model, config.norm_eps)
            self.register_buffer("complement_ids", torch.tensor(config.permutation()), persistent=False)
        else:
            if config.swap_strands:
                raise ValueError("CaduceusConfig.swap_strands applies to RCPS models only (rcps=True)")
            self.blocks = nn.ModuleList(
                Block(config.d_model, config.mixer, config.mixer_kwargs, mlp="none", norm=config.norm,
                      norm_eps=config.norm_eps) for _ in range(config.n_layer))
            self.norm_f = make_norm(config.norm, config.d_model, config.norm_eps)

    def reverse_complement_ids(self, input_ids: Tensor) -> Tensor:
        return self.complement_ids[input_ids].flip(-1)

    def hidden_states(self, input_ids: Tensor) -> Tensor:
        """(B, L) ids → (B, L, 2·d_model) RCPS hidden states ((B, L, d_model) without RCPS)."""
        if self.config.rcps:
            h = torch.cat((self.embed(input_ids), rc_flip(self.embed(self.reverse_complement_ids(input_ids)))), -1)
        else:
            h = self.embed(input_ids)
        ctx = SeqContext()
        for block in self.blocks:
            h = block(h, ctx)
        return self.norm_f(h)

    def forward(self, input_ids: Tensor, labels: Tensor | None = None) -> LMOutput:
        """Logits (B, L, vocab); with ``labels`` (-100 ignored) the per-token cross-entropy at the same positions
        (masked-LM style: a bidirectional model predicts the token at each position, not the next one)."""
        h = self.hidden_states(input_ids)
        d = self.config.d_model
        w = self.embed.weight  # tied, as in Caduceus
        if self.config.rcps:
            logits = F.linear(h[..., :d], w) + F.linear(h[..., d:].flip(-1), w[self.complement_ids])
        else:
            logits = F.linear(h, w)
        loss = None
        if labels is not None:
            target = labels.reshape(-1)
            total = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target, ignore_index=-100,
                                    reduction="sum")
            loss = total / (target != -100).sum().clamp(min=1)
        return LMOutput(logits=logits, loss=loss)

    def config_dict(self) -> dict:
        return asdict(self.config)

    @classmethod
    def from_config_dict(cls, d: dict, **overrides) -> Caduceus:
        d = {**d, **overrides}
        if "complement" in d:  # JSON / YAML give string keys
            d["complement"] = {int(k): int(v) for k, v in d["complement"].items()}
        return cls(CaduceusConfig(**d))


    # ---- the original checkpoints (CaduceusForMaskedLM, model_type "caduceus") --------------------------------

    @classmethod
    def from_hf(cls, hf_config: dict, **overrides) -> Caduceus:
        return cls(CaduceusConfig(**{**caduceus_config_from_hf(hf_config), **overrides}))

    def state_dict_from_hf(self, hf_state: dict[str, Tensor]) -> dict[str, Tensor]:
        return state_dict_from_original(hf_state, self.config)


ORIGINAL_SSM_DEFAULTS = {"d_state": 16, "d_conv": 4, "expand": 2, "dt_rank": "auto", "bias": False, "conv_bias": True}
# ssm_cfg entries that only shape the initialisation or pick a kernel; they do not change a loaded model's function
_SSM_INIT_ONLY = {"dt_min", "dt_max", "dt_init", "dt_scale", "dt_init_floor", "use_fast_path", "layer_idx"}


def caduceus_config_from_hf(cfg: dict) -> dict:
    """The original config.json (CaduceusConfig of kuleshov-group/caduceus) → CaduceusConfig fields."""
    if not cfg.get("bidirectional", True):
        raise ValueError("config.json bidirectional=false: only bidirectional Caduceus models are supported")
    if cfg.get("bidirectional_strategy", "add") not in ("add", None):
        raise ValueError(f"config.json bidirectional_strategy={cfg['bidirectional_strategy']!r}: only 'add' is "
                         "supported")
    ssm = dict(cfg.get("ssm_cfg") or {})
    unknown = set(ssm) - set(ORIGINAL_SSM_DEFAULTS) - _SSM_INIT_ONLY
    if unknown:
        raise ValueError(f"config.json ssm_cfg has entries the zoo's Mamba does not take: {sorted(unknown)}")
    mamba = {k: ssm.get(k, v) for k, v in ORIGINAL_SSM_DEFAULTS.items()}
    vocab, multiple = cfg.get("vocab_size", 12), cfg.get("pad_vocab_size_multiple", 8)
    vocab += (-vocab) % multiple  # the original pads the vocabulary (and the complement map, with identities)
    rcps = bool(cfg.get("rcps", False))
    out = {"vocab_size": vocab, "d_model": cfg["d_model"], "n_layer": cfg["n_layer"],
           "norm": "rmsnorm" if cfg.get("rms_norm", True) else "layernorm", "norm_eps": cfg.get("norm_epsilon", 1e-5),
           "mixer": "bimamba",
           "mixer_kwargs": {"tie": "projections" if cfg.get("bidirectional_weight_tie", True) else "none", **mamba},
           "rcps": rcps, "swap_strands": rcps and bool(cfg.get("fused_add_norm", True))}
    if rcps:
        cmap = {int(k): int(v) for k, v in (cfg.get("complement_map") or {}).items()}
        if not cmap:
            raise ValueError("config.json rcps=true needs a complement_map")
        out["complement"] = {k: v for k, v in cmap.items() if k != v}
    return out


def state_dict_from_original(state: dict[str, Tensor], config: CaduceusConfig) -> dict[str, Tensor]:
    """Original keys (``caduceus.backbone.…``, ``lm_head.…``; RCPS modules wrap theirs in ``.embedding`` /
    ``.submodule`` / ``.lm_head``) → the zoo's. The complement maps stored as buffers must equal the config's, and the
    tied head (if present) must equal the embedding."""
    out: dict[str, Tensor] = {}
    complement = torch.tensor(config.permutation()) if config.rcps else None
    head = None
    for key, v in state.items():
        k = key[len("caduceus."):] if key.startswith("caduceus.") else key
        k = k[len("backbone."):] if k.startswith("backbone.") else k
        if k.endswith("complement_map"):
            if complement is not None and not torch.equal(v.long().cpu(), complement):
                raise ValueError(f"{key}: complement map {v.tolist()} differs from config.json's {complement.tolist()}")
            continue
        if k.startswith("lm_head."):
            head = v
            continue
        k = k.replace(".submodule.", ".").replace("word_embeddings.embedding.", "word_embeddings.")
        if k.startswith("embeddings.word_embeddings."):
            out["embed." + k.rsplit(".", 1)[1]] = v
        elif k.startswith("norm_f."):
            out[("norm_f.norm." if config.rcps else "norm_f.") + k.rsplit(".", 1)[1]] = v
        elif k.startswith("layers."):
            _, i, rest = k.split(".", 2)
            p = f"blocks.{i}."
            if rest.startswith("norm."):
                out[p + ("norm.norm." if config.rcps else "norm1.") + rest[len("norm."):]] = v
            elif rest.startswith(("mixer.mamba_fwd.", "mixer.mamba_rev.")):
                direction = "fwd" if rest.startswith("mixer.mamba_fwd.") else "rev"
                out[f"{p}mixer.{direction}.{rest.split('.', 2)[2]}"] = v
            else:
                out[p + rest] = v  # unknown: the strict loader names it
        else:
            out[k] = v
    if head is not None and "embed.weight" in out and not torch.equal(head, out["embed.weight"]):
        raise ValueError("lm_head weight differs from the embedding: the zoo's Caduceus ties them, as the original")
    if config.mixer_kwargs.get("tie", "projections") == "projections":
        # tied projections: the checkpoint may store the reverse direction's copy or not
        for k in [k for k in out if re.search(r"\.mixer\.fwd\.(in_proj|out_proj)\.", k)]:
            rev = k.replace(".mixer.fwd.", ".mixer.rev.")
            if rev in out and not torch.equal(out[rev], out[k]):
                raise ValueError(f"{rev}: differs from the forward direction's, but bidirectional_weight_tie is set")
            out[rev] = out[k]
    return out
