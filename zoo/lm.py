"""Causal language model built from the shared blocks, with Qwen2 and Llama checkpoint layouts.

Reads top to bottom: config → model → generation → Hugging Face conversion (config and weight names, both ways).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import mixers as _mixers  # noqa: F401  (registers the attention mixer)
from .block import Block, SeqContext, expand_layout
from .keymaps import KeyMap
from .layers import make_norm
from .positions import RopeScaling, RotaryEmbedding
from .registry import register_architecture, register_model


@dataclass
class LMConfig:
    vocab_size: int = 260
    d_model: int = 128
    n_layer: int = 4
    n_head: int = 4
    n_kv_head: int | None = None
    head_dim: int | None = None
    d_ff: int | None = None
    layout: str | list[str] = "attention"
    mixer_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    mlp: str = "swiglu"
    norm: str = "rmsnorm"
    norm_eps: float = 1e-6
    qkv_bias: bool = False
    attn_out_bias: bool = False
    mlp_bias: bool = False
    attn_sink: bool = False
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = None
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = False
    # keep the residual stream in fp32 in a half-precision model (transformers' MambaBlock residual_in_fp32); no
    # effect in fp32
    residual_in_fp32: bool = False
    # std of the normal init of every Linear/Embedding weight. 0.02 is the HF default, sized for d_model ≳ 768; tiny
    # models learn retrieval far sooner near 1/√d_model (V-NIAH at d_model 96: ~1100 steps with 0.1, none in 1300
    # with 0.02), because each 0.02-init projection shrinks the signal it passes by 0.02·√d_model
    init_std: float = 0.02
    attn_backend: str = "auto"
    family: str = "qwen2"  # the Hugging Face model_type that save_pretrained writes
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    pad_token_id: int | None = None

    def __post_init__(self):
        self.n_kv_head = self.n_kv_head or self.n_head
        self.head_dim = self.head_dim or self.d_model // self.n_head
        self.d_ff = self.d_ff or 4 * self.d_model
        RopeScaling.from_dict(self.rope_scaling)  # validate early, with the key names
        if self.family not in ("qwen2", "llama", "mamba"):
            raise ValueError(f"LMConfig.family must be 'qwen2', 'llama' or 'mamba', got {self.family!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LMConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown LMConfig keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


@dataclass
class LMOutput:
    logits: Tensor
    loss: Tensor | None = None
    cache: KVCache | None = None
    hidden_states: Tensor | None = None  # (B, N, d_model) after the final norm, with output_hidden_states=True


@dataclass
class KVCache:
    """Per-layer mixer state for generation, plus how many positions it already holds."""

    layers: list[dict]
    seen: int = 0
    segment_ids: Tensor | None = None

    @classmethod
    def empty(cls, n_layer: int) -> KVCache:
        return cls([{} for _ in range(n_layer)])


@register_architecture
class CausalLM(nn.Module):
    arch = "causal_lm"
    hf_model_types = ("qwen2", "llama", "mamba")
    modality = "tokens"  # what its inputs are: the evals check it (a passkey needs a token LM)

    def __init__(self, config: LMConfig):
        super().__init__()
        self.config = config
        c = config
        layout = expand_layout(c.layout, c.n_layer)
        attn_kwargs = dict(
            n_head=c.n_head, n_kv_head=c.n_kv_head, head_dim=c.head_dim, qkv_bias=c.qkv_bias,
            out_bias=c.attn_out_bias, causal=True, sink=c.attn_sink, backend=c.attn_backend,
        )
        # HSA takes the model's head geometry unless mixer_kwargs.hsa overrides it (its retrieval groups do not)
        mixer_kwargs = {"attention": attn_kwargs, "hsa": dict(n_head=c.n_head, head_dim=c.head_dim)}
        for name, kw in c.mixer_kwargs.items():
            mixer_kwargs[name] = {**mixer_kwargs.get(name, {}), **kw}
        self.embed = nn.Embedding(c.vocab_size, c.d_model)
        self.blocks = nn.ModuleList(
            Block(c.d_model, name, mixer_kwargs.get(name), c.mlp, c.d_ff, c.norm, c.norm_eps, c.mlp_bias,
                  residual_in_fp32=c.residual_in_fp32)
            for name in layout
        )
        self.norm = make_norm(c.norm, c.d_model, c.norm_eps)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        if c.tie_word_embeddings:
            self.lm_head.weight = self.embed.weight
        # only attention rotates; an all-Mamba/Hyena stack skips computing cos/sin on every forward
        self.rotary = RotaryEmbedding(c.head_dim, c.rope_theta, c.rope_scaling) if "attention" in layout else None
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=self.config.init_std)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
        elif hasattr(module, "init_ssm_parameters"):  # after its Linears (apply is post-order): Mamba's dt_proj init
            module.init_ssm_parameters()

    # ---- forward -----------------------------------------------------------------------------------------------

    def forward(
        self,
        input_ids: Tensor | None = None,
        *,
        inputs_embeds: Tensor | None = None,
        position_ids: Tensor | None = None,
        segment_ids: Tensor | None = None,
        labels: Tensor | None = None,
        cache: KVCache | None = None,
        rope_cos_scale: Tensor | None = None,
        sequence_parallel=None,
        attention_mask: Tensor | None = None,
        output_hidden_states: bool = False,
    ) -> LMOutput:
        """input_ids ``(B, N)`` (or inputs_embeds ``(B, N, d_model)``) → logits ``(B, N, vocab)``.

        segment_ids ``(B, N)``: packed documents that must not see each other; positions restart in each document
        unless position_ids are given. position_ids may be float and ``(B, N)`` or ``(B, N, head_dim/2)``.
        labels ``(B, N)``: next-token loss (shifted here; -100 is ignored).
        attention_mask ``(B, N)`` (``(B, cache.seen + N)`` with a filled cache) of 1 (real) / 0 (padding), as in
        transformers: padded keys are hidden, and positions count real tokens only (cumsum − 1, as transformers'
        generate), so left- and right-padded rows give each real token the logits it has alone. A stack with a
        recurrence or long convolution (Mamba, Hyena) cannot hide a padded prefix: there only right padding is
        accepted (causal, so padding after the real tokens cannot reach them).
        sequence_parallel: a :class:`zoo.sequence_parallel.SequenceParallel` when the inputs are this rank's shard
        (then give global position_ids, and compute the loss with ``sp_loss`` on pre-shifted labels).
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids and inputs_embeds")
        x = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
        b, n, _ = x.shape
        start = cache.seen if cache is not None else 0
        if attention_mask is not None:
            packed = segment_ids is not None  # then positions restart per document, padding being one more
            segment_ids, mask_positions = self._padding_inputs(attention_mask, segment_ids, b, n, start)
            if position_ids is None and not packed:
                position_ids = mask_positions
        if position_ids is None:
            if segment_ids is not None and cache is None:
                position_ids = positions_from_segments(segment_ids)
            else:
                position_ids = torch.arange(start, start + n, device=x.device)[None].expand(b, n)
        kv_segment_ids = segment_ids
        if cache is not None and segment_ids is not None:
            if cache.segment_ids is not None:
                kv_segment_ids = torch.cat((cache.segment_ids, segment_ids), dim=1)
            cache.segment_ids = kv_segment_ids
        rope = self.rotary(position_ids, rope_cos_scale) if self.rotary is not None else None
        ctx = SeqContext(rope=rope, segment_ids=segment_ids, kv_segment_ids=kv_segment_ids)
        if sequence_parallel is not None:
            if labels is not None:
                raise ValueError("with sequence_parallel, shift labels before sharding and use sp_loss on the logits")
            if position_ids is None:
                raise ValueError("with sequence_parallel, pass the global position_ids of this rank's tokens")
            others = self.non_attention_mixers()
            if others:
                raise ValueError(f"sequence parallelism covers attention layers only; this stack also has {others}")
            ctx.sequence_parallel = sequence_parallel
        for i, block in enumerate(self.blocks):
            x = block(x, ctx, cache.layers[i] if cache is not None else None)
        hidden = self.norm(x)
        logits = self.lm_head(hidden.to(self.lm_head.weight.dtype))  # fp32 residual stream → head's dtype
        if cache is not None:
            cache.seen += n
        loss = None
        if labels is not None:
            target = labels[:, 1:].reshape(-1)
            total = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), target, ignore_index=-100,
                                    reduction="sum")
            # mean over labelled tokens; a batch with none (all padding / N) gives 0, not 0/0 = NaN
            loss = total / (target != -100).sum().clamp(min=1)
        return LMOutput(logits=logits, loss=loss, cache=cache, hidden_states=hidden if output_hidden_states else None)

    def non_attention_mixers(self) -> set[str]:
        """Class names of the mixers that do not declare ``masked_attention`` (what sequence parallelism and padding
        masks cannot reach inside)."""
        return {type(block.mixer).__name__ for block in self.blocks
                if not getattr(block.mixer, "masked_attention", False)}

    def _padding_inputs(self, attention_mask: Tensor, segment_ids: Tensor | None, b: int, n: int, start: int):
        """attention_mask → (segment ids for the new tokens or None, position ids (B, N)). Padding gets segment id
        -1, which no real token has, so padded keys drop out of every real query's mask (the kernel ANDs segments
        with causality) and each padded query still sees itself (no empty softmax row)."""
        if attention_mask.dim() != 2 or attention_mask.shape[0] != b or attention_mask.shape[1] not in (n, start + n):
            want = f"({b}, {n})" + (f" or ({b}, {start + n})" if start else "")
            raise ValueError(f"attention_mask must be {want} (batch, tokens{' incl. cached' if start else ''}), "
                             f"got {tuple(attention_mask.shape)}")
        if start and attention_mask.shape[1] == n:
            raise ValueError(f"attention_mask with a filled cache must cover the cached tokens too: ({b}, {start + n}) "
                             f"as transformers passes it, got {tuple(attention_mask.shape)}")
        mask = attention_mask.bool()
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)[:, -n:]
        new = mask[:, -n:]
        if bool(mask.all()):
            return segment_ids, positions
        others = self.non_attention_mixers()
        right_padded = bool((mask[:, 1:] <= mask[:, :-1]).all())  # never a real token after a padded one
        if others and not right_padded:
            raise ValueError(f"attention_mask has padding before real tokens, but this stack has "
                             f"{sorted(others)} layers, whose state cannot skip padded tokens; "
                             "run the rows one at a time, or right-pad them for a forward pass")
        if others:
            return segment_ids, positions  # right padding comes after every real token: causality already hides it
        if segment_ids is not None and bool((segment_ids < 0).any()):
            raise ValueError("segment_ids must be ≥ 0 with an attention_mask (padding takes segment id -1)")
        base = segment_ids if segment_ids is not None else torch.zeros_like(new, dtype=torch.long)
        return base.long().masked_fill(~new, -1), positions

    @torch.no_grad()
    def generate(
        self,
        input_ids: Tensor,
        max_new_tokens: int = 20,
        *,
        attention_mask: Tensor | None = None,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        eos_token_id: int | list[int] | None = None,
        pad_token_id: int | None = None,
        generator: torch.Generator | None = None,
        inputs_embeds: Tensor | None = None,
        position_ids: Tensor | None = None,
        step=None,
        **lm_kwargs,
    ) -> Tensor:
        """Greedy (or sampled) decoding with a KV cache, with transformers' arguments; returns prompt + new tokens
        ``(B, N + new)`` (only the new tokens when the prompt is ``inputs_embeds``).

        attention_mask ``(B, N)``: 1/0 as transformers. Batches of different-length prompts must be **left**-padded
        (tokenizer ``padding_side="left"``); right padding is refused with a ValueError, since a row would continue
        after its padding (transformers only warns and generates from the padding). Sampling applies temperature,
        then top_k, then top_p (nucleus: the fewest most likely tokens whose probability reaches top_p), in
        transformers' order. Once a row emits an eos_token_id, it emits pad_token_id (default: the first
        eos_token_id, as transformers does) until every row is done or max_new_tokens are out.
        ``inputs_embeds``/``position_ids``/``step``/``lm_kwargs`` are for multimodal wrappers: the prompt as
        embeddings, its own positions (``step`` maps the last positions to the next token's, default + 1) and extra
        forward arguments of the prefill (``rope_cos_scale``).
        """
        prompt = input_ids if inputs_embeds is None else inputs_embeds
        b, n = prompt.shape[:2]
        device = prompt.device
        _check_sampling(max_new_tokens, do_sample, temperature, top_k, top_p)
        eos = [] if eos_token_id is None else [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
        if pad_token_id is None and eos:
            pad_token_id = eos[0]
        if attention_mask is not None:
            if attention_mask.shape != (b, n):
                raise ValueError(f"attention_mask must be ({b}, {n}) like the prompt, "
                                 f"got {tuple(attention_mask.shape)}")
            check_left_padded(attention_mask)
            if bool(attention_mask.all()):
                attention_mask = None
        cache = KVCache.empty(len(self.blocks))
        out = self(input_ids, inputs_embeds=inputs_embeds, position_ids=position_ids, attention_mask=attention_mask,
                   cache=cache, **lm_kwargs)
        if position_ids is not None:
            pos = position_ids[:, -1:]
        elif attention_mask is not None:
            pos = attention_mask.long().sum(-1, keepdim=True) - 1
        else:
            pos = torch.full((b, 1), n - 1, device=device)
        step = step or (lambda p: p + 1)
        new_segments = torch.zeros(b, 1, dtype=torch.long, device=device) if attention_mask is not None else None
        new = []
        done = torch.zeros(b, dtype=torch.bool, device=device)
        for i in range(max_new_tokens):
            next_logits = out.logits[:, -1].float()
            if do_sample:
                probs = filter_logits(next_logits / temperature, top_k, top_p).softmax(-1)
                nxt = torch.multinomial(probs, 1, generator=generator)[:, 0]
            else:
                nxt = next_logits.argmax(-1)
            if eos:
                if pad_token_id is not None:
                    nxt = torch.where(done, torch.full_like(nxt, pad_token_id), nxt)
                done |= torch.isin(nxt, torch.tensor(eos, device=device)) & ~done
            new.append(nxt[:, None])
            if (eos and bool(done.all())) or i == max_new_tokens - 1:
                break
            pos = step(pos)
            out = self(nxt[:, None], position_ids=pos, segment_ids=new_segments, cache=cache)
        new_tokens = torch.cat(new, 1) if new else prompt.new_zeros((b, 0), dtype=torch.long)
        return new_tokens if input_ids is None else torch.cat((input_ids, new_tokens), 1)

    # ---- config round trip for zoo checkpoints ------------------------------------------------------------------

    def config_dict(self) -> dict:
        return self.config.to_dict()

    @classmethod
    def from_config_dict(cls, d: dict, **overrides) -> CausalLM:
        return cls(_with_overrides(LMConfig.from_dict(d), overrides))

    # ---- Hugging Face layout ------------------------------------------------------------------------------------

    def save_pretrained(self, path, max_shard_size: int | str = "2GB") -> None:
        from .checkpoints import save_hf_directory

        save_hf_directory(self, path, max_shard_size)

    def hf_config(self) -> dict:
        if self.config.family == "mamba":
            return _mamba_hf_config(self.config, self.blocks[0].mixer)
        return hf_config_from_lm(self.config)

    def hf_state_dict(self) -> dict[str, Tensor]:
        sd = self.state_dict()
        if self.config.tie_word_embeddings:
            sd.pop("lm_head.weight")
        return hf_key_map(self.config.family).state_to_hf(sd)

    @classmethod
    def from_hf(cls, hf_config: dict, **overrides) -> CausalLM:
        return cls(_with_overrides(lm_config_from_hf(hf_config), overrides))

    def state_dict_from_hf(self, hf_state: dict[str, Tensor]) -> dict[str, Tensor]:
        sd = hf_key_map(self.config.family).state_to_zoo(hf_state)
        if self.config.tie_word_embeddings:
            sd.pop("lm_head.weight", None)  # some tied checkpoints store it anyway; the embedding is the truth
            sd["lm_head.weight"] = sd.get("embed.weight")
        return sd


def _with_overrides(cfg: LMConfig, overrides: dict) -> LMConfig:
    known = {f.name for f in fields(LMConfig)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown override(s) {sorted(unknown)}; LMConfig fields: {sorted(known)}")
    return replace(cfg, **overrides) if overrides else cfg


def greedy_tokens(lm: CausalLM, out: LMOutput, cache: KVCache, last_position: Tensor, max_new_tokens: int,
                  eos_token_id: int | None, step=lambda pos: pos + 1):
    """Greedy decoding after a prefill (``out`` with its ``cache``): yields token ids until EOS or the limit.
    ``last_position``: the position ids of the last prompt token ((B, 1) or per frequency pair (B, 1, F)); ``step``
    maps one token's positions to the next's (V2PE resumes at floor + 1; Partial YaRN advances both tracks)."""
    pos = last_position
    for _ in range(max_new_tokens):
        nxt = out.logits[:, -1].argmax(-1)
        token = int(nxt.item())
        if token == eos_token_id:
            return
        yield token
        pos = step(pos)
        out = lm(nxt[:, None], position_ids=pos, cache=cache)


def check_left_padded(attention_mask: Tensor) -> None:
    """generate continues every row from its last position: refuse right-padded prompts (transformers only warns)."""
    if bool((attention_mask[:, -1] == 0).any()):
        raise ValueError("attention_mask has padding at the end of a row: generate continues every row from its last "
                         "position, so left-pad the prompts (tokenizer padding_side='left')")


def _check_sampling(max_new_tokens, do_sample, temperature, top_k, top_p) -> None:
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int ≥ 0, got {max_new_tokens!r}")
    if do_sample and not temperature > 0:
        raise ValueError(f"temperature must be > 0 when sampling, got {temperature!r} (use do_sample=False for greedy)")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be an int ≥ 1 or None, got {top_k!r}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must lie in (0, 1] or be None, got {top_p!r}")


def filter_logits(logits: Tensor, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """Logits (B, V) with the tokens outside top_k, then outside the top_p nucleus, set to -inf. The nucleus is the
    fewest most likely tokens whose probabilities sum to ≥ top_p; the most likely token always stays."""
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        before = probs.cumsum(-1) - probs  # the mass of the more likely tokens: a token is needed while it is < top_p
        drop_sorted = before >= top_p
        drop_sorted[:, 0] = False
        logits = logits.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), float("-inf"))
    return logits


def labels_exact_match(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample 1.0 when every labelled token is the argmax one step before it (teacher forcing), else 0.0."""
    pred = logits[:, :-1].argmax(-1)
    target = labels[:, 1:]
    wrong = (pred != target) & (target != -100)
    return (~wrong.any(dim=1)).float()


def positions_from_segments(segment_ids: Tensor) -> Tensor:
    """Positions that restart at 0 at every change of segment id: ``[[0,0,1,1,1]] → [[0,1,0,1,2]]``."""
    b, n = segment_ids.shape
    idx = torch.arange(n, device=segment_ids.device).expand(b, n)
    starts = torch.ones_like(segment_ids, dtype=torch.bool)
    starts[:, 1:] = segment_ids[:, 1:] != segment_ids[:, :-1]
    start_idx = torch.where(starts, idx, torch.zeros_like(idx)).cummax(dim=1).values
    return idx - start_idx


# ---- Hugging Face names ------------------------------------------------------------------------------------------

def decoder_rules(body: str = "model", head: str = "lm_head") -> list[tuple[str, str]]:
    """Qwen2 / Llama decoder names (``model.layers.{i}.self_attn``, …) with the body under ``body`` (Qwen2-Audio's
    language model sits under ``model.language_model``) and the head at ``head``."""
    return [
        (f"{body}.embed_tokens", "embed"),
        (f"{body}.layers.{{i}}.input_layernorm", "blocks.{i}.norm1"),
        (f"{body}.layers.{{i}}.post_attention_layernorm", "blocks.{i}.norm2"),
        (f"{body}.layers.{{i}}.self_attn", "blocks.{i}.mixer"),
        (f"{body}.layers.{{i}}.mlp", "blocks.{i}.mlp"),
        (f"{body}.norm", "norm"),
        (head, "lm_head"),
    ]


ROTARY_BUFFERS = r"rotary_emb\.inv_freq$"  # older checkpoints store the RoPE frequencies; the zoo computes them
QWEN2_KEYS = KeyMap(decoder_rules(), name="Qwen2 / Llama", ignore=[ROTARY_BUFFERS])
# MambaForCausalLM: norm → mixer → residual, no MLP
MAMBA_KEYS = KeyMap([
    ("backbone.embeddings", "embed"),
    ("backbone.layers.{i}.norm", "blocks.{i}.norm1"),
    ("backbone.layers.{i}.mixer", "blocks.{i}.mixer"),
    ("backbone.norm_f", "norm"),
    ("lm_head", "lm_head"),
], name="Mamba")


def hf_key_map(family: str) -> KeyMap:
    """The Hugging Face key map of an LM family (``qwen2``, ``llama``, ``mamba``)."""
    return MAMBA_KEYS if family == "mamba" else QWEN2_KEYS


def _hf_rope(hf: dict) -> tuple[float, dict | None]:
    params = hf.get("rope_parameters") or {}
    theta = params.get("rope_theta", hf.get("rope_theta", 10000.0))
    scaling = hf.get("rope_scaling") or params
    kind = scaling.get("rope_type", scaling.get("type", "default")) if scaling else "default"
    if kind in (None, "default"):
        return float(theta), None
    keep = {k: v for k, v in scaling.items() if k not in ("rope_theta", "rope_type", "type")}
    if kind == "dynamic" and "original_max_position_embeddings" not in keep:
        keep["original_max_position_embeddings"] = hf.get("max_position_embeddings")
    if kind == "yarn" and "original_max_position_embeddings" not in keep:
        keep["original_max_position_embeddings"] = hf.get("max_position_embeddings")
    return float(theta), {"type": kind, **keep}


# MambaConfig fields, read by _mamba_config_from_hf and written back by _mamba_hf_config:
#   layout and computation, honoured: vocab_size, hidden_size, num_hidden_layers, intermediate_size (else
#     expand × hidden_size), expand, state_size, conv_kernel, time_step_rank ("auto": ⌈hidden_size/16⌉), use_bias,
#     use_conv_bias, layer_norm_epsilon, residual_in_fp32 (fp32 residual stream in half precision),
#     tie_word_embeddings, bos/eos/pad_token_id;
#   hidden_act: transformers' activation after the conv (the gate is always silu); zoo's mixer has silu only, so any
#     other value is refused;
#   init only (no effect on loaded weights; a fresh model from the config honours them): time_step_min/max/floor/
#     scale/init_scheme (the mixer's dt_min/dt_max/dt_init_floor/dt_scale/dt_init), initializer_range (init_std);
#   init only and ignored: rescale_prenorm_residual (a fresh zoo model does not rescale out_proj; written false);
#   no effect on results, ignored: use_mambapy, use_associative_scan, use_cache.
_MAMBA_INIT_SCHEMES = ("random", "constant")


def _mamba_config_from_hf(hf: dict) -> LMConfig:
    act = hf.get("hidden_act", "silu")
    if act != "silu":
        raise ValueError(f"config.json hidden_act={act!r}: zoo's Mamba mixer applies silu after its conv")
    scheme = hf.get("time_step_init_scheme", "random")
    if scheme not in _MAMBA_INIT_SCHEMES:
        raise ValueError(f"config.json time_step_init_scheme={scheme!r}: zoo's Mamba mixer initialises dt_proj "
                         f"'random' or 'constant'")
    d_model = hf["hidden_size"]
    expand = hf.get("expand", 2)
    rank = hf.get("time_step_rank", "auto")
    mamba = dict(
        d_state=hf.get("state_size", 16), d_conv=hf.get("conv_kernel", 4), expand=expand,
        d_inner=int(hf.get("intermediate_size") or expand * d_model),
        dt_rank=rank if rank == "auto" else int(rank), bias=bool(hf.get("use_bias", False)),
        conv_bias=bool(hf.get("use_conv_bias", True)),
        dt_min=float(hf.get("time_step_min", 1e-3)), dt_max=float(hf.get("time_step_max", 0.1)),
        dt_init=scheme, dt_scale=float(hf.get("time_step_scale", 1.0)),
        dt_init_floor=float(hf.get("time_step_floor", 1e-4)),
    )
    eos = hf.get("eos_token_id")
    return LMConfig(
        vocab_size=hf["vocab_size"], d_model=d_model, n_layer=hf["num_hidden_layers"], n_head=1,
        layout="mamba", mixer_kwargs={"mamba": mamba}, mlp="none", norm="rmsnorm",
        norm_eps=hf.get("layer_norm_epsilon", 1e-5), tie_word_embeddings=bool(hf.get("tie_word_embeddings", True)),
        residual_in_fp32=bool(hf.get("residual_in_fp32", True)), init_std=float(hf.get("initializer_range", 0.1)),
        family="mamba", bos_token_id=hf.get("bos_token_id"), eos_token_id=eos[0] if isinstance(eos, list) else eos,
        pad_token_id=hf.get("pad_token_id"),
    )


def _mamba_hf_config(c: LMConfig, mixer: nn.Module) -> dict:
    """MambaForCausalLM's config.json, read off a built mixer so that its defaults are not restated here."""
    if set(expand_layout(c.layout, c.n_layer)) != {"mamba"} or c.mlp != "none" or c.norm != "rmsnorm":
        raise ValueError("only all-Mamba, MLP-free RMSNorm LMs have the MambaForCausalLM layout")
    return {
        "architectures": ["MambaForCausalLM"], "model_type": "mamba", "vocab_size": c.vocab_size,
        "hidden_size": c.d_model, "intermediate_size": mixer.d_inner, "num_hidden_layers": c.n_layer,
        "state_size": mixer.d_state, "conv_kernel": mixer.d_conv, "expand": mixer.expand,
        "time_step_rank": mixer.dt_rank, "use_bias": mixer.in_proj.bias is not None,
        "use_conv_bias": mixer.conv1d.bias is not None, "layer_norm_epsilon": c.norm_eps,
        "hidden_act": "silu", "residual_in_fp32": c.residual_in_fp32, "tie_word_embeddings": c.tie_word_embeddings,
        "time_step_min": mixer.dt_min, "time_step_max": mixer.dt_max, "time_step_floor": mixer.dt_init_floor,
        "time_step_scale": mixer.dt_scale, "time_step_init_scheme": mixer.dt_init,
        "initializer_range": c.init_std, "rescale_prenorm_residual": False,
        "bos_token_id": c.bos_token_id, "eos_token_id": c.eos_token_id, "pad_token_id": c.pad_token_id,
        "torch_dtype": "float32",
    }


def lm_config_from_hf(hf: dict) -> LMConfig:
    model_type = hf.get("model_type")
    if model_type == "mamba":
        return _mamba_config_from_hf(hf)
    if model_type not in ("qwen2", "llama"):
        raise ValueError(f"lm_config_from_hf handles model_type 'qwen2' and 'llama', got {model_type!r}")
    act = hf.get("hidden_act", "silu")
    if act != "silu":
        raise ValueError(f"config.json hidden_act={act!r}: zoo's Qwen2/Llama MLP is SwiGLU (silu)")
    if hf.get("use_sliding_window"):
        raise ValueError("config.json use_sliding_window=true: sliding-window Qwen2 layers are not supported yet")
    theta, scaling = _hf_rope(hf)
    n_head = hf["num_attention_heads"]
    is_qwen = model_type == "qwen2"
    return LMConfig(
        vocab_size=hf["vocab_size"],
        d_model=hf["hidden_size"],
        n_layer=hf["num_hidden_layers"],
        n_head=n_head,
        n_kv_head=hf.get("num_key_value_heads") or n_head,
        head_dim=hf.get("head_dim") or hf["hidden_size"] // n_head,
        d_ff=hf["intermediate_size"],
        norm_eps=hf.get("rms_norm_eps", 1e-6),
        qkv_bias=True if is_qwen else bool(hf.get("attention_bias", False)),
        attn_out_bias=False if is_qwen else bool(hf.get("attention_bias", False)),
        mlp_bias=False if is_qwen else bool(hf.get("mlp_bias", False)),
        rope_theta=theta,
        rope_scaling=scaling,
        max_position_embeddings=hf.get("max_position_embeddings", 2048),
        tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
        family=model_type,
        bos_token_id=hf.get("bos_token_id"),
        eos_token_id=hf.get("eos_token_id") if not isinstance(hf.get("eos_token_id"), list) else hf["eos_token_id"][0],
        pad_token_id=hf.get("pad_token_id"),
    )


def hf_config_from_lm(c: LMConfig) -> dict:
    if set(expand_layout(c.layout, c.n_layer)) != {"attention"} or c.mlp != "swiglu" or c.norm != "rmsnorm":
        raise ValueError("only all-attention SwiGLU/RMSNorm LMs have a Qwen2/Llama Hugging Face layout")
    if c.attn_sink or c.mixer_kwargs:
        raise ValueError("attention sinks / extra mixer_kwargs have no Qwen2/Llama Hugging Face layout")
    if c.family == "qwen2" and (not c.qkv_bias or c.attn_out_bias or c.mlp_bias):
        raise ValueError("a Qwen2 layout needs qkv_bias=True, attn_out_bias=False, mlp_bias=False")
    if c.family == "llama" and (c.qkv_bias != c.attn_out_bias):
        raise ValueError("a Llama layout has one attention_bias for q, k, v and o")
    scaling = RopeScaling.from_dict(c.rope_scaling)
    rope_scaling = None
    if scaling.type != "none":
        rope_scaling = {"rope_type": scaling.type, "factor": scaling.factor}
        if scaling.type == "ntk":
            raise ValueError("static 'ntk' rope scaling has no Hugging Face equivalent; use 'dynamic' or 'yarn'")
        if scaling.original_max_position_embeddings is not None:
            rope_scaling["original_max_position_embeddings"] = scaling.original_max_position_embeddings
        if scaling.type == "yarn":
            rope_scaling.update(beta_fast=scaling.beta_fast, beta_slow=scaling.beta_slow, truncate=scaling.truncate)
            if scaling.attention_factor is not None:
                rope_scaling["attention_factor"] = scaling.attention_factor
    hf = {
        "architectures": ["Qwen2ForCausalLM" if c.family == "qwen2" else "LlamaForCausalLM"],
        "model_type": c.family,
        "vocab_size": c.vocab_size,
        "hidden_size": c.d_model,
        "intermediate_size": c.d_ff,
        "num_hidden_layers": c.n_layer,
        "num_attention_heads": c.n_head,
        "num_key_value_heads": c.n_kv_head,
        "head_dim": c.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": c.max_position_embeddings,
        "rms_norm_eps": c.norm_eps,
        "rope_theta": c.rope_theta,
        "rope_scaling": rope_scaling,
        "tie_word_embeddings": c.tie_word_embeddings,
        "bos_token_id": c.bos_token_id,
        "eos_token_id": c.eos_token_id,
        "pad_token_id": c.pad_token_id,
        "torch_dtype": "float32",
    }
    if c.family == "llama":
        hf.update(attention_bias=c.qkv_bias, mlp_bias=c.mlp_bias)
    else:
        hf.update(use_sliding_window=False)
    return hf


# ---- named models -----------------------------------------------------------------------------------------------


@register_model("lm-tiny")
def lm_tiny(**overrides) -> CausalLM:
    """A byte-level Qwen2-shaped LM small enough to train on a laptop CPU (≈0.8M parameters)."""
    return CausalLM(LMConfig(**{"vocab_size": 260, "d_model": 128, "n_layer": 4, "n_head": 4, "d_ff": 384,
                                "qkv_bias": True, **overrides}))


@register_model("qwen2-0.5b")
def qwen2_0_5b(**overrides) -> CausalLM:
    """Qwen2-0.5B's shape (random weights; load real ones with zoo.load_pretrained)."""
    return CausalLM(LMConfig(**{
        "vocab_size": 151936, "d_model": 896, "n_layer": 24, "n_head": 14, "n_kv_head": 2, "d_ff": 4864,
        "qkv_bias": True, "rope_theta": 1_000_000.0, "max_position_embeddings": 32768, "tie_word_embeddings": True,
        "norm_eps": 1e-6, **overrides}))


@register_model("qwen2-7b")
def qwen2_7b(**overrides) -> CausalLM:
    """Qwen2-7B's shape, the LongVA language model (random weights)."""
    return CausalLM(LMConfig(**{
        "vocab_size": 152064, "d_model": 3584, "n_layer": 28, "n_head": 28, "n_kv_head": 4, "d_ff": 18944,
        "qkv_bias": True, "rope_theta": 1_000_000.0, "max_position_embeddings": 32768, "norm_eps": 1e-6,
        **overrides}))
