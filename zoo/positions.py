"""Rotary position embeddings with float positions, frequency scaling and per-frequency-band positions.

One module for every position scheme in the zoo (the position-id schemes — plain, V2PE, span remapping for Partial
YaRN / VLAT — are at the end, registered in ``zoo.registry.POSITIONS``):
- positions are floats, so V2PE can advance visual tokens by fractional steps;
- ``scaling`` rescales the frequencies: ``linear`` (position interpolation), ``ntk`` (static NTK-aware base change),
  ``dynamic`` (NTK base recomputed from the current length, as transformers does), ``yarn`` (per-band blend of
  interpolation and extrapolation, plus an attention temperature folded into cos/sin);
- positions may be given per frequency pair, ``(B, N, head_dim // 2)``, which is how Partial YaRN rotates only the
  low-frequency dims with remapped positions (:func:`band_position_ids`).

Layout is the Hugging Face "rotate half" one used by Llama/Qwen2: cos/sin are ``cat(freqs, freqs)`` over head_dim.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor, nn

from .registry import POSITIONS

SCALING_TYPES = ("none", "linear", "ntk", "dynamic", "yarn")


@dataclass
class RopeScaling:
    type: str = "none"
    factor: float = 1.0
    original_max_position_embeddings: int | None = None
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    attention_factor: float | None = None
    truncate: bool = True

    def __post_init__(self):
        if self.type not in SCALING_TYPES:
            raise ValueError(f"rope_scaling.type must be one of {SCALING_TYPES}, got {self.type!r}")
        if self.type != "none" and self.factor <= 0:
            raise ValueError(f"rope_scaling.factor must be > 0, got {self.factor}")
        if self.type in ("yarn", "dynamic") and self.original_max_position_embeddings is None:
            raise ValueError(f"rope_scaling type {self.type!r} needs original_max_position_embeddings")

    @classmethod
    def from_dict(cls, d: dict | RopeScaling | None) -> RopeScaling:
        """Accepts zoo's keys and Hugging Face's (``rope_type``/``type``; extra HF keys such as rope_theta ignored)."""
        if d is None:
            return cls()
        if isinstance(d, RopeScaling):
            return d
        d = dict(d)
        kind = d.pop("type", None) or d.pop("rope_type", None) or "none"
        d.pop("rope_type", None)
        kind = {"default": "none"}.get(kind, kind)
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known - {"rope_theta", "mscale", "mscale_all_dim", "partial_rotary_factor"}
        if unknown:
            raise ValueError(f"rope_scaling has unknown keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(type=kind, **{k: v for k, v in d.items() if k in known})

    def to_dict(self) -> dict | None:
        return None if self.type == "none" else asdict(self)


def rope_inv_freq(
    head_dim: int, theta: float = 10000.0, scaling: RopeScaling | None = None, seq_len: int | None = None
) -> tuple[Tensor, float]:
    """Inverse frequencies ``(head_dim // 2,)`` and the attention factor that multiplies cos and sin."""
    scaling = scaling or RopeScaling()
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim
    kind, factor = scaling.type, scaling.factor
    if kind == "none":
        return 1.0 / theta**exponents, 1.0
    if kind == "linear":
        return 1.0 / theta**exponents / factor, 1.0
    if kind == "ntk":
        # Static NTK-aware: change the base so the lowest frequency is divided by exactly `factor`.
        base = theta * factor ** (head_dim / (head_dim - 2))
        return 1.0 / base**exponents, 1.0
    if kind == "dynamic":
        orig = scaling.original_max_position_embeddings
        seq_len = orig if seq_len is None else max(seq_len, orig)
        base = theta * ((factor * seq_len / orig) - (factor - 1)) ** (head_dim / (head_dim - 2))
        return 1.0 / base**exponents, 1.0
    # yarn
    orig = scaling.original_max_position_embeddings
    attention_factor = scaling.attention_factor
    if attention_factor is None:
        attention_factor = 0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0

    def correction_dim(n_rot: float) -> float:
        # the dimension whose wavelength fits n_rot times into the original context
        return head_dim * math.log(orig / (n_rot * 2 * math.pi)) / (2 * math.log(theta))

    low, high = correction_dim(scaling.beta_fast), correction_dim(scaling.beta_slow)
    if scaling.truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, head_dim - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(head_dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    pos_freqs = theta**exponents
    extrapolate = 1 - ramp  # 1 for high-frequency dims (kept), 0 for low-frequency dims (interpolated)
    inv_freq = (1.0 / (factor * pos_freqs)) * (1 - extrapolate) + (1.0 / pos_freqs) * extrapolate
    return inv_freq, float(attention_factor)


class RotaryEmbedding(nn.Module):
    """Positions → (cos, sin), each ``(B, N, head_dim)`` in fp32, whatever the model's dtype: the frequencies stay fp32
    through ``model.to(dtype)``, angles are computed with autocast off, and half-precision position ids are refused.

    ``position_ids``: ``(B, N)`` or ``(N,)`` float/int positions, or ``(B, N, head_dim // 2)`` per frequency pair.
    ``cos_scale``: optional ``(B, N)`` multiplier of cos and sin (e.g. Partial YaRN's 1/√T on an audio span).
    """

    def __init__(self, head_dim: int, theta: float = 10000.0, scaling: RopeScaling | dict | None = None):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary head_dim must be even, got {head_dim}")
        self.head_dim, self.theta = head_dim, float(theta)
        self.scaling = RopeScaling.from_dict(scaling)
        inv_freq, self.attention_factor = rope_inv_freq(head_dim, self.theta, self.scaling)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def _apply(self, fn, recurse=True):
        # model.to(bf16) / .half() / Lightning's bf16-true would round the frequencies (angle error ~2 rad at position
        # 1e5; "When Precision Meets Position", 2024): follow device moves, keep fp32
        inv_freq = self.inv_freq
        super()._apply(fn, recurse)
        self._buffers["inv_freq"] = inv_freq.to(self.inv_freq.device, torch.float32)
        return self

    def forward(self, position_ids: Tensor, cos_scale: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if position_ids.dtype in (torch.bfloat16, torch.float16):
            raise ValueError(
                f"position_ids are {position_ids.dtype}, which cannot hold positions exactly (bf16 steps by 512 at "
                "100,000); pass integer or float32 position ids"
            )
        with torch.autocast(position_ids.device.type, enabled=False):  # angles in fp32 under bf16-mixed too
            return self._cos_sin(position_ids.float(), cos_scale)

    def _cos_sin(self, pos: Tensor, cos_scale: Tensor | None) -> tuple[Tensor, Tensor]:
        if pos.dim() == 1:
            pos = pos[None]
        inv_freq, attention_factor = self.inv_freq, self.attention_factor
        if self.scaling.type == "dynamic":
            seq_len = int(pos.max().item()) + 1
            if seq_len > self.scaling.original_max_position_embeddings:
                inv_freq, attention_factor = rope_inv_freq(self.head_dim, self.theta, self.scaling, seq_len)
                inv_freq = inv_freq.to(pos.device)
        if pos.dim() == 3:
            if pos.shape[-1] != inv_freq.shape[0]:
                raise ValueError(
                    f"per-frequency position_ids need last dim {inv_freq.shape[0]} (head_dim/2), got {pos.shape[-1]}"
                )
            freqs = pos * inv_freq
        else:
            freqs = pos[..., None] * inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos() * attention_factor, emb.sin() * attention_factor
        if cos_scale is not None:
            cos, sin = cos * cos_scale.float()[..., None], sin * cos_scale.float()[..., None]
        return cos, sin


def rotate_half(x: Tensor) -> Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate x ``(B, H, N, D)`` by cos/sin ``(B, N, D)``; computed in fp32, returned in x's dtype."""
    cos, sin = cos[:, None], sin[:, None]
    xf = x.float()
    return (xf * cos + rotate_half(xf) * sin).to(x.dtype)


def band_position_ids(original: Tensor, remapped: Tensor, start_dim: int, n_freq: int) -> Tensor:
    """Per-frequency positions ``(B, N, n_freq)``: frequency pairs ≥ ``start_dim`` (the low-frequency ones) take
    ``remapped``, the others keep ``original`` (Partial YaRN)."""
    if not 0 <= start_dim <= n_freq:
        raise ValueError(f"start_dim must be in [0, {n_freq}], got {start_dim}")
    if original.shape != remapped.shape:
        raise ValueError(f"original {tuple(original.shape)} and remapped {tuple(remapped.shape)} positions differ")
    use_remapped = torch.arange(n_freq, device=original.device) >= start_dim
    return torch.where(use_remapped, remapped.float()[..., None], original.float()[..., None])


# ---- position-id schemes ----------------------------------------------------------------------------------------
# One interface for every model: ``scheme(is_media (N,) bool, **params) -> (N,) float32`` positions for one sequence
# whose media tokens (frames, audio windows, ...) are marked; registered by name in POSITIONS (zoo.registry) so that
# configs can name them. Computed in float64 and returned as float32 whatever the default dtype (bf16 would collapse
# V2PE's fractional steps past position 256).

_CEIL_TOLERANCE = 1e-9  # a run that ends within this of an integer ends on it (k·δ in floats: 30 × 0.1 = 3.0000000000000004)


def media_spans(is_media: Tensor) -> list[tuple[int, int]]:
    """(N,) bool → [(start, end)) of each run of media tokens, in order (vectorised: no per-token Python step)."""
    starts, lengths, media = _runs(is_media)
    return [(s, s + n) for s, n in zip(starts[media].tolist(), lengths[media].tolist())]


def _runs(is_media: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Run-length encoding of a bool (N,): (starts, lengths, is_media per run)."""
    flags = is_media.detach().to("cpu", torch.bool)
    change = torch.ones(flags.shape[0], dtype=torch.bool)
    change[1:] = flags[1:] != flags[:-1]
    starts = change.nonzero().flatten()
    lengths = torch.diff(starts, append=torch.tensor([flags.shape[0]]))
    return starts, lengths, flags[starts]


def _ceil(x: Tensor) -> Tensor:
    return torch.ceil(x - _CEIL_TOLERANCE * x.abs().clamp(min=1))


def plain_positions(is_media: Tensor) -> Tensor:
    """0, 1, 2, ... for every token, media or not."""
    return torch.arange(is_media.shape[0], dtype=torch.float32, device=is_media.device)


def v2pe_positions(is_media: Tensor, delta: float) -> Tensor:
    """V2PE (Ge et al., 2024): text steps by 1, media tokens by δ, and the token after a media run resumes at
    ceil(last media position) + 1; the first media token after text steps by 1. (N,) bool → (N,) float32.

    Vectorised over runs: a run starting at integer S holds S + j·step, and the next run starts at
    ceil(S + (len − 1)·step) + 1; only the run starts are a (short) cumulative loop over runs, not tokens."""
    n = is_media.shape[0]
    if n == 0:
        return torch.empty(0, dtype=torch.float32, device=is_media.device)
    starts, lengths, media = _runs(is_media)
    step = torch.where(media, torch.tensor(float(delta), dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    span = (lengths - 1).double() * step  # last position of each run minus its first
    run_first = torch.zeros(len(starts), dtype=torch.float64)
    if len(starts) > 1:  # S_{k+1} = ceil(S_k + span_k) + 1; S_k is an integer, so S_{k+1} - S_k = ceil(span_k) + 1
        run_first[1:] = torch.cumsum(_ceil(span[:-1]) + 1, 0)
    within = torch.arange(n, dtype=torch.float64) - torch.repeat_interleave(starts, lengths).double()
    pos = torch.repeat_interleave(run_first, lengths) + within * torch.repeat_interleave(step, lengths)
    return pos.float().to(is_media.device)


def v2pe_positions_ref(is_media: Tensor, delta: float) -> Tensor:
    """The V2PE rule one token at a time (the twin :func:`v2pe_positions` is tested against)."""
    vis = is_media.tolist()
    pos = torch.empty(len(vis), dtype=torch.float64)
    p = 0.0
    for i, v in enumerate(vis):
        if i == 0:
            p = 0.0
        elif v:
            p = p + (float(delta) if vis[i - 1] else 1.0)
        else:
            p = (float(_ceil(torch.tensor(p))) if vis[i - 1] else p) + 1.0
        pos[i] = p
    return pos.float().to(is_media.device)


def remapped_positions(is_media: Tensor, targets: list[int | None]) -> Tensor:
    """Span remapping (Partial YaRN / VLAT): media span k of length L is spread over ``targets[k]`` positions
    (``linspace(s, s + target − 1, L)``) and everything after it shifts by ``target − L``; a None target keeps the
    span as is. (N,) bool → (N,) float32; one step per span, none per token."""
    n = is_media.shape[0]
    pos = torch.arange(n, dtype=torch.float64)
    out = torch.empty(n, dtype=torch.float64)
    shift, prev = 0.0, 0  # remapped − original position for the tokens after the spans seen so far
    for (a, b), target in zip(media_spans(is_media), targets):
        out[prev:a] = pos[prev:a] + shift
        length = b - a
        if target is None or target == length:
            out[a:b] = pos[a:b] + shift
        else:
            start = a + shift
            out[a:b] = torch.linspace(start, start + target - 1, length, dtype=torch.float64) if length > 1 else start
            shift += target - length
        prev = b
    out[prev:] = pos[prev:] + shift
    return out.float().to(is_media.device)


POSITIONS.register("plain")(plain_positions)
POSITIONS.register("v2pe")(v2pe_positions)
POSITIONS.register("span_remap")(remapped_positions)


def position_ids(scheme: str, is_media: Tensor, **params) -> Tensor:
    """Positions of one sequence under a registered scheme: ``position_ids("v2pe", is_media, delta=0.25)``."""
    return POSITIONS.get(scheme)(is_media, **params)
