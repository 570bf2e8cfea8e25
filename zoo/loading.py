"""Load and save models: Hugging Face directories (config.json + safetensors, sharded or not), hub ids, and the
Lightning checkpoints that ``python -m zoo.fit`` writes. Loading is strict and never unpickles arbitrary objects."""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path

import torch
from torch import nn

from .registry import ARCHITECTURES, HF_FAMILIES


class CheckpointError(RuntimeError):
    """A checkpoint that does not match the model it is loaded into (keys or shapes), or is unreadable."""


def _ensure_registered() -> None:
    from . import lm  # noqa: F401  (registers the causal LM architecture and the qwen2/llama/mamba families)
    from .modalities.audio import qwen2_audio  # noqa: F401  (the qwen2_audio family)
    from .modalities.genomic import caduceus  # noqa: F401  (Caduceus checkpoints written by zoo.fit)
    from .modalities.timeseries import timer_xl  # noqa: F401  (Timer-XL, and Timer checkpoints: model_type timer)
    from .modalities.video import longva  # noqa: F401  (LongVA: the llava_qwen family)


def _resolve(path_or_id: str | os.PathLike, revision: str | None) -> Path:
    path = Path(path_or_id).expanduser()
    if path.exists():
        return path
    text = str(path_or_id)
    looks_like_hub_id = text.count("/") == 1 and not text.startswith((".", "/", "~")) and not text.endswith(".ckpt")
    if not looks_like_hub_id:
        raise FileNotFoundError(f"no checkpoint at {text!r} (not a file or directory, and not an 'org/name' hub id)")
    from huggingface_hub import snapshot_download

    return Path(
        snapshot_download(
            text, revision=revision, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.bin"]
        )
    )


def read_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    """All tensors of a Hugging Face directory: (sharded) safetensors, else (sharded) pytorch_model.bin."""
    from safetensors.torch import load_file

    for index_name, loader in (
        ("model.safetensors.index.json", lambda p: load_file(p)),
        ("pytorch_model.bin.index.json", lambda p: torch.load(p, map_location="cpu", weights_only=True)),
    ):
        index = directory / index_name
        if index.exists():
            weight_map = json.loads(index.read_text())["weight_map"]
            state: dict[str, torch.Tensor] = {}
            for shard in sorted(set(weight_map.values())):
                shard_path = directory / shard
                if not shard_path.exists():
                    raise CheckpointError(f"{index} names shard {shard!r}, which is missing from {directory}")
                state.update(loader(shard_path))
            missing = set(weight_map) - set(state)
            if missing:
                raise CheckpointError(f"{index} lists tensors absent from its shards: {sorted(missing)[:10]}")
            return state
    if (directory / "model.safetensors").exists():
        return load_file(directory / "model.safetensors")
    if (directory / "pytorch_model.bin").exists():
        return torch.load(directory / "pytorch_model.bin", map_location="cpu", weights_only=True)
    found = sorted(p.name for p in directory.iterdir())
    raise CheckpointError(f"no weights in {directory}: expected model.safetensors (or shards/.bin); found {found}")


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
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    meta = (ckpt.get("hyper_parameters") or {}).get("zoo_model")
    if not meta:
        raise CheckpointError(f"{path} has no hyper_parameters.zoo_model entry: it was not written by zoo.fit")
    model = ARCHITECTURES.get(meta["arch"]).from_config_dict(meta["config"], **overrides)
    prefix = meta.get("prefix", "model.")
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
    ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return {k: ckpt.get(k) or {} for k in ("hyper_parameters", "datamodule_hyper_parameters")}


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
        from .modalities.genomic.hyenadna import is_hyenadna_directory, load_hyenadna

        if is_hyenadna_directory(path):  # HyenaDNA's own layout: config.json without model_type + weights.ckpt
            model = load_hyenadna(path, **overrides)
            if dtype is not None or device is not None:
                model = model.to(device=device, dtype=dtype)
            return model.eval()
        hf_config = json.loads(config_path.read_text())
        model_type = hf_config.get("model_type")
        if model_type is None:
            raise CheckpointError(f"{config_path} has no model_type")
        family = HF_FAMILIES.get(model_type)
        if "source" in inspect.signature(family.from_hf).parameters:  # families that resolve paths next to it
            overrides = {**overrides, "source": path}
        model = family.from_hf(hf_config, **overrides)
        state = model.state_dict_from_hf(read_state_dict(path))
        load_state_dict_strict(model, state, str(path))
    if dtype is not None or device is not None:
        model = model.to(device=device, dtype=dtype)
    return model.eval()


def _parse_size(size: int | str) -> int:
    if isinstance(size, int):
        return size
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
    s = size.strip().upper()
    for unit, mult in sorted(units.items(), key=lambda kv: -len(kv[0])):
        if s.endswith(unit):
            return int(float(s[: -len(unit)]) * mult)
    return int(s)


def save_hf_directory(model: nn.Module, path, max_shard_size: int | str = "2GB") -> None:
    """Write config.json and safetensors (sharded with an index above ``max_shard_size``) in Hugging Face layout."""
    from safetensors.torch import save_file

    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(model.hf_config(), indent=2) + "\n")
    state = {k: v.detach().contiguous().cpu() for k, v in model.hf_state_dict().items()}
    limit = _parse_size(max_shard_size)
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for k, v in state.items():
        nbytes = v.numel() * v.element_size()
        if shards[-1] and size + nbytes > limit:
            shards.append({})
            size = 0
        shards[-1][k] = v
        size += nbytes
    for stale in directory.glob("model*.safetensors"):
        stale.unlink()
    if len(shards) == 1:
        save_file(shards[0], directory / "model.safetensors", metadata={"format": "pt"})
        (directory / "model.safetensors.index.json").unlink(missing_ok=True)
        return
    weight_map = {}
    for i, shard in enumerate(shards, 1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, directory / name, metadata={"format": "pt"})
        weight_map.update({k: name for k in shard})
    total = sum(v.numel() * v.element_size() for v in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
