"""LongVA: a CLIP vision tower, an ``mlp2x_gelu`` projector and the zoo's Qwen2 LM.

Video path (LongVA / LLaVA-NeXT): each frame → CLIP hidden states of layer ``vision_select_layer`` (−2) without the
CLS token (a g×g patch grid) → projector (vision hidden → LM hidden → LM hidden) → ``spatial_pool_stride`` average
pooling of the grid (24×24 → 12×12 = 144 tokens per frame at 336 px). One ``IMAGE_TOKEN_INDEX`` placeholder in
``input_ids`` expands to all the frame tokens of its video; labels there are -100.

Positions: plain (one step per token) or V2PE (``v2pe_delta``: each visual token advances the position by δ < 1 and
the text after a visual span resumes at ceil(last visual position) + 1), passed to the LM as float position ids.

Checkpoint layout (``zoo.load_pretrained(dir)``, model_type ``llava_qwen``): ``model.embed_tokens``, ``model.layers.*``,
``model.norm``, ``lm_head``, ``model.vision_tower.vision_tower.vision_model.*``, ``model.mm_projector.{0,2}``, with
``mm_vision_tower`` naming the CLIP tower (a hub id or a local directory holding its config.json).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.keymaps import KeyMap, prefixed
from zoo.lm import (ROTARY_BUFFERS, CausalLM, LMConfig, LMOutput, check_left_padded, decoder_rules, hf_config_from_lm,
                    lm_config_from_hf)
from zoo.media import splice_media
from zoo.positions import v2pe_positions
from zoo.registry import register_architecture, register_model

IMAGE_TOKEN_INDEX = -200  # LLaVA's placeholder id inside input_ids
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_L14_336 = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                    image_size=336, patch_size=14, projection_dim=768, hidden_act="quick_gelu", layer_norm_eps=1e-5)


@dataclass
class LongVAConfig:
    lm: dict[str, Any] = field(default_factory=dict)  # LMConfig fields
    # vision_tower "clip": ``vision`` holds transformers CLIPVisionConfig fields (LongVA's own tower, loadable from its
    # checkpoints); "timm": ``vision`` holds timm.create_model kwargs incl. model_name, img_size, patch_size (never
    # pretrained=True by default: nothing downloads)
    vision_tower: str = "clip"
    vision: dict[str, Any] = field(default_factory=lambda: dict(CLIP_L14_336))
    vision_select_layer: int = -2
    projector_type: str = "mlp2x_gelu"
    spatial_pool_stride: int = 2
    spatial_pool_mode: str = "average"
    v2pe_delta: float | None = None  # None: one position per visual token; else V2PE's step δ (e.g. 1/4)

    def __post_init__(self):
        if self.vision_tower not in ("clip", "timm"):
            raise ValueError(f"LongVAConfig.vision_tower must be 'clip' or 'timm', got {self.vision_tower!r}")
        if self.vision_tower == "timm" and not {"model_name", "img_size", "patch_size"} <= set(self.vision):
            raise ValueError("LongVAConfig.vision for a timm tower needs model_name, img_size and patch_size")
        if self.projector_type != "mlp2x_gelu":
            raise ValueError(f"LongVAConfig.projector_type: only 'mlp2x_gelu' is built, got {self.projector_type!r}")
        if self.spatial_pool_mode not in ("average", "max"):
            raise ValueError(f"LongVAConfig.spatial_pool_mode must be 'average' or 'max', got {self.spatial_pool_mode!r}")
        if self.v2pe_delta is not None and not 0 < self.v2pe_delta <= 1:
            raise ValueError(f"LongVAConfig.v2pe_delta must lie in (0, 1], got {self.v2pe_delta}")


def preprocess_frames(frames, image_size: int, mean=CLIP_MEAN, std=CLIP_STD) -> Tensor:
    """uint8 frames (T, H, W, 3) (numpy or torch) → normalised (T, 3, S, S): CLIP's resize of the short side to S
    (bicubic) and centre crop."""
    x = frames if torch.is_tensor(frames) else torch.from_numpy(np.array(frames))  # a copy: decoders' arrays are read-only
    if x.dim() != 4 or x.shape[-1] != 3 or x.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {x.dtype} {tuple(x.shape)}")
    x = x.permute(0, 3, 1, 2).float() / 255.0
    h, w = x.shape[-2:]
    scale = image_size / min(h, w)
    nh, nw = max(image_size, round(h * scale)), max(image_size, round(w * scale))
    x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    top, left = (nh - image_size) // 2, (nw - image_size) // 2
    x = x[..., top: top + image_size, left: left + image_size]
    return (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]


@register_architecture
class LongVA(nn.Module):
    arch = "longva"
    hf_model_types = ("llava_qwen",)
    modality = "video"  # token ids with frames spliced in

    def __init__(self, config: LongVAConfig):
        super().__init__()
        self.config = config
        self.lm = CausalLM(LMConfig.from_dict(config.lm))
        if config.vision_tower == "clip":
            from transformers import CLIPVisionConfig, CLIPVisionModel

            self.vision_tower = CLIPVisionModel(CLIPVisionConfig(**config.vision))
            vh = config.vision["hidden_size"]
        else:
            import timm

            kwargs = {k: v for k, v in config.vision.items() if k != "model_name"}
            self.vision_tower = timm.create_model(config.vision["model_name"], num_classes=0, **kwargs)
            vh = self.vision_tower.num_features
        d = self.lm.config.d_model
        self.mm_projector = nn.Sequential(nn.Linear(vh, d), nn.GELU(), nn.Linear(d, d))

    @property
    def image_size(self) -> int:
        return self.config.vision["image_size" if self.config.vision_tower == "clip" else "img_size"]

    @property
    def tokens_per_frame(self) -> int:
        grid = self.image_size // self.config.vision["patch_size"]
        return math.ceil(grid / self.config.spatial_pool_stride) ** 2

    def vision_features(self, pixel_values: Tensor) -> Tensor:
        """(T, 3, S, S) → hidden states of the selected layer without CLS / prefix tokens, (T, g·g, vision hidden).

        CLIP's hidden_states[k] is the input of block k (hidden_states[0] the embeddings), so layer −2 is the output
        of the second-to-last block; for timm the same block is picked from forward_intermediates."""
        if self.config.vision_tower == "clip":
            out = self.vision_tower(pixel_values=pixel_values, output_hidden_states=True)
            return out.hidden_states[self.config.vision_select_layer][:, 1:]
        n_blocks = len(self.vision_tower.blocks)
        index = n_blocks + 1 + self.config.vision_select_layer if self.config.vision_select_layer < 0 \
            else self.config.vision_select_layer
        if index == 0 or not 0 < index <= n_blocks:
            raise ValueError(f"vision_select_layer {self.config.vision_select_layer} selects no block of {n_blocks}")
        return self.vision_tower.forward_intermediates(pixel_values, indices=[index - 1], norm=False,
                                                       output_fmt="NLC", intermediates_only=True)[0]

    def encode_frames(self, pixel_values: Tensor) -> Tensor:
        """(T, 3, S, S) → (T, tokens_per_frame, d_model): features → projector → 2-D pooling of the patch grid."""
        x = self.mm_projector(self.vision_features(pixel_values))
        t, n, d = x.shape
        g = math.isqrt(n)
        x = x.view(t, g, g, d).permute(0, 3, 1, 2)
        s = self.config.spatial_pool_stride
        if s > 1:
            pool = F.avg_pool2d if self.config.spatial_pool_mode == "average" else F.max_pool2d
            x = pool(x, s, s, ceil_mode=True)
        return x.flatten(2).transpose(1, 2)

    def build_inputs(self, input_ids: Tensor, videos: list[Tensor], labels: Tensor | None = None,
                     v2pe_delta: float | list[float] | None = None, pad_to: int | None = None,
                     frame_features: Tensor | None = None):
        """Splice each placeholder's frame tokens into the text embeddings.

        input_ids (B, L) with one ``IMAGE_TOKEN_INDEX`` per video, in reading order; videos: one (T, 3, S, S) per
        placeholder across the batch → inputs_embeds (B, N, d), labels (B, N) or None, position_ids (B, N) float,
        is_visual (B, N). Padding on the right (label -100; it cannot affect earlier tokens under causal attention).
        ``v2pe_delta``: one δ for the batch or one per row (V2PE training draws δ per sample); default the config's.
        ``frame_features``: (ΣT, tokens_per_frame, d) already encoded frames of all videos in order (MM-SP encodes
        them spread over ranks); by default the videos are encoded here.
        """
        delta = v2pe_delta if v2pe_delta is not None else self.config.v2pe_delta
        deltas = list(delta) if isinstance(delta, (list, tuple)) else [delta] * input_ids.shape[0]
        if len(deltas) != input_ids.shape[0]:
            raise ValueError(f"{len(deltas)} V2PE deltas for a batch of {input_ids.shape[0]}")
        n_placeholders = int((input_ids == IMAGE_TOKEN_INDEX).sum())
        if n_placeholders != len(videos):
            raise ValueError(f"input_ids hold {n_placeholders} image placeholders but {len(videos)} videos were given")
        # every video's frames through the tower in one batch; each placeholder stands for T × tokens-per-frame
        if frame_features is None and videos:
            frame_features = self.encode_frames(torch.cat(videos))
        media = frame_features.flatten(0, 1) if videos else None
        per_frame = frame_features.shape[1] if videos else 0
        spliced = splice_media(input_ids, IMAGE_TOKEN_INDEX, media, [len(v) * per_frame for v in videos],
                               self.lm.embed, labels, pad_to)
        embeds, is_visual = spliced.embeds, spliced.is_media
        n = embeds.shape[1]
        # explicit fp32: under Lightning's bf16-true the default dtype is bf16, and V2PE's fractional steps collapse
        positions = torch.zeros(input_ids.shape[0], n, dtype=torch.float32, device=input_ids.device)
        for b, length in enumerate(spliced.lengths):
            if deltas[b] is None:
                positions[b] = torch.arange(n, device=input_ids.device)
            else:
                p = v2pe_positions(is_visual[b, :length], deltas[b]).to(input_ids.device)
                positions[b, :length] = p
                positions[b, length:] = p[-1] + 1 + torch.arange(n - length, device=input_ids.device)
        return embeds, spliced.labels, positions, is_visual

    def forward(self, input_ids: Tensor, videos: list[Tensor] | None = None, labels: Tensor | None = None,
                v2pe_delta: float | list[float] | None = None) -> LMOutput:
        if not videos and not (input_ids == IMAGE_TOKEN_INDEX).any():
            return self.lm(input_ids, labels=labels)
        embeds, labels, positions, _ = self.build_inputs(input_ids, videos or [], labels, v2pe_delta)
        return self.lm(inputs_embeds=embeds, position_ids=positions, labels=labels)

    @torch.no_grad()
    def generate(self, input_ids: Tensor, videos: list[Tensor] | None = None, attention_mask: Tensor | None = None,
                 max_new_tokens: int = 20, *, v2pe_delta: float | None = None, **generate_kwargs) -> Tensor:
        """Decoding with transformers' arguments: prompt ids + new tokens ``(B, L + new)``.

        input_ids ``(B, L)`` left-padded (right padding is refused, see :meth:`CausalLM.generate`, which also lists
        ``generate_kwargs``: eos_token_id, pad_token_id, do_sample, temperature, top_k, top_p, generator), one
        ``IMAGE_TOKEN_INDEX`` per video. Each row's placeholders expand to a different number of frame tokens, so the
        spliced rows are left-padded again here; every row gets the positions it has alone, and text after the
        (possibly fractional V2PE) prompt steps by 1 from the floor, as in :func:`qa.generate_tokens`."""
        videos = list(videos or [])
        b, n = input_ids.shape
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        elif attention_mask.shape != (b, n):
            raise ValueError(f"attention_mask must be {(b, n)} like input_ids, got {tuple(attention_mask.shape)}")
        check_left_padded(attention_mask)
        n_placeholders = int((input_ids == IMAGE_TOKEN_INDEX).sum())
        if n_placeholders != len(videos):
            raise ValueError(f"input_ids hold {n_placeholders} image placeholders but {len(videos)} videos were given")
        features = self.encode_frames(torch.cat(videos)) if videos else None
        rows, offset, first = [], 0, 0
        for i in range(b):
            ids = input_ids[i, attention_mask[i].bool()][None]
            k = int((ids == IMAGE_TOKEN_INDEX).sum())
            frames = sum(len(v) for v in videos[first: first + k])
            rows.append(self.build_inputs(ids, videos[first: first + k], v2pe_delta=v2pe_delta,
                                          frame_features=features[offset: offset + frames] if k else None))
            first, offset = first + k, offset + frames
        width = max(r[0].shape[1] for r in rows)
        embeds = rows[0][0].new_zeros(b, width, rows[0][0].shape[-1])
        positions = rows[0][2].new_zeros(b, width)  # fp32 like build_inputs', not the default dtype
        mask = torch.zeros(b, width, dtype=torch.long, device=input_ids.device)
        for i, (e, _, pos, _) in enumerate(rows):
            m = e.shape[1]
            embeds[i, width - m:], positions[i, width - m:], mask[i, width - m:] = e[0], pos[0], 1
        new = self.lm.generate(None, max_new_tokens, inputs_embeds=embeds, position_ids=positions,
                               attention_mask=mask, step=lambda pos: pos.floor() + 1, **generate_kwargs)
        return torch.cat((input_ids, new), 1)

    # ---- checkpoints ------------------------------------------------------------------------------------------

    def config_dict(self) -> dict:
        return asdict(self.config)

    def save_pretrained(self, path, max_shard_size: int | str = "2GB") -> None:
        """LongVA's own layout (``model_type`` llava_qwen: config.json + safetensors, the names
        :meth:`state_dict_from_hf` reads), replacing only that layout's files as :meth:`CausalLM.save_pretrained`
        does. The CLIP tower's shape is named by ``mm_vision_tower``: LongVA's hub id for ViT-L/14-336, else a
        ``vision_tower/config.json`` written beside the weights. V2PE is kept as a ``zoo_v2pe_delta`` key."""
        from zoo.checkpoints import write_atomically
        from zoo.checkpoints import save_hf_directory

        self.hf_config()  # a model without this layout writes nothing
        if self.config.vision != CLIP_L14_336:  # first, so that no config.json names a tower not yet written
            vision = json.dumps({"model_type": "clip_vision_model", **self.config.vision}, indent=2) + "\n"
            write_atomically(Path(path) / "vision_tower" / "config.json", lambda tmp: tmp.write_text(vision))
        save_hf_directory(self, path, max_shard_size)

    def hf_config(self) -> dict:
        c = self.config
        if c.vision_tower != "clip":
            raise ValueError("a timm vision tower has no LongVA checkpoint layout (its tower is CLIP)")
        hf = hf_config_from_lm(self.lm.config)
        hf.update(
            architectures=["LlavaQwenForCausalLM"], model_type="llava_qwen",
            mm_vision_tower="openai/clip-vit-large-patch14-336" if c.vision == CLIP_L14_336 else "vision_tower",
            mm_hidden_size=c.vision["hidden_size"], mm_vision_select_layer=c.vision_select_layer,
            mm_vision_select_feature="patch", mm_projector_type=c.projector_type,
            mm_spatial_pool_stride=c.spatial_pool_stride, mm_spatial_pool_mode=c.spatial_pool_mode,
        )
        if c.v2pe_delta is not None:
            hf["zoo_v2pe_delta"] = c.v2pe_delta
        return hf

    def hf_state_dict(self) -> dict[str, Tensor]:
        sd = self.state_dict()
        if self.lm.config.tie_word_embeddings:
            sd.pop("lm.lm_head.weight")
        return LONGVA_KEYS.state_to_hf(sd)

    @classmethod
    def from_config_dict(cls, d: dict, **overrides) -> LongVA:
        return cls(LongVAConfig(**{**d, **overrides}))

    from_hf_takes_source = True  # the vision tower's config can sit beside config.json

    @classmethod
    def from_hf(cls, hf_config: dict, *, source: Path | None = None, **overrides) -> LongVA:
        """A LongVA / LLaVA-Qwen config.json → this model. The vision tower's shape comes from ``mm_vision_tower``:
        a local directory with a CLIP config.json (its ``vision_config`` if nested), the ViT-L/14-336 shape for
        ``openai/clip-vit-large-patch14-336`` (no download), or another hub id's config.json (downloaded only then);
        ``source`` resolves relative directory names."""
        tower = hf_config.get("mm_vision_tower")
        if not tower:
            raise ValueError("config.json has no mm_vision_tower: not a LLaVA/LongVA checkpoint")
        vision = _clip_config(tower, source)
        for key, want in (("mm_projector_type", "mlp2x_gelu"), ("mm_vision_select_feature", "patch")):
            if hf_config.get(key, want) != want:
                raise ValueError(f"config.json {key}={hf_config[key]!r}: only {want!r} is supported")
        if hf_config.get("mm_hidden_size", vision["hidden_size"]) != vision["hidden_size"]:
            raise ValueError(f"config.json mm_hidden_size={hf_config['mm_hidden_size']} but the vision tower "
                             f"{tower!r} has hidden_size {vision['hidden_size']}")
        lm = asdict(lm_config_from_hf({**hf_config, "model_type": "qwen2"}))
        cfg = LongVAConfig(
            lm=lm, vision=vision,
            vision_select_layer=hf_config.get("mm_vision_select_layer", -2),
            spatial_pool_stride=hf_config.get("mm_spatial_pool_stride", 2),
            spatial_pool_mode=hf_config.get("mm_spatial_pool_mode", "average"),  # LongVAConfig rejects others
            v2pe_delta=hf_config.get("zoo_v2pe_delta"),
        )
        return cls.from_config_dict(asdict(cfg), **overrides)

    def state_dict_from_hf(self, hf_state: dict[str, Tensor]) -> dict[str, Tensor]:
        sd = LONGVA_KEYS.state_to_zoo(hf_state)
        if self.lm.config.tie_word_embeddings:
            sd["lm.lm_head.weight"] = sd.get("lm.embed.weight")
        return sd


# LLaVA-Qwen's names: the CLIP tower and projector under model., the Qwen2 decoder beside them
LONGVA_KEYS = KeyMap([("model.vision_tower.vision_tower", "vision_tower"), ("model.mm_projector", "mm_projector"),
                      *prefixed(decoder_rules(), hf="", zoo="lm")], name="LongVA (llava_qwen)", ignore=[ROTARY_BUFFERS])


def _clip_config(tower: str, source: Path | None) -> dict:
    path = Path(tower)
    if not path.is_absolute() and source is not None and (source / tower).exists():
        path = source / tower
    if (path / "config.json").exists():
        cfg = json.loads((path / "config.json").read_text())
        cfg = cfg.get("vision_config", cfg)
        keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "image_size",
                "patch_size", "projection_dim", "hidden_act", "layer_norm_eps", "num_channels")
        return {k: cfg[k] for k in keys if k in cfg}
    if tower.rstrip("/").endswith("clip-vit-large-patch14-336"):
        return dict(CLIP_L14_336)  # LongVA's own tower: known shape, no download
    if tower.count("/") == 1 and not tower.startswith((".", "/", "~")):  # another hub id: read its config (online)
        from huggingface_hub import hf_hub_download

        return _clip_config(str(Path(hf_hub_download(tower, "config.json")).parent), None)
    raise ValueError(f"mm_vision_tower {tower!r}: not a directory with a CLIP config.json, nor an 'org/name' hub id")
