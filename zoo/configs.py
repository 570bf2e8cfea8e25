"""Reading a ``python -m zoo.fit`` YAML without training: the LightningModule it names, built on any device (``meta``
for real sizes, so nothing is allocated), and the trainer settings that decide memory (precision)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a module is built: listing configs stays instant
    import torch
    from torch import nn


def configs_dir() -> Path:
    """The repository's ``configs/`` (installed editable, as the README does)."""
    path = Path(__file__).resolve().parents[1] / "configs"
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist: the configs ship with the repository; install it with "
                                "`pip install -e .` from a clone")
    return path


def resolve_config(name_or_path: str | Path) -> Path:
    """A path to a YAML, or the name of one in ``configs/`` (``longva_7b`` or ``longva_7b.yaml``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    candidate = configs_dir() / (path.name if path.suffix == ".yaml" else f"{path.name}.yaml")
    if candidate.is_file():
        return candidate
    known = ", ".join(sorted(p.stem for p in configs_dir().glob("*.yaml")))
    raise FileNotFoundError(f"no config {str(name_or_path)!r}: not a file, and not one of configs/: {known}")


def config_summary(path: Path, width: int = 100) -> str:
    """A YAML's first comment sentence, cut to ``width`` characters: what it trains, in one line."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if not text or text.startswith(("python ", "torchrun ", ".venv/")):
            break
        lines.append(text)
    text = " ".join(lines)
    # parenthesised details go (the line says what, the YAML says how), except a bare name such as a hub id
    summary = re.sub(r"\s*\((?:[^()]|\([^()]*\))*\s(?:[^()]|\([^()]*\))*\)", "", text)
    summary = re.sub(r"\s+([,.;])", r"\1", summary).strip()
    for stop in (": ", ". ", "; "):
        if stop in summary:
            summary = summary[: summary.index(stop)]
    summary = summary.rstrip(" .,;")
    return summary if len(summary) <= width else summary[: width - 1].rstrip() + "…"


def list_configs() -> dict[str, str]:
    """Every config in ``configs/`` (name → one-line summary): what ``python -m zoo.fit --config NAME`` trains."""
    return {p.stem: config_summary(p) for p in sorted(configs_dir().glob("*.yaml"))}


def _parser():
    import lightning as L
    from jsonargparse import ActionConfigFile, ArgumentParser

    parser = ArgumentParser(exit_on_error=False, prog="zoo config")
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_subclass_arguments(L.LightningModule, "model", required=True)
    parser.add_argument("--trainer", type=dict, default={})
    parser.add_argument("--data", type=dict, default={})
    parser.add_argument("--seed_everything", type=int | bool | None, default=None)
    parser.add_argument("--ckpt_path", type=str | None, default=None)
    return parser


def build_module(config: str | Path, overrides: list[str] | tuple[str, ...] = (), device: str | torch.device = "meta"):
    """``(LightningModule, trainer settings dict)`` for a fit YAML; ``overrides`` as on the fit command line
    (``["--model.init_args.model.n_layer", "2"]``). The module's own checks run (a bad field raises, naming it)."""
    import torch

    parser = _parser()
    cfg = parser.parse_args(["--config", str(resolve_config(config)), *overrides])
    with torch.device(device):
        init = parser.instantiate(cfg)
    return init.model, dict(cfg.trainer or {})


def network(module) -> nn.Module:
    """The zoo network a Lightning module trains (its ``.model``)."""
    from torch import nn

    model = getattr(module, "model", None)
    if not isinstance(model, nn.Module):
        raise TypeError(f"{type(module).__name__} has no .model network")
    return model


def count_parameters(model: nn.Module) -> int:
    """Distinct parameters (tied weights once), as ``model.parameters()`` yields them."""
    return sum(p.numel() for p in model.parameters())
