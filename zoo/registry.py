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


MIXERS: Registry[type] = Registry("mixer")
MODELS: Registry[Callable] = Registry("model")
HF_FAMILIES: Registry[type] = Registry("Hugging Face model_type")
EVAL_TASKS: Registry[Callable] = Registry("eval task")
# architectures of zoo checkpoints (hyper_parameters.zoo_model.arch): classes with from_config_dict(dict, **overrides)
ARCHITECTURES: Registry[type] = Registry("architecture")

register_mixer = MIXERS.register
register_model = MODELS.register
