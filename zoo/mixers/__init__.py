"""Sequence mixers. Importing this package registers them in ``zoo.registry.MIXERS``."""

from .attention import Attention
from .hsa import HSA
from .hyena import Hyena
from .mamba import BiMamba, Mamba
from .time_attention import TimeAttention, VariableLayout

__all__ = ["HSA", "Attention", "BiMamba", "Hyena", "Mamba", "TimeAttention", "VariableLayout"]
