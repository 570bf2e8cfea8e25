"""Lazy package exports (PEP 562): a modality package names its public objects and the submodule each lives in, and
a submodule is imported the first time one of its names is used. ``import zoo.modalities.video`` (which every
``zoo.modalities.video.eval`` import implies) then costs nothing, so ``python -m zoo.eval --help`` does not import
Lightning, transformers and every modality before printing."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_exports(package: str, exports: dict[str, list[str]]) -> tuple[Callable, Callable, list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package``; ``exports`` maps a submodule (``".frames"``) to the
    names it provides. Each name is cached on the package after its first use."""
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str):
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__, sorted(where)
