"""Modalities plug into the core through entry points, so that the core imports none of them.

A package (the zoo's own modalities, or a researcher's) declares in its ``pyproject.toml``::

    [project.entry-points."zoo.models"]       # modules whose import registers model families / architectures
    mymodality = "mypackage.models"
    [project.entry-points."zoo.eval_tasks"]   # modules whose import registers ``python -m zoo.eval`` tasks
    mymodality = "mypackage.eval"

and :func:`discover` imports them the first time the core needs a registry filled (``load_pretrained`` of a
``model_type`` it has not seen, ``python -m zoo.eval``). Eval-task modules must stay light: ``--help`` imports them.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

MODEL_GROUP = "zoo.models"
EVAL_GROUP = "zoo.eval_tasks"
_discovered: set[str] = set()


def plugin_modules(group: str) -> dict[str, str]:
    """name → module for the entry points of ``group``; raises when none is installed (the zoo's own metadata gone)."""
    found = {ep.name: ep.value for ep in entry_points(group=group)}
    if not found:
        raise RuntimeError(f"no {group!r} entry points are installed, so no modality is registered: install the "
                           "package (pip install -e . in a checkout) rather than putting it on sys.path")
    return found


def discover(group: str) -> None:
    """Import every module registered under ``group`` (once per process); a module that fails to import is named."""
    if group in _discovered:
        return
    for name, module in sorted(plugin_modules(group).items()):
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ImportError(f"zoo plugin {name!r} ({group}: {module}) failed to import: {e}") from e
    _discovered.add(group)
