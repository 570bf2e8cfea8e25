"""Name → factory registries (timm style): mixers, models, Hugging Face families and eval tasks."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise KeyError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise KeyError(f"unknown {self.kind} {name!r}; registered: {known}") from None

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def names(self) -> list[str]:
        return sorted(self._entries)


# nn.Module classes called as mixer(x, ctx, state); ``masked_attention = True`` declares that tokens meet only
# through ctx's mask (padding and sequence parallelism then work through it)
MIXERS: Registry[type] = Registry("mixer")
MODELS: Registry[Callable] = Registry("model")
# classes with from_hf(hf_config, **overrides) and state_dict_from_hf(state); a family that reads files beside
# config.json (LongVA's vision tower) declares ``from_hf_takes_source = True`` and gets ``source=<directory>``
HF_FAMILIES: Registry[type] = Registry("Hugging Face model_type")
# checkpoint directories in a family's own, non-Hugging Face layout (HyenaDNA's config.json + weights.ckpt):
# CheckpointLayout objects, tried by load_pretrained before config.json's model_type is read
CHECKPOINT_LAYOUTS: Registry = Registry("checkpoint layout")
EVAL_TASKS: Registry[Callable] = Registry("eval task")
# architectures of zoo checkpoints (hyper_parameters.zoo_model.arch): classes with from_config_dict(dict, **overrides)
ARCHITECTURES: Registry[type] = Registry("architecture")
# position-id schemes: fn(is_media (N,) bool, **params) -> (N,) float32 positions (zoo.positions)
POSITIONS: Registry[Callable] = Registry("position scheme")
register_positions = POSITIONS.register
# passkey retrieval for other token sets than bytes: tokenizer name (a checkpoint's zoo_model.tokenizer) →
# fn(datamodule_hparams, model) -> {"kind", "make_set", "score", ...} for ``python -m zoo.eval passkey``
PASSKEY_VARIANTS: Registry[Callable] = Registry("passkey variant")


class CheckpointLayout:
    """A non-Hugging Face directory layout: ``detect(directory) -> bool``, ``load(directory, **overrides)``, and the
    tokenizer name its models use (None when the checkpoint does not imply one)."""

    def __init__(self, detect: Callable, load: Callable, tokenizer: str | None = None):
        self.detect, self.load, self.tokenizer = detect, load, tokenizer


register_mixer = MIXERS.register
register_model = MODELS.register
