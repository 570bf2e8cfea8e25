"""Sequence mixers. Importing this package registers them in ``zoo.registry.MIXERS``."""

from .attention import Attention
from .mamba import Mamba

__all__ = ["Attention", "Mamba"]
