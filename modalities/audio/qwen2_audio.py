"""Qwen2-Audio: a Whisper-shaped audio encoder, 2× average pooling, a linear projector, and the zoo's Qwen2 LM.

Encoder (Whisper large-v3 shape): log-mel (n_mels, 3000) → conv1d(k3) → GELU → conv1d(k3, stride 2) → GELU → + fixed
position table (1500) → pre-LayerNorm transformer blocks of the shared backbone (bidirectional attention with q/v/out
biases and no k bias, exact-GELU MLP) → 2× average pooling (1500 → 750 tokens per 30 s) → LayerNorm. Padding frames
(``feature_attention_mask`` 0) are left out of attention, as transformers' key mask does; a padded window is run at its
real length only, so short audio costs what it holds, not 30 s.

The text holds one ``audio_token_id`` per audio token (the processor expands them); the projected audio features
replace those embeddings in order, window after window — so a long recording is several consecutive 30 s windows
whose tokens follow each other. With ``partial_yarn`` set in the config, audio spans longer than the 750-token window
get Partial YaRN positions (see :mod:`.partial_yarn`).

Checkpoint layout (``zoo.load_pretrained(dir)``, model_type ``qwen2_audio``): ``audio_tower.*``,
``multi_modal_projector.linear.*``, ``language_model.model.*`` / ``language_model.lm_head.*`` as on the hub, or the
``model.audio_tower.* / model.language_model.* / lm_head.*`` names transformers 5 writes; both load.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.block import Block, SeqContext
from zoo.keymaps import KeyMap, prefixed
from zoo.lm import (ROTARY_BUFFERS, CausalLM, LMConfig, LMOutput, decoder_rules, hf_config_from_lm,
                    lm_config_from_hf)
from zoo.media import splice_media
from zoo.registry import register_architecture

from .partial_yarn import PartialYarnConfig, partial_yarn_inputs

AUDIO_TOKEN_ID = 151646  # Qwen2-Audio's <|AUDIO|>


@dataclass
class AudioEncoderConfig:
    n_mels: int = 128
    d_model: int = 1280
    n_layer: int = 32
    n_head: int = 20
    d_ff: int = 5120
    max_source_positions: int = 1500  # encoder positions per window: 3000 mel frames / conv stride 2
    norm_eps: float = 1e-5
    attn_backend: str = "auto"


@dataclass
class Qwen2AudioConfig:
    lm: dict[str, Any] = field(default_factory=dict)  # LMConfig fields
    audio: dict[str, Any] = field(default_factory=dict)  # AudioEncoderConfig fields
    audio_token_id: int = AUDIO_TOKEN_ID
    partial_yarn: dict[str, Any] | None = None  # PartialYarnConfig fields; None = plain positions

    def __post_init__(self):
        AudioEncoderConfig(**self.audio)  # unknown keys fail here, by name
        if self.partial_yarn is not None:
            PartialYarnConfig(**self.partial_yarn)


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> Tensor:
    """Whisper's fixed position table (length, channels): sin on the first half of the channels, cos on the second."""
    log_inc = math.log(max_timescale) / (channels // 2 - 1)
    inv = torch.exp(-log_inc * torch.arange(channels // 2))
    t = torch.arange(length)[:, None] * inv[None]
    return torch.cat([t.sin(), t.cos()], dim=1)


def encoder_output_lengths(mel_frames: Tensor) -> tuple[Tensor, Tensor]:
    """Real mel frames per window → real encoder positions (after the stride-2 conv) and real pooled tokens."""
    after_conv = (mel_frames - 1) // 2 + 1
    return after_conv, (after_conv - 2) // 2 + 1


class AudioEncoder(nn.Module):
    def __init__(self, config: AudioEncoderConfig):
        super().__init__()
        c = self.config = config
        self.conv1 = nn.Conv1d(c.n_mels, c.d_model, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(c.d_model, c.d_model, kernel_size=3, stride=2, padding=1)
        self.embed_positions = nn.Embedding(c.max_source_positions, c.d_model)
        self.embed_positions.weight.data.copy_(sinusoids(c.max_source_positions, c.d_model))
        self.embed_positions.requires_grad_(False)  # fixed, as in Whisper (stored in checkpoints all the same)
        attn = dict(n_head=c.n_head, qkv_bias=True, k_bias=False, out_bias=True, causal=False, backend=c.attn_backend)
        self.blocks = nn.ModuleList(
            Block(c.d_model, "attention", attn, mlp="gelu_exact", d_ff=c.d_ff, norm="layernorm", norm_eps=c.norm_eps,
                  mlp_bias=True)
            for _ in range(c.n_layer)
        )
        self.layer_norm = nn.LayerNorm(c.d_model, eps=c.norm_eps)

    def _blocks(self, x: Tensor) -> Tensor:
        ctx = SeqContext()
        for block in self.blocks:
            x = block(x, ctx)
        return x

    @property
    def mel_frames(self) -> int:
        return 2 * self.config.max_source_positions

    @property
    def window_seconds(self) -> float:
        """Audio per encoder window: 30 s for Whisper / Qwen2-Audio (3,000 mel frames at 100 per second)."""
        return self.mel_frames / 100

    def forward(self, input_features: Tensor, feature_attention_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """input_features (W, n_mels, 3000), feature_attention_mask (W, 3000) or None (all real) →
        features (W, 750, d_model) and real tokens per window (W,)."""
        w, n_mels, frames = input_features.shape
        if frames != self.mel_frames or n_mels != self.config.n_mels:
            raise ValueError(f"input_features must be (windows, {self.config.n_mels}, {self.mel_frames}) — cut audio "
                             f"into {self.window_seconds:g} s windows (audio_features does) — got "
                             f"{tuple(input_features.shape)}")
        x = input_features.to(self.conv1.weight.dtype)
        x = F.gelu(self.conv2(F.gelu(self.conv1(x)))).transpose(1, 2)  # (W, 1500, d)
        x = x + self.embed_positions.weight
        real_frames = (feature_attention_mask.sum(-1) if feature_attention_mask is not None
                       else torch.full((w,), frames, device=x.device))
        real_positions, real_tokens = encoder_output_lengths(real_frames)
        # A padded window runs on its real positions only: the same outputs there as masking the padding keys (what
        # transformers does), at the cost of its real length. Its padded positions come out as zeros; no kept pooled
        # token reads them (a kept token averages two real positions).
        n_pos = x.shape[1]
        full = real_positions >= n_pos
        rows: list[Tensor | None] = [None] * w
        if bool(full.any()):
            idx = full.nonzero().flatten()
            for i, y in zip(idx.tolist(), self._blocks(x[idx])):
                rows[i] = y
        for i in (~full).nonzero().flatten().tolist():
            n = int(real_positions[i])
            rows[i] = F.pad(self._blocks(x[i: i + 1, :n])[0], (0, 0, 0, n_pos - n))
        x = torch.stack(rows)
        x = F.avg_pool1d(x.transpose(1, 2), 2, 2).transpose(1, 2)
        return self.layer_norm(x), real_tokens


@register_architecture
class Qwen2Audio(nn.Module):
    arch = "qwen2_audio"
    hf_model_types = ("qwen2_audio",)
    modality = "audio"  # token ids with audio features spliced in

    def __init__(self, config: Qwen2AudioConfig):
        super().__init__()
        self.config = config
        self.lm = CausalLM(LMConfig.from_dict(config.lm))
        self.audio_tower = AudioEncoder(AudioEncoderConfig(**config.audio))
        self.multi_modal_projector = nn.Linear(self.audio_tower.config.d_model, self.lm.config.d_model)
        self.partial_yarn = PartialYarnConfig(**config.partial_yarn) if config.partial_yarn is not None else None

    def encode_audio(self, input_features: Tensor, feature_attention_mask: Tensor | None = None) -> Tensor:
        """All windows → (Σ real tokens, d_model) projected audio embeddings, window after window."""
        feats, real = self.audio_tower(input_features, feature_attention_mask)
        keep = torch.arange(feats.shape[1], device=feats.device)[None] < real[:, None]
        return self.multi_modal_projector(feats[keep])

    def build_inputs(self, input_ids: Tensor, input_features: Tensor | None = None,
                     feature_attention_mask: Tensor | None = None, attention_mask: Tensor | None = None,
                     partial_yarn: bool | None = None, virtual_lengths: list[int | None] | None = None) -> dict:
        """Keyword inputs of :class:`CausalLM` for a batch: inputs_embeds with the audio spliced in, position ids
        (per frequency pair under Partial YaRN), rope_cos_scale, and segment ids masking padded text."""
        is_audio = input_ids == self.config.audio_token_id
        n_slots = int(is_audio.sum())
        audio = None
        if input_features is not None:
            audio = self.encode_audio(input_features, feature_attention_mask)
            if audio.shape[0] != n_slots:
                raise ValueError(f"the audio gives {audio.shape[0]} tokens but input_ids hold {n_slots} audio tokens "
                                 f"(id {self.config.audio_token_id}); expand one per token as the processor does")
        elif n_slots:
            raise ValueError(f"input_ids hold {n_slots} audio tokens but no input_features were given")
        # the processor already wrote one placeholder per audio token: each stands for one
        embeds = splice_media(input_ids, self.config.audio_token_id, audio, [1] * n_slots, self.lm.embed).embeds
        b, n = input_ids.shape
        kwargs: dict[str, Any] = {"inputs_embeds": embeds}
        # positions count every slot, padding included, as transformers' Qwen2 does without position_ids
        position_ids = torch.arange(n, device=input_ids.device)[None].expand(b, n)
        use_yarn = self.partial_yarn is not None if partial_yarn is None else partial_yarn
        if use_yarn or virtual_lengths is not None:
            cfg = self.partial_yarn or PartialYarnConfig()
            position_ids, scale = partial_yarn_inputs(is_audio, self.lm.config.head_dim // 2, cfg, virtual_lengths)
            kwargs["rope_cos_scale"] = scale
        kwargs["position_ids"] = position_ids
        if attention_mask is not None and not bool(attention_mask.all()):
            kwargs["segment_ids"] = (attention_mask == 0).long()  # padding keys hidden from real queries
        return kwargs

    def forward(self, input_ids: Tensor, input_features: Tensor | None = None, attention_mask: Tensor | None = None,
                feature_attention_mask: Tensor | None = None, labels: Tensor | None = None,
                partial_yarn: bool | None = None, virtual_lengths: list[int | None] | None = None,
                **unused) -> LMOutput:
        """The keyword inputs of transformers' ``Qwen2AudioForConditionalGeneration`` (input_ids, input_features,
        attention_mask, feature_attention_mask, labels) → ``LMOutput`` with ``.logits`` (and ``.loss``).

        ``partial_yarn``: force Partial YaRN on or off (default: on when the config has ``partial_yarn``);
        ``virtual_lengths``: VLAT, one virtual audio length per row (training)."""
        unknown = set(unused) - {"use_cache", "return_dict"}
        if unknown:
            raise TypeError(f"Qwen2Audio.forward got unexpected arguments {sorted(unknown)}")
        kwargs = self.build_inputs(input_ids, input_features, feature_attention_mask, attention_mask, partial_yarn,
                                   virtual_lengths)
        return self.lm(labels=labels, **kwargs)

    @torch.no_grad()
    def generate(self, input_ids: Tensor, input_features: Tensor | None = None, attention_mask: Tensor | None = None,
                 feature_attention_mask: Tensor | None = None, max_new_tokens: int = 20, *,
                 partial_yarn: bool | None = None, **generate_kwargs) -> Tensor:
        """Decoding with transformers' ``Qwen2AudioForConditionalGeneration.generate`` inputs: prompt + new tokens
        ``(B, L + new)``. Batches are left-padded (right padding is refused, see :meth:`CausalLM.generate`, which
        also lists ``generate_kwargs``: eos_token_id, pad_token_id, do_sample, temperature, top_k, top_p,
        generator). A padded row gets the positions it has alone (what transformers' generate derives from the
        attention mask), Partial YaRN tracks included."""
        if attention_mask is not None and attention_mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask must be {tuple(input_ids.shape)} like input_ids, "
                             f"got {tuple(attention_mask.shape)}")
        kwargs = self.build_inputs(input_ids, input_features, feature_attention_mask, None, partial_yarn)
        positions = kwargs.pop("position_ids")
        if attention_mask is not None:
            # leading padding only shifts a row: every track starts where the unpadded row starts
            n_pad = (attention_mask == 0).sum(-1).to(positions.dtype)
            positions = (positions - n_pad.view(-1, *[1] * (positions.dim() - 1))).clamp(min=0)
        new = self.lm.generate(None, max_new_tokens, attention_mask=attention_mask, position_ids=positions,
                               **kwargs, **generate_kwargs)
        return torch.cat((input_ids, new), 1)

    # ---- checkpoints ------------------------------------------------------------------------------------------

    def config_dict(self) -> dict:
        return asdict(self.config)

    @classmethod
    def from_config_dict(cls, d: dict, **overrides) -> Qwen2Audio:
        return cls(Qwen2AudioConfig(**{**d, **overrides}))

    def save_pretrained(self, path, max_shard_size: int | str = "2GB") -> None:
        """Transformers' ``Qwen2AudioForConditionalGeneration`` layout (config.json + safetensors), which its
        ``from_pretrained`` and ``zoo.load_pretrained`` both read; replaces only that layout's own files, as
        :meth:`CausalLM.save_pretrained` does. Partial YaRN is kept as a ``zoo_partial_yarn`` key that
        transformers ignores (it has no Partial YaRN)."""
        from zoo.checkpoints import save_hf_directory

        save_hf_directory(self, path, max_shard_size)

    def hf_config(self) -> dict:
        a = self.audio_tower.config
        if a.norm_eps != 1e-5:
            raise ValueError(f"the audio encoder's norm_eps is {a.norm_eps}; Qwen2-Audio's layout fixes it at 1e-5")
        text = hf_config_from_lm(self.lm.config)
        text.pop("architectures")
        text.pop("torch_dtype")
        hf = {
            "architectures": ["Qwen2AudioForConditionalGeneration"], "model_type": "qwen2_audio",
            "audio_config": {"model_type": "qwen2_audio_encoder", "num_mel_bins": a.n_mels, "d_model": a.d_model,
                             "encoder_layers": a.n_layer, "encoder_attention_heads": a.n_head,
                             "encoder_ffn_dim": a.d_ff, "max_source_positions": a.max_source_positions,
                             "activation_function": "gelu", "scale_embedding": False},
            "text_config": text, "audio_token_index": self.config.audio_token_id, "torch_dtype": "float32",
        }
        if self.config.partial_yarn is not None:
            hf["zoo_partial_yarn"] = dict(self.config.partial_yarn)
        return hf

    def hf_state_dict(self) -> dict[str, Tensor]:
        """The transformers 5 names (``model.audio_tower.*``, ``model.multi_modal_projector.linear.*``,
        ``model.language_model.*``, ``lm_head.*``), the inverse of :meth:`state_dict_from_hf`."""
        sd = self.state_dict()
        if self.lm.config.tie_word_embeddings:
            sd.pop("lm.lm_head.weight")
        return QWEN2_AUDIO_KEYS.state_to_hf(sd)

    @classmethod
    def from_hf(cls, hf_config: dict, **overrides) -> Qwen2Audio:
        """A Qwen2-Audio config.json (``audio_config`` + ``text_config``) → this model."""
        a, t = hf_config.get("audio_config"), hf_config.get("text_config")
        if not a or not t:
            raise ValueError("config.json needs audio_config and text_config: not a Qwen2-Audio checkpoint")
        if a.get("activation_function", "gelu") != "gelu" or a.get("scale_embedding", False):
            raise ValueError("only Qwen2-Audio's encoder (activation 'gelu', scale_embedding false) is supported")
        audio = dict(n_mels=a.get("num_mel_bins", 128), d_model=a.get("d_model", 1280),
                     n_layer=a.get("encoder_layers", 32), n_head=a.get("encoder_attention_heads", 20),
                     d_ff=a.get("encoder_ffn_dim", 5120), max_source_positions=a.get("max_source_positions", 1500))
        text = dict(t)
        text.setdefault("model_type", "qwen2")
        # transformers' Qwen2Config defaults, for keys a config.json may leave out
        for key, default in (("hidden_size", 4096), ("intermediate_size", 22016), ("num_hidden_layers", 32),
                             ("num_attention_heads", 32), ("vocab_size", 151936), ("rms_norm_eps", 1e-6),
                             ("rope_theta", 10000.0), ("max_position_embeddings", 32768)):
            text.setdefault(key, default)
        text.setdefault("num_key_value_heads", text["num_attention_heads"])
        lm = asdict(lm_config_from_hf(text))
        token = hf_config.get("audio_token_index", hf_config.get("audio_token_id", AUDIO_TOKEN_ID))
        cfg = Qwen2AudioConfig(lm=lm, audio=audio, audio_token_id=token, partial_yarn=hf_config.get("zoo_partial_yarn"))
        return cls.from_config_dict(asdict(cfg), **overrides)

    def state_dict_from_hf(self, hf_state: dict[str, Tensor]) -> dict[str, Tensor]:
        sd = QWEN2_AUDIO_KEYS.state_to_zoo(hf_state)
        if self.lm.config.tie_word_embeddings:
            sd["lm.lm_head.weight"] = sd.get("lm.embed.weight")
        return sd


# the Whisper-style encoder's layer names → the zoo block's
_ENCODER_RULES = [
    ("layers.{i}.self_attn.q_proj", "blocks.{i}.mixer.q_proj"),
    ("layers.{i}.self_attn.k_proj", "blocks.{i}.mixer.k_proj"),
    ("layers.{i}.self_attn.v_proj", "blocks.{i}.mixer.v_proj"),
    ("layers.{i}.self_attn.out_proj", "blocks.{i}.mixer.o_proj"),
    ("layers.{i}.self_attn_layer_norm", "blocks.{i}.norm1"),
    ("layers.{i}.final_layer_norm", "blocks.{i}.norm2"),
    ("layers.{i}.fc1", "blocks.{i}.mlp.up_proj"),
    ("layers.{i}.fc2", "blocks.{i}.mlp.down_proj"),
    ("", ""),  # the rest of the encoder (conv1, conv2, embed_positions, layer_norm) keeps its names
]


def _qwen2_audio_rules(audio: str, projector: str, body: str, head: str) -> list[tuple[str, str]]:
    return [*prefixed(_ENCODER_RULES, hf=audio, zoo="audio_tower"), (projector, "multi_modal_projector"),
            *prefixed(decoder_rules(body, head), hf="", zoo="lm")]


# transformers 5's names are written; transformers 4's (audio_tower.*, language_model.model.*) are read too
QWEN2_AUDIO_KEYS = KeyMap(
    _qwen2_audio_rules("model.audio_tower", "model.multi_modal_projector.linear", "model.language_model", "lm_head"),
    read_only=_qwen2_audio_rules("audio_tower", "multi_modal_projector.linear", "language_model.model",
                                 "language_model.lm_head"),
    name="Qwen2-Audio", ignore=[ROTARY_BUFFERS])
