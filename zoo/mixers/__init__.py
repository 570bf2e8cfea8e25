"""Sequence mixers. Importing this package registers them in ``zoo.registry.MIXERS``."""

from .attention import Attention

__all__ = ["Attention"]
