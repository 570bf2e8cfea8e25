"""The published architectures at their real sizes: each a named config of a registered architecture (name →
arch, config YAML, hub id and published parameter count).

``zoo.create_model("longva-7b", device="meta")`` builds one without allocating its weights;
``zoo.create_model("longva-7b", pretrained="lmms-lab/LongVA-7B")`` (or a local directory) loads released weights and
checks they are that architecture. ``python -m zoo.plan --config configs/longva_7b.yaml --params`` counts the same
model from its YAML. tests/zoo/test_published.py checks every count against ``parameters`` within 1%.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .configs import build_module, count_parameters, network
from .registry import ARCHITECTURES, MODELS


@dataclass(frozen=True)
class PublishedModel:
    name: str
    arch: str  # the registered architecture (zoo.registry.ARCHITECTURES) that configs/<config>.yaml builds
    config: str  # configs/<config>.yaml: the YAML that trains / fine-tunes this architecture
    hub_id: str | None
    parameters: int  # the published count (exact where the source gives one)
    source: str


PUBLISHED: dict[str, PublishedModel] = {m.name: m for m in (
    PublishedModel("longva-7b", "longva", "longva_7b", "lmms-lab/LongVA-7B", 7_935_646_208,
                   "LongVA-7B: Qwen2-7B 7,615,616,512 + CLIP ViT-L/14-336 303,507,456 + projector 16,522,240"),
    PublishedModel("qwen2-audio-7b", "qwen2_audio", "qwen2_audio_partial_yarn", "Qwen/Qwen2-Audio-7B", 8_400_000_000,
                   "Qwen/Qwen2-Audio-7B model card: 8.4B (the test also matches transformers' count exactly)"),
    PublishedModel("hyenadna-tiny-1k", "causal_lm", "hyenadna", "LongSafari/hyenadna-tiny-1k-seqlen", 436_000,
                   "HyenaDNA paper: 436K (tiny, d_model 128, 2 layers)"),
    PublishedModel("hyenadna-small-32k", "causal_lm", "hyenadna_small_32k", "LongSafari/hyenadna-small-32k-seqlen",
                   3_277_568,
                   "the parameters of the original weights.ckpt layout for its config.json (d_model 256, 4 layers), "
                   "enumerated key by key in the test"),
    PublishedModel("hyenadna-medium-160k", "causal_lm", "hyenadna_medium_160k",
                   "LongSafari/hyenadna-medium-160k-seqlen",
                   6_600_000, "HyenaDNA / Caduceus papers: 6.6M (d_model 256, 8 layers)"),
    PublishedModel("hyenadna-medium-450k", "causal_lm", "hyenadna_medium_450k",
                   "LongSafari/hyenadna-medium-450k-seqlen",
                   6_600_000, "HyenaDNA / Caduceus papers: 6.6M (d_model 256, 8 layers)"),
    PublishedModel("hyenadna-large-1m", "causal_lm", "hyenadna_large_1m", "LongSafari/hyenadna-large-1m-seqlen",
                   6_600_000,
                   "HyenaDNA / Caduceus papers: 6.6M (d_model 256, 8 layers)"),
    PublishedModel("caduceus-ps-131k", "caduceus", "caduceus_ps_131k",
                   "kuleshov-group/caduceus-ps_seqlen-131k_d_model-256_n_layer-16",
                   7_700_000, "Caduceus paper: 7.7M"),
    PublishedModel("generator-eukaryote-1.2b", "causal_lm", "generator_1_2b",
                   "GenerTeam/GENERator-eukaryote-1.2b-base",
                   1_162_061_824, "transformers' LlamaForCausalLM for the released config.json (paper: 1.2B)"),
    PublishedModel("lc-plm", "caduceus", "lcplm_48l", "amazon/LC-PLM", 752_817_844,
                   "amazon/LC-PLM model.safetensors: 3,011,271,376 bytes of float32 ⇒ at most 752,817,844"),
    PublishedModel("timer-base-84m", "timer_xl", "timer_xl_84m", "thuml/timer-base-84m", 84_000_000,
                   "thuml/timer-base-84m: 84M"),
)}


def build_published(name: str, pretrained: str | None = None, device: str = "cpu", **load_kwargs) -> nn.Module:
    """The network of a published architecture: random weights on ``device`` (``meta``: none allocated), or the
    released weights from ``pretrained`` (a directory, a ``.ckpt`` or a hub id), which must be that architecture."""
    entry = PUBLISHED[name]
    module, _ = build_module(entry.config, device="meta" if pretrained else device)
    model = network(module)
    architecture = ARCHITECTURES.get(entry.arch)
    if not isinstance(model, architecture):
        raise TypeError(f"configs/{entry.config}.yaml builds a {type(model).__name__}, not {entry.name}'s "
                        f"architecture {entry.arch!r} ({architecture.__name__})")
    if pretrained is None:
        return model
    from .loading import load_pretrained

    loaded = load_pretrained(pretrained, device=None if device == "meta" else device, **load_kwargs)
    expected, got = count_parameters(model), count_parameters(loaded)
    if type(loaded) is not type(model) or got != expected:
        raise ValueError(f"pretrained={pretrained!r} holds a {type(loaded).__name__} of {got:,} parameters, not "
                         f"{name} ({type(model).__name__}, {expected:,} parameters, configs/{entry.config}.yaml)")
    return loaded


def _factory(name: str):
    def make(pretrained: str | None = None, device: str = "cpu", **load_kwargs) -> nn.Module:
        return build_published(name, pretrained, device, **load_kwargs)

    make.__doc__ = f"{name} ({PUBLISHED[name].source}); see zoo.published.build_published"
    return make


for _name in PUBLISHED:
    MODELS.register(_name)(_factory(_name))
