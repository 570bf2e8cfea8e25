"""The one place where GPU-only packages are imported.

Nothing in zoo imports flash_attn, mamba_ssm or causal_conv1d at module top level: ask this module instead.
Each probe runs once and caches its answer, so a missing package costs one failed import per process.
"""

from __future__ import annotations

import functools
import importlib
import logging

log = logging.getLogger("zoo.kernels")


@functools.cache
def optional_import(name: str):
    """Return the imported module, or None when it is not installed (or fails to import)."""
    try:
        return importlib.import_module(name)
    except Exception as err:  # a broken CUDA install raises more than ImportError
        log.debug("optional package %s unavailable: %s", name, err)
        return None


def flash_attn():
    return optional_import("flash_attn")


def mamba_ssm():
    return optional_import("mamba_ssm")


def causal_conv1d():
    return optional_import("causal_conv1d")


@functools.cache
def log_fallback_once(what: str, why: str) -> None:
    """`auto` backends may fall back to a slower path; say so once per (what, why) per process."""
    log.warning("%s: falling back (%s)", what, why)
