"""Load and save models: Hugging Face directories (config.json + safetensors, sharded or not), hub ids, and the
Lightning checkpoints that ``python -m zoo.fit`` writes. Loading is strict and never unpickles arbitrary objects."""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path

import torch
from torch import nn

from .checkpoints import (MODEL_PREFIX, ZOO_MODEL_KEY, CheckpointError, lightning_checkpoint, read_index,
                          safetensors_load, save_hf_directory, torch_load)
from .plugins import MODEL_GROUP, discover
from .registry import ARCHITECTURES, CHECKPOINT_LAYOUTS, HF_FAMILIES

__all__ = ["CheckpointError", "CheckpointNotFoundError", "load_pretrained", "save_hf_directory", "read_state_dict"]
# what a Hub repository id looks like (huggingface_hub's rule: org/name of letters, digits, '-', '_', '.')
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")
LOCAL_SUFFIXES = {".ckpt", ".pt", ".pth", ".bin", ".safetensors", ".json", ".yaml", ".yml"}
HUB_TIMEOUT_S = 5.0  # per request; an unreachable Hub fails in seconds, not after minutes


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A local checkpoint path that does not exist, or a hub id the Hub cannot provide."""


def _ensure_registered() -> None:
    discover(MODEL_GROUP)  # the core's causal LM (zoo.lm) and the modalities' families: entry points (zoo.plugins)


def checkpoint_layout(directory: Path):
    """The registered :class:`~zoo.registry.CheckpointLayout` that recognises ``directory``, or None."""
    _ensure_registered()
    return next((CHECKPOINT_LAYOUTS.get(n) for n in CHECKPOINT_LAYOUTS.names()
                 if CHECKPOINT_LAYOUTS.get(n).detect(directory)), None)


def looks_local(text: str) -> bool:
    """Whether ``text`` can only mean a path on this machine: anything but a bare ``org/name`` whose ``org`` is not
    a folder here (``runs/longvaa`` is local when ``runs/`` exists; ``my_model`` and ``model.ckpt`` always are)."""
    if text.startswith((".", "/", "~")) or "\\" in text or Path(text).suffix.lower() in LOCAL_SUFFIXES:
        return True
    if not HUB_ID.fullmatch(text):
        return True
    return Path(text.split("/")[0]).is_dir()


def _missing_local(text: str) -> CheckpointNotFoundError:
    """'no such path', naming the nearest folder that exists and the closest names in it."""
    path = Path(text).expanduser()
    parent = path.parent
    while not parent.is_dir() and parent != parent.parent:
        parent = parent.parent
    message = f"{text}: no such file or directory"
    if parent.is_dir():
        names = sorted(p.name for p in parent.iterdir())
        target = path.relative_to(parent).parts[0] if path.is_relative_to(parent) else path.name
        close = difflib.get_close_matches(target, names, n=3, cutoff=0.6)
        if close:
            message += f" (did you mean {', '.join(str(parent / c) for c in close)}?)"
        elif names and parent != path.parent.parent.parent:  # the listing helps next to the path, not far up
            where = "this folder" if str(parent) == "." else f"{parent}/"
            message += f" ({where} holds {', '.join(names[:8])}{', …' if len(names) > 8 else ''})"
    return CheckpointNotFoundError(message)


def _resolve(path_or_id: str | os.PathLike, revision: str | None) -> Path:
    path = Path(path_or_id).expanduser()
    if path.exists():
        return path
    text = str(path_or_id)
    if isinstance(path_or_id, os.PathLike) or looks_local(text):
        raise _missing_local(text)
    return _download(text, revision)


def _download(repo_id: str, revision: str | None) -> Path:
    """A Hub snapshot (weights, configs, tokenizer files only); offline (``HF_HUB_OFFLINE=1``) only the local cache
    is read. Network failures give up after :data:`HUB_TIMEOUT_S` per request and say so."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    offline = bool(constants.HF_HUB_OFFLINE)
    try:
        return Path(snapshot_download(repo_id, revision=revision, etag_timeout=HUB_TIMEOUT_S,
                                      allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.bin"]))
    except LocalEntryNotFoundError as e:
        why = ("HF_HUB_OFFLINE is set and it is not in the local Hub cache" if offline else
               f"the Hub could not be reached ({str(e).splitlines()[0][:120]}) and it is not in the local cache")
        raise CheckpointNotFoundError(f"{repo_id}: not a local path, and {why}") from None
    except GatedRepoError:
        raise CheckpointNotFoundError(f"{repo_id}: a gated Hub repository; log in (huggingface-cli login) after "
                                      "accepting its terms") from None
    except RepositoryNotFoundError:
        raise CheckpointNotFoundError(f"{repo_id}: not a local path, and no such model on the Hub") from None
    except RevisionNotFoundError:
        raise CheckpointNotFoundError(f"{repo_id}: the Hub has no revision {revision!r}") from None


def read_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    """All tensors of a Hugging Face directory: (sharded) safetensors, else (sharded) pytorch_model.bin."""
    for index_name, loader in (
        ("model.safetensors.index.json", safetensors_load),
        ("pytorch_model.bin.index.json", torch_load),
    ):
        index = directory / index_name
        if index.exists():
            weight_map = read_index(index)
            state: dict[str, torch.Tensor] = {}
            for shard in sorted(set(weight_map.values())):
                shard_path = directory / shard
                if not shard_path.exists():
                    raise CheckpointError(f"{index} names shard {shard!r}, which is missing from {directory}")
                state.update(_tensor_dict(loader(shard_path), shard_path))
            missing = set(weight_map) - set(state)
            if missing:
                raise CheckpointError(f"{index} lists tensors absent from its shards: {sorted(missing)[:10]}")
            return state
    if (directory / "model.safetensors").exists():
        return safetensors_load(directory / "model.safetensors")
    if (directory / "pytorch_model.bin").exists():
        return _tensor_dict(torch_load(directory / "pytorch_model.bin"), directory / "pytorch_model.bin")
    found = sorted(p.name for p in directory.iterdir())
    raise CheckpointError(f"no weights in {directory}: expected model.safetensors (or shards/.bin); found {found}")


def _tensor_dict(state, path: Path) -> dict[str, torch.Tensor]:
    """A weights file's content, checked to be a flat name → tensor mapping (a full training checkpoint is not)."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        kind = type(state).__name__ if not isinstance(state, dict) else "a dict holding non-tensors"
        raise CheckpointError(f"{path}: expected a name → tensor state dict, found {kind}")
    return state


def load_state_dict_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Copy ``state`` into ``model``; any missing, unexpected or mis-shaped tensor raises, naming all of them."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state)
        if state[k].shape != expected[k].shape
    )
    if missing or unexpected or shapes:
        lines = [f"checkpoint {source} does not match {type(model).__name__}:"]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
        if shapes:
            lines.append(f"  shape mismatches ({len(shapes)}): {'; '.join(shapes)}")
        raise CheckpointError("\n".join(lines))
    with torch.no_grad():
        for k, v in expected.items():
            v.copy_(state[k].to(v.dtype))


def load_zoo_checkpoint(path: Path, **overrides) -> nn.Module:
    """A Lightning checkpoint written by ``zoo.fit``: hyper_parameters.zoo_model names the architecture/config."""
    _ensure_registered()
    ckpt = lightning_checkpoint(path)
    meta = (ckpt.get("hyper_parameters") or {}).get(ZOO_MODEL_KEY)
    if not meta:
        raise CheckpointError(f"{path} has no hyper_parameters.{ZOO_MODEL_KEY} entry: it was not written by zoo.fit")
    model = ARCHITECTURES.get(meta["arch"]).from_config_dict(meta["config"], **overrides)
    prefix = meta.get("prefix", MODEL_PREFIX)
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    load_state_dict_strict(model, state, str(path))
    return model


def checkpoint_hparams(path: str | os.PathLike) -> dict:
    """``hyper_parameters`` and ``datamodule_hyper_parameters`` of a ``zoo.fit`` checkpoint (read with
    ``weights_only=True``); {} for a directory, which carries no training settings."""
    path = Path(path)
    if not path.is_file():
        return {}
    # memory-mapped: the evals call this beside load_pretrained on the same file, and only the small hyper-parameter
    # dicts are wanted, not a second copy of the weights and optimizer states
    ckpt = torch_load(path, mmap=True)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: not a Lightning checkpoint")
    return {k: ckpt.get(k) or {} for k in ("hyper_parameters", "datamodule_hyper_parameters")}


def checkpoint_tokenizer(path: str | os.PathLike, hparams: dict | None = None) -> str | None:
    """The tokenizer a checkpoint speaks, where it says: a ``zoo.fit`` run's recorded ``zoo_model.tokenizer``, or
    the tokenizer a family's own directory layout implies (HyenaDNA: characters); None when neither says.
    ``hparams``: the file's :func:`checkpoint_hparams` when the caller has read them already."""
    path = Path(path)
    hparams = checkpoint_hparams(path) if hparams is None else hparams
    tokenizer = ((hparams.get("hyper_parameters") or {}).get(ZOO_MODEL_KEY) or {}).get("tokenizer")
    if tokenizer is None and path.is_dir():
        layout = checkpoint_layout(path)
        tokenizer = layout.tokenizer if layout is not None else None
    return tokenizer


def load_pretrained(
    path_or_id: str | os.PathLike,
    *,
    revision: str | None = None,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    **overrides,
) -> nn.Module:
    """Build the zoo model for a checkpoint and load its weights strictly; returns it in eval mode.

    ``path_or_id``: a Hugging Face-layout directory (config.json + weights), an ``org/name`` hub id (downloaded when
    online), or a ``.ckpt`` written by ``python -m zoo.fit``. ``overrides`` replace config fields, e.g.
    ``rope_scaling={"type": "yarn", "factor": 4, "original_max_position_embeddings": 512}``.
    """
    _ensure_registered()
    path = _resolve(path_or_id, revision)
    if path.is_file():
        if path.suffix != ".ckpt":
            raise CheckpointError(f"{path}: expected a directory in Hugging Face layout or a zoo .ckpt file")
        model = load_zoo_checkpoint(path, **overrides)
    else:
        config_path = path / "config.json"
        if not config_path.exists():
            raise CheckpointError(f"{path} has no config.json; is it a Hugging Face model directory?")
        layout = checkpoint_layout(path)
        if layout is not None:  # a family's own layout (HyenaDNA: config.json without model_type + weights.ckpt)
            model = layout.load(path, **overrides)
            if dtype is not None or device is not None:
                model = model.to(device=device, dtype=dtype)
            return model.eval()
        try:
            hf_config = json.loads(config_path.read_text())
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{config_path}: not valid JSON ({e})") from None
        model_type = hf_config.get("model_type") if isinstance(hf_config, dict) else None
        if model_type is None:
            raise CheckpointError(f"{config_path} has no model_type")
        if model_type not in HF_FAMILIES:
            raise CheckpointError(f"{config_path}: model_type {model_type!r} is not one the zoo loads "
                                  f"({', '.join(HF_FAMILIES.names())})")
        family = HF_FAMILIES.get(model_type)
        if getattr(family, "from_hf_takes_source", False):  # families that read files beside config.json
            overrides = {**overrides, "source": path}
        model = family.from_hf(hf_config, **overrides)
        state = model.state_dict_from_hf(read_state_dict(path))
        load_state_dict_strict(model, state, str(path))
    if dtype is not None or device is not None:
        model = model.to(device=device, dtype=dtype)
    return model.eval()
