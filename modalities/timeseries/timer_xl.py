"""Timer-XL (Liu et al., ICLR 2025): a decoder-only Transformer over patches of every variable, built from the
shared :class:`zoo.block.Block` with the ``time_attention`` mixer.

Per window ``(B, L, C)``: each variable is optionally normalised by its own lookback mean and std (instance norm), cut
into ``N = L / patch_len`` patches, and each patch embedded by one linear map. The ``C · N`` tokens (variable-major)
pass through post-norm blocks whose attention uses the Kronecker mask (variable dependency ⊗ causal over patches), a
learned per-head same/other-variable bias and RoPE over the patch index. Token (c, t) predicts patch t + 1 of variable
c; training minimises the MSE of every token's prediction (next-patch teacher forcing). Longer horizons are forecast by
rolling: append the predicted patch, drop the oldest, repeat.

The layout of Timer checkpoints (``thuml/timer-base-84m``: ``model_type: timer``) is the same network without the
variable bias: LayerNorm post-norm blocks, q/k/v with bias, o without, a SwiGLU MLP without bias, a final LayerNorm,
bias-free patch embedding and head. Those checkpoints are univariate; :meth:`TimerXL.from_hf` sets
``channel_independent`` so multivariate data is forecast channel by channel (each variable folded into the batch),
which is what the identity dependency matrix would give, at 1/C of the attention cost.

Position convention: RoPE over the full head dimension in the ``rotate_half`` layout with the patch index as position,
as Timer checkpoints do. (OpenLTM's Timer-XL code rotates half the head dimension in an interleaved layout and counts
positions over the flattened variable-major sequence; checkpoints from it would need a different mapping.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from zoo.block import Block, SeqContext, VariableLayout
from zoo.keymaps import KeyMap
from zoo.positions import RotaryEmbedding
from zoo.registry import register_architecture


@dataclass
class TimerXLConfig:
    patch_len: int = 96
    d_model: int = 256
    n_layer: int = 1
    n_head: int = 8
    d_ff: int = 512
    rope_theta: float = 10000.0
    variable_bias: bool = True
    channel_independent: bool = False  # True: every variable is its own sequence (univariate checkpoints)
    instance_norm: bool = True  # normalise each variable by its lookback mean / std, de-normalise the forecast
    dropout: float = 0.1
    norm_eps: float = 1e-5
    init_std: float = 0.02
    backend: str = "auto"  # attention backend (zoo.kernels.attention.BACKENDS)

    def __post_init__(self):
        if self.d_model % self.n_head or (self.d_model // self.n_head) % 2:
            raise ValueError(f"d_model ({self.d_model}) / n_head ({self.n_head}) must be an even head_dim for RoPE")


@register_architecture
class TimerXL(nn.Module):
    arch = "timer_xl"
    hf_model_types = ("timer",)
    modality = "series"

    def __init__(self, config: TimerXLConfig):
        super().__init__()
        c = self.config = config
        self.embed = nn.Linear(c.patch_len, c.d_model, bias=False)
        self.rope = RotaryEmbedding(c.d_model // c.n_head, c.rope_theta)
        attn = {"n_head": c.n_head, "qkv_bias": True, "variable_bias": c.variable_bias, "backend": c.backend}
        self.blocks = nn.ModuleList(
            Block(c.d_model, "time_attention", attn, mlp="swiglu", d_ff=c.d_ff, norm="layernorm", norm_eps=c.norm_eps,
                  norm_position="post", dropout=c.dropout)
            for _ in range(c.n_layer)
        )
        self.norm = nn.LayerNorm(c.d_model, eps=c.norm_eps)
        self.head = nn.Linear(c.d_model, c.patch_len, bias=False)
        self.apply(self._init)

    def _init(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=self.config.init_std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, series: Tensor, dependency: Tensor | None = None) -> Tensor:
        """series ``(B, L, C)`` with L a multiple of patch_len → ``(B, L, C)``: positions ``[i·P, (i+1)·P)`` hold the
        forecast of patch i + 1, made from patches 0 … i. ``dependency`` ``(C, C)`` bool: which variables each may
        attend to (default all; ignored when channel_independent)."""
        if series.dim() != 3:
            raise ValueError(f"Timer-XL takes series as (batch, time, variables), got shape {tuple(series.shape)}")
        b, length, n_vars = series.shape
        p = self.config.patch_len
        if length == 0 or length % p:
            raise ValueError(f"series length {length} is not a positive multiple of patch_len {p}")
        n_patches = length // p
        x = series.float()
        if self.config.instance_norm:
            mean = x.mean(1, keepdim=True)
            std = torch.sqrt(x.var(1, keepdim=True, unbiased=False) + 1e-5)
            x = (x - mean) / std
        # (B, L, C) → (B, C, N, P): variable-major patches
        patches = x.transpose(1, 2).reshape(b, n_vars, n_patches, p)
        if self.config.channel_independent:
            patches = patches.reshape(b * n_vars, 1, n_patches, p)
            layout = VariableLayout(1, n_patches)
        else:
            layout = VariableLayout(n_vars, n_patches, dependency)
        rows, vars_per_row = patches.shape[:2]
        h = self.embed(patches.reshape(rows, vars_per_row * n_patches, p))
        ctx = SeqContext(rope=self.rope(layout.patch_ids(h.device)), variables=layout)
        for block in self.blocks:
            h = block(h, ctx)
        out = self.head(self.norm(h))  # (rows, vars_per_row · N, P)
        out = out.reshape(b, n_vars, n_patches * p).transpose(1, 2)
        if self.config.instance_norm:
            out = out * std + mean
        return out

    @torch.no_grad()
    def forecast(self, series: Tensor, horizon: int) -> Tensor:
        """Rolling forecast ``(B, horizon, C)`` from the lookback ``(B, L, C)``: each step predicts one patch from the
        last L points (earlier predictions included), exactly how one horizon-P model reaches 192, 336 and 720."""
        p = self.config.patch_len
        window, preds = series, []
        for _ in range(-(-horizon // p)):
            nxt = self(window)[:, -p:]
            preds.append(nxt)
            window = torch.cat((window[:, p:], nxt.to(window.dtype)), dim=1)
        return torch.cat(preds, dim=1)[:, :horizon]

    # ---- zoo checkpoints (zoo.fit) ---------------------------------------------------------------------------
    def config_dict(self) -> dict:
        return asdict(self.config)

    @classmethod
    def from_config_dict(cls, d: dict, **overrides) -> TimerXL:
        return cls(TimerXLConfig(**{**d, **overrides}))

    # ---- Timer checkpoints (thuml/timer-base-84m) ------------------------------------------------------------
    @classmethod
    def from_hf(cls, hf_config: dict, **overrides) -> TimerXL:
        return cls(TimerXLConfig(**{**timer_config_from_hf(hf_config), **overrides}))

    def state_dict_from_hf(self, hf_state: dict[str, Tensor]) -> dict[str, Tensor]:
        return state_dict_from_timer(hf_state)


def timer_config_from_hf(cfg: dict) -> dict:
    """A Timer config.json → TimerXLConfig fields; refuses what this architecture does not reproduce."""
    act = cfg.get("hidden_act", "silu")
    if act != "silu":
        raise ValueError(f"Timer config.json hidden_act {act!r}: only 'silu' (a SwiGLU MLP) is supported")
    patch_len = cfg["input_token_len"]
    heads = cfg.get("output_token_lens", [patch_len])
    if list(heads) != [patch_len]:
        raise ValueError(
            f"Timer config.json output_token_lens {heads}: only one head of input_token_len ({patch_len}) is supported"
        )
    return {
        "patch_len": patch_len,
        "d_model": cfg["hidden_size"],
        "n_layer": cfg["num_hidden_layers"],
        "n_head": cfg["num_attention_heads"],
        "d_ff": cfg["intermediate_size"],
        "rope_theta": float(cfg.get("rope_theta", 10000.0)),
        "variable_bias": False,
        "channel_independent": True,
        "instance_norm": True,
        "dropout": 0.0,
    }


# Timer's key layout (thuml/timer-base-84m: model.embed_layer.emb, model.layers.{i}.self_attn.q_proj, …, lm_heads.0)
TIMER_KEYS = KeyMap([
    ("model.embed_layer.emb", "embed"),
    *[(f"model.layers.{{i}}.{timer}", f"blocks.{{i}}.{zoo}") for timer, zoo in (
        ("self_attn.q_proj", "mixer.q_proj"), ("self_attn.k_proj", "mixer.k_proj"),
        ("self_attn.v_proj", "mixer.v_proj"), ("self_attn.o_proj", "mixer.o_proj"),
        ("ffn_layer.gate_proj", "mlp.gate_proj"), ("ffn_layer.up_proj", "mlp.up_proj"),
        ("ffn_layer.down_proj", "mlp.down_proj"))],
    ("model.layers.{i}", "blocks.{i}"),  # norm1, norm2 keep their names
    ("model.norm", "norm"),
    ("lm_heads.0", "head"),
], name="Timer")


def state_dict_from_timer(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Timer's keys → this module's (unknown keys are kept under their own name so the strict load reports them)."""
    return TIMER_KEYS.state_to_zoo(state)
