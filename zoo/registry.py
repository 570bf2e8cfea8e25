"""Name → factory registries (timm style): mixers, models, Hugging Face families and eval tasks."""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Generic, Protocol, TypeVar, runtime_checkable

T = TypeVar("T")


class Registry(Generic[T]):
    """``plugins``: the entry-point group (zoo.plugins) whose modules are imported the first time a name is missing,
    so that a YAML naming a plugin's mixer or position scheme finds it without an import line."""

    def __init__(self, kind: str, plugins: str | None = "zoo.models"):
        self.kind = kind
        self.plugins = plugins
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise KeyError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        if name not in self._entries and self.plugins is not None:
            from .plugins import discover

            discover(self.plugins)
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
# timm-style named models (``zoo.create_model(name)``): a published size or a small default of a registered arch
MODELS: Registry[Callable] = Registry("model")
# the architectures: arch name (a zoo checkpoint's hyper_parameters.zoo_model.arch) → ZooModel class; filled only by
# register_architecture, which also fills HF_FAMILIES, the index of the Hugging Face model_types each arch reads
ARCHITECTURES: Registry[type] = Registry("architecture")
HF_FAMILIES: Registry[type] = Registry("Hugging Face model_type")
# checkpoint directories in a family's own, non-Hugging Face layout (HyenaDNA's config.json + weights.ckpt):
# CheckpointLayout objects, tried by load_pretrained before config.json's model_type is read
CHECKPOINT_LAYOUTS: Registry = Registry("checkpoint layout")
EVAL_TASKS: Registry[Callable] = Registry("eval task", plugins="zoo.eval_tasks")
# position-id schemes: fn(is_media (N,) bool, **params) -> (N,) float32 positions (zoo.positions)
POSITIONS: Registry[Callable] = Registry("position scheme")
register_positions = POSITIONS.register
# passkey retrieval for other token sets than bytes: tokenizer name (a checkpoint's zoo_model.tokenizer) →
# fn(datamodule_hparams, model) -> {"kind", "make_set", "score", ...} for ``python -m zoo.eval passkey``
PASSKEY_VARIANTS: Registry[Callable] = Registry("passkey variant", plugins="zoo.eval_tasks")


class CheckpointLayout:
    """A non-Hugging Face directory layout: ``detect(directory) -> bool``, ``load(directory, **overrides)``, and the
    tokenizer name its models use (None when the checkpoint does not imply one)."""

    def __init__(self, detect: Callable, load: Callable, tokenizer: str | None = None):
        self.detect, self.load, self.tokenizer = detect, load, tokenizer


register_mixer = MIXERS.register
register_model = MODELS.register


@runtime_checkable
class ZooModel(Protocol):
    """What a registered architecture provides: its name, the Hugging Face ``model_type``s it reads, and the config /
    weight conversions that zoo checkpoints and Hugging Face directories need. A family that reads files beside
    config.json (LongVA's vision tower) sets ``from_hf_takes_source = True`` and gets ``source=<directory>``. Writing
    Hugging Face layout (:class:`HFExport`) is optional: Timer-XL and Caduceus read their original checkpoints only."""

    arch: ClassVar[str]
    hf_model_types: ClassVar[tuple[str, ...]]

    def config_dict(self) -> dict: ...  # plain types only: it is stored in checkpoints loaded with weights_only

    @classmethod
    def from_config_dict(cls, d: dict, **overrides) -> Any: ...

    @classmethod
    def from_hf(cls, hf_config: dict, **overrides) -> Any: ...

    def state_dict_from_hf(self, hf_state: dict) -> dict: ...


@runtime_checkable
class HFExport(Protocol):
    """Models that also write a Hugging Face directory (``save_pretrained``) that transformers and the zoo read."""

    def hf_config(self) -> dict: ...

    def hf_state_dict(self) -> dict: ...

    def save_pretrained(self, path, max_shard_size: int | str = "2GB") -> None: ...


ZOO_MODEL_METHODS = ("config_dict", "from_config_dict", "from_hf", "state_dict_from_hf")


def register_architecture(cls: type) -> type:
    """Class decorator: register ``cls`` under ``cls.arch`` and as the reader of each of ``cls.hf_model_types``;
    a class that lacks part of the :class:`ZooModel` protocol is refused, naming what is missing."""
    missing = [m for m in ZOO_MODEL_METHODS if not callable(getattr(cls, m, None))]
    if not isinstance(getattr(cls, "arch", None), str):
        missing.insert(0, "arch (a str class attribute)")
    types = getattr(cls, "hf_model_types", None)
    if not isinstance(types, tuple) or not all(isinstance(t, str) for t in types):
        missing.append("hf_model_types (a tuple of str; empty when it reads no Hugging Face layout)")
    if missing:
        raise TypeError(f"{cls.__name__} does not implement the ZooModel protocol: missing {', '.join(missing)}")
    ARCHITECTURES.register(cls.arch)(cls)
    for model_type in types:
        HF_FAMILIES.register(model_type)(cls)
    return cls
