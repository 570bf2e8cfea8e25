"""zoo: a long-context multimodal model zoo on one shared long-sequence backbone."""

from __future__ import annotations

__version__ = "0.1.0"


def create_model(name: str, **overrides):
    """Build a registered model by name (``zoo.list_models()``): the small built-ins take config overrides; the
    published real-size architectures (``zoo.published``) take ``device`` ("meta" allocates nothing) and
    ``pretrained`` (a directory, .ckpt or hub id whose weights are loaded and checked to be that architecture)."""
    from . import lm, published  # noqa: F401  (register the built-in and the published models)
    from .registry import MODELS

    return MODELS.get(name)(**overrides)


def load_pretrained(path_or_id, **kwargs):
    """See :func:`zoo.loading.load_pretrained`."""
    from .loading import load_pretrained as _load

    return _load(path_or_id, **kwargs)


def list_models() -> list[str]:
    """Names ``create_model`` takes: the small built-ins and the published real sizes. The configs that train
    them are :func:`list_configs` (``python -m zoo.fit --list``)."""
    from . import lm, published  # noqa: F401
    from .registry import MODELS

    return MODELS.names()


def list_configs() -> dict[str, str]:
    """The trainable configs in ``configs/``: name → one line saying what it trains (``python -m zoo.fit --config
    NAME``)."""
    from .configs import list_configs as _list

    return _list()


__all__ = ["__version__", "create_model", "list_configs", "list_models", "load_pretrained"]
