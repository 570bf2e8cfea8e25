"""Mamba-1 mixer: in_proj → causal depthwise conv → SiLU → selective scan (input-dependent dt, B, C) → gate → out_proj.

Parameter names follow mamba-ssm / transformers' MambaMixer (in_proj, conv1d, x_proj, dt_proj, A_log, D, out_proj),
so checkpoints map one to one. With a generation cache it runs token by token from a (conv_state, ssm_state) pair,
which gives the same outputs as the full forward.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.kernels.causal_conv1d import causal_conv1d
from zoo.kernels.selective_scan import selective_scan

from ..block import SeqContext
from ..registry import register_mixer


@register_mixer("mamba")
class Mamba(nn.Module):
    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | str = "auto",
        bias: bool = False,
        conv_bias: bool = True,
        dt_min: float = 1e-3,
        dt_max: float = 0.1,
        scan_backend: str = "auto",
        conv_backend: str = "auto",
        d_inner: int | None = None,
        dt_init: str = "random",
        dt_scale: float = 1.0,
        dt_init_floor: float = 1e-4,
    ):
        """``d_inner`` (transformers' intermediate_size) overrides ``expand * d_model``. ``dt_min``, ``dt_max``,
        ``dt_init`` ("random": dt_proj.weight uniform in ±dt_scale/√dt_rank, "constant": all that value), ``dt_scale``
        and ``dt_init_floor`` only shape the initialisation (mamba-ssm's dt_* / transformers' time_step_*)."""
        super().__init__()
        if dt_init not in ("random", "constant"):
            raise ValueError(f"Mamba dt_init must be 'random' or 'constant', got {dt_init!r}")
        self.expand = expand
        self.d_inner = expand * d_model if d_inner is None else int(d_inner)
        self.d_state, self.d_conv = d_state, d_conv
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.dt_min, self.dt_max, self.dt_init, self.dt_scale, self.dt_init_floor = (
            dt_min, dt_max, dt_init, dt_scale, dt_init_floor)
        self.scan_backend, self.conv_backend = scan_backend, conv_backend
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1,
                                bias=conv_bias)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)
        self.A_log = nn.Parameter(torch.empty(self.d_inner, d_state, dtype=torch.float32))
        self.D = nn.Parameter(torch.empty(self.d_inner))
        self.init_ssm_parameters()

    @torch.no_grad()
    def init_ssm_parameters(self) -> None:
        """S4D-real A = -[1..N] per channel, D = 1, dt_proj.weight by ``dt_init``, and dt = softplus(dt_proj.bias)
        spread log-uniformly in [dt_min, dt_max] (clamped at dt_init_floor). CausalLM calls it again after its
        generic Linear init, which would otherwise overwrite dt_proj."""
        self.A_log.copy_(torch.log(torch.arange(1, self.d_state + 1, dtype=torch.float32,
                                                   device=self.A_log.device)).repeat(self.d_inner, 1))
        self.D.fill_(1.0)
        std = self.dt_rank ** -0.5 * self.dt_scale
        if self.dt_init == "constant":
            self.dt_proj.weight.fill_(std)
        else:
            self.dt_proj.weight.uniform_(-std, std)
        lo, hi = math.log(self.dt_min), math.log(self.dt_max)
        dt = torch.exp(torch.rand(self.d_inner, device=self.dt_proj.bias.device) * (hi - lo) + lo)
        dt = dt.clamp(min=self.dt_init_floor)
        self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus

    def _ssm_params(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x (B, L, d_inner) → dt (B, d_inner, L) before bias/softplus, B and C (B, N, L)."""
        dt, B, C = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = dt @ self.dt_proj.weight.t()
        return dt.transpose(1, 2), B.transpose(1, 2), C.transpose(1, 2)

    def forward(self, hidden: Tensor, ctx: SeqContext, state: dict | None = None) -> Tensor:
        if ctx.segment_ids is not None:
            raise ValueError("the Mamba mixer does not take packed segment_ids (its state would leak across documents)")
        if state is not None and "ssm" in state:
            return self._step(hidden, state)
        x, z = self.in_proj(hidden).chunk(2, dim=-1)  # (B, L, d_inner) each
        x_t = x.transpose(1, 2)
        weight = self.conv1d.weight[:, 0]
        xc = causal_conv1d(x_t, weight, self.conv1d.bias, "silu", backend=self.conv_backend)
        dt, B, C = self._ssm_params(xc.transpose(1, 2))
        A = -torch.exp(self.A_log.float())
        y, last = selective_scan(xc, dt, A, B, C, self.D.float(), z.transpose(1, 2), self.dt_proj.bias.float(),
                                 delta_softplus=True, return_last_state=True, backend=self.scan_backend)
        if state is not None:
            pad = max(0, self.d_conv - x_t.shape[-1])
            state["conv"] = F.pad(x_t, (pad, 0))[..., -self.d_conv:].detach()
            state["ssm"] = last.detach()
        return self.out_proj(y.transpose(1, 2).to(hidden.dtype))

    def _step(self, hidden: Tensor, state: dict) -> Tensor:
        """Token-by-token recurrence for generation; hidden (B, T, d_model) is consumed one token at a time."""
        outs = []
        A = -torch.exp(self.A_log.float())
        for t in range(hidden.shape[1]):
            x, z = self.in_proj(hidden[:, t]).chunk(2, dim=-1)  # (B, d_inner)
            conv = torch.cat((state["conv"][..., 1:], x[..., None]), dim=-1)
            state["conv"] = conv
            xc = (conv * self.conv1d.weight[:, 0]).sum(-1)
            if self.conv1d.bias is not None:
                xc = xc + self.conv1d.bias
            xc = F.silu(xc)
            dt, B, C = self._ssm_params(xc[:, None])
            dt = F.softplus(dt[..., 0].float() + self.dt_proj.bias.float())  # (B, d_inner)
            h = torch.exp(dt[..., None] * A) * state["ssm"] + (dt * xc.float())[..., None] * B[:, None, :, 0].float()
            state["ssm"] = h
            y = (h * C[:, None, :, 0].float()).sum(-1) + self.D.float() * xc.float()
            outs.append((y * F.silu(z.float())).to(hidden.dtype))
        return self.out_proj(torch.stack(outs, dim=1))


@register_mixer("bimamba")
class BiMamba(nn.Module):
    """Bidirectional Mamba (Caduceus / LC-PLM): one Mamba over the sequence, one over its reverse, outputs added.

    ``tie``: "projections" shares in_proj and out_proj between the two directions (BiMamba-S, Caduceus'
    bidirectional_weight_tie), "all" shares every parameter, "none" shares nothing. No causal step mode: each position
    sees the whole sequence.
    """

    def __init__(self, d_model: int, tie: str = "projections", **mamba_kwargs):
        super().__init__()
        if tie not in ("none", "projections", "all"):
            raise ValueError(f"BiMamba tie must be 'none', 'projections' or 'all', got {tie!r}")
        self.tie = tie
        self.fwd = Mamba(d_model, **mamba_kwargs)
        self.rev = self.fwd if tie == "all" else Mamba(d_model, **mamba_kwargs)
        if tie == "projections":
            self.rev.in_proj = self.fwd.in_proj
            self.rev.out_proj = self.fwd.out_proj

    def forward(self, hidden: Tensor, ctx: SeqContext, state: dict | None = None) -> Tensor:
        if state is not None:
            raise ValueError("BiMamba is bidirectional: it has no generation cache")
        return self.fwd(hidden, ctx) + self.rev(hidden.flip(1), ctx).flip(1)
