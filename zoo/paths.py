"""Where the zoo keeps files it generates (synthetic haystacks, FASTA indexes for read-only folders)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$ZOO_CACHE``, default ``~/.cache/zoo``."""
    return Path(os.environ.get("ZOO_CACHE", Path.home() / ".cache" / "zoo"))
