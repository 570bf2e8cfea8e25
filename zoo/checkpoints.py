"""Reading checkpoint files safely, and telling a damaged file from an intact one.

Every read goes through :func:`torch_load` (``weights_only=True``, always) or :func:`safetensors_load`; whatever is
wrong with the file — missing, empty, truncated by a kill during a save, not a checkpoint at all, or holding pickled
objects the safe loader refuses — comes out as one :class:`CheckpointError` line that names the file and the problem.
Torch's advice to retry with ``weights_only=False`` is never relayed: that would run the file's code.

:func:`resume_checkpoint` resolves ``zoo.fit --ckpt_path`` (``last`` or a path): a damaged ``last.ckpt`` is
replaced by the newest intact checkpoint beside it, with a log line that says so.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import UserInputError

log = logging.getLogger(__name__)
ZIP_MAGIC = b"PK\x03\x04"


# what zoo.fit's checkpoints carry so that load_pretrained rebuilds the network from the file alone: a
# hyper_parameters entry {"arch", "config", "prefix"[, "tokenizer"]} (zoo.module writes it), the network's keys
# starting with the prefix (it is the module's ``self.model``)
ZOO_MODEL_KEY = "zoo_model"
MODEL_PREFIX = "model."


class CheckpointError(UserInputError, RuntimeError):
    """A checkpoint that does not match the model it is loaded into (keys or shapes), or is unreadable."""


def _size(path: Path) -> str:
    return f"{path.stat().st_size:,} bytes"


def write_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` to a hidden file beside ``target``, flushed to disk, then renamed over ``target``: a kill during
    the write leaves the previous ``target`` intact and nothing outside its folder (the temporary file a killed
    write left there is removed by the next one). Checkpoints and ``save_pretrained``'s files are written this way."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _damage(path: Path, head: bytes, error: Exception) -> str:
    """What is wrong with a file torch.load failed on (``head``: its first 4 bytes), in words."""
    if head == ZIP_MAGIC and not zipfile.is_zipfile(path):
        return (f"truncated: the zip archive ends without its central directory after {_size(path)} "
                "(was the save interrupted?)")
    if head == ZIP_MAGIC:
        return f"damaged zip archive ({_first_sentence(error)})"
    if head[:1] == b"\x80":  # a pickle protocol header: torch's legacy (pre-zip) format
        return f"truncated or damaged legacy torch file after {_size(path)} ({_first_sentence(error)})"
    return f"not a torch checkpoint (it starts with {head!r})"


def _first_sentence(error: Exception) -> str:
    text = " ".join(str(error).split())
    return re.split(r"(?<=[.:])\s", text, maxsplit=1)[0].rstrip(".:") or type(error).__name__


def _refusal(error: Exception) -> str:
    """The object the safe unpickler refused, from torch's long message (whose advice is dropped)."""
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(error))
    if found:
        return (f"it pickles an object of type {found.group(1)}, which the safe loader (weights_only=True) refuses; "
                "only tensors and plain containers are loaded. Re-save the weights as safetensors or a plain "
                "state_dict")
    detail = re.search(r"WeightsUnpickler error: ([^\n]+)", str(error))
    return (f"the safe loader (weights_only=True) refuses it: {detail.group(1).strip() if detail else 'unsafe pickle'}; "
            "only tensors and plain containers are loaded")


def torch_load(path: str | os.PathLike, *, mmap: bool = False, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``; a missing, empty, damaged or unsafe file raises
    :class:`CheckpointError` naming it. ``mmap`` memory-maps zip-format files (legacy files are read whole)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file" if not path.exists() else
                              f"{path}: is a directory, not a checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty (was the save interrupted?)")
    with open(path, "rb") as f:
        head = f.read(4)
    is_zip = head == ZIP_MAGIC
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap and is_zip)
    except pickle.UnpicklingError as e:
        if not is_zip and head[:1] != b"\x80":  # neither torch's zip format nor a pickle (protocol ≥ 2)
            raise CheckpointError(f"{path}: not a torch checkpoint (it starts with {head!r})") from None
        if "Weights only load failed" in str(e) and "Unsupported" in str(e):
            raise CheckpointError(f"{path}: {_refusal(e)}") from None
        raise CheckpointError(f"{path}: {_damage(path, head, e)}") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, AttributeError) as e:
        raise CheckpointError(f"{path}: {_damage(path, head, e)}") from None


def safetensors_load(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """``safetensors.torch.load_file``; a missing, truncated or damaged file raises :class:`CheckpointError`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such safetensors file")
    try:
        return load_file(path)
    except SafetensorError as e:
        what = str(e).replace("Error while deserializing header: ", "")
        hint = " — truncated?" if "not fully covered" in what or "header length" in what else ""
        raise CheckpointError(f"{path}: damaged safetensors file ({what}{hint}; {_size(path)})") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read it ({e.strerror or e})") from None


def lightning_checkpoint(path: str | os.PathLike, *, mmap: bool = False) -> dict:
    """A Lightning checkpoint's dict (it must hold a ``state_dict``), read with :func:`torch_load`."""
    ckpt = torch_load(path, mmap=mmap)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no state_dict)")
    return ckpt


def checkpoint_step(path: str | os.PathLike) -> int:
    """The ``global_step`` of a ``zoo.fit`` checkpoint, read memory-mapped; raises :class:`CheckpointError` for a
    damaged file (the check :func:`resume_checkpoint` makes before resuming)."""
    return int(lightning_checkpoint(path, mmap=True).get("global_step", 0))


def intact_checkpoints(directory: Path, exclude: Path | None = None) -> list[tuple[int, Path]]:
    """(step, path) of every readable ``*.ckpt`` in ``directory``, the highest step first (newest file on ties)."""
    found = []
    for path in directory.glob("*.ckpt"):
        if exclude is not None and path.resolve() == exclude.resolve():
            continue
        try:
            found.append((checkpoint_step(path), path.stat().st_mtime, path))
        except CheckpointError:
            continue
    return [(step, path) for step, _, path in sorted(found, key=lambda t: (t[0], t[1]), reverse=True)]


def _listing(candidates: list[tuple[int, Path]]) -> str:
    return ", ".join(f"{p.name} (step {s})" for s, p in candidates[:5])


def last_checkpoint(directory: Path) -> Path | None:
    """What Lightning's ``ckpt_path="last"`` means: the newest ``last*.ckpt`` that ModelCheckpoint wrote."""
    candidates = sorted(directory.glob("last*.ckpt"), key=lambda p: p.stat().st_mtime)
    return candidates[-1] if candidates else None


def resume_checkpoint(ckpt_path: str, checkpoint_dir: Path) -> Path:
    """The checkpoint ``zoo.fit --ckpt_path`` resumes from, checked to be readable.

    ``last``: ``checkpoint_dir``'s last.ckpt; when it is damaged, the newest intact checkpoint beside it is taken
    and a warning names both. A path: that file, which must be intact (the error lists intact ones beside it)."""
    if ckpt_path == "last":
        last = last_checkpoint(checkpoint_dir) if checkpoint_dir.is_dir() else None
        if last is None:
            raise CheckpointError(f"--ckpt_path last: {checkpoint_dir} holds no last.ckpt to resume from; leave out "
                                  "--ckpt_path to start a new run")
        try:
            checkpoint_step(last)
            return last
        except CheckpointError as e:
            intact = intact_checkpoints(checkpoint_dir, exclude=last)
            if not intact:
                raise CheckpointError(f"{e}; and no intact checkpoint lies beside it to resume from") from None
            step, path = intact[0]
            log.warning("%s; resuming from the newest intact checkpoint beside it instead: %s (step %d)", e,
                        path, step)
            return path
    path = Path(ckpt_path)
    try:
        checkpoint_step(path)
    except CheckpointError as e:
        intact = intact_checkpoints(path.parent, exclude=path) if path.parent.is_dir() else []
        beside = f"; intact checkpoints beside it: {_listing(intact)}" if intact else ""
        raise CheckpointError(f"--ckpt_path: {e}{beside}") from None
    return path


# ---- writing the Hugging Face layout (every family's save_pretrained) ------------------------------------------


def read_index(index: Path) -> dict[str, str]:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{index}: not a shard index with a weight_map ({type(e).__name__}: {e})") from None
    if not isinstance(weight_map, dict):
        raise CheckpointError(f"{index}: weight_map is a {type(weight_map).__name__}, not a name → shard mapping")
    return weight_map


def _parse_size(size: int | str) -> int:
    if isinstance(size, int):
        return size
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
    s = size.strip().upper()
    for unit, mult in sorted(units.items(), key=lambda kv: -len(kv[0])):
        if s.endswith(unit):
            return int(float(s[: -len(unit)]) * mult)
    return int(s)


SHARD_NAME = re.compile(r"model-\d{5}-of-\d{5}\.safetensors")


def save_hf_directory(model: nn.Module, path, max_shard_size: int | str = "2GB") -> None:
    """Write config.json and safetensors (sharded with an index above ``max_shard_size``) in Hugging Face layout.

    Each file is written beside its target and renamed into place (the index last). Only this layout's own files
    are replaced or removed: ``config.json``, ``model.safetensors``, the index and the shards the folder's previous
    index names. Every other file stays as it is: ``model_ema.safetensors``, ``model-finetuned.safetensors``, a
    tokenizer, and shard-named files that no index names (those are reported with a warning).
    """
    from safetensors.torch import save_file

    directory = Path(path)
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"{directory}: save_pretrained writes a directory, and this is a file")
    config = json.dumps(model.hf_config(), indent=2) + "\n"  # first: a model without this layout writes nothing
    directory.mkdir(parents=True, exist_ok=True)
    index_path = directory / "model.safetensors.index.json"
    previous_shards = set(read_index(index_path).values()) if index_path.exists() else set()
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
    names = (["model.safetensors"] if len(shards) == 1 else
             [f"model-{i:05d}-of-{len(shards):05d}.safetensors" for i in range(1, len(shards) + 1)])
    for name, shard in zip(names, shards):
        write_atomically(directory / name, lambda tmp, shard=shard: save_file(shard, tmp, metadata={"format": "pt"}))
    write_atomically(directory / "config.json", lambda tmp: tmp.write_text(config))
    if len(shards) == 1:
        index_path.unlink(missing_ok=True)
    else:
        total = sum(v.numel() * v.element_size() for v in state.values())
        index = {"metadata": {"total_size": total},
                 "weight_map": {k: name for name, shard in zip(names, shards) for k in shard}}
        write_atomically(index_path, lambda tmp: tmp.write_text(json.dumps(index, indent=2) + "\n"))
        # the single-file weights of an earlier save: loaders (transformers too) would prefer it to the new index
        (directory / "model.safetensors").unlink(missing_ok=True)
    for stale in sorted(previous_shards - set(names)):
        (directory / stale).unlink(missing_ok=True)
    strays = sorted(p.name for p in directory.iterdir() if SHARD_NAME.fullmatch(p.name) and p.name not in names
                    and p.name not in previous_shards)
    if strays:
        log.warning("%s: left %s in place: shard-named files that no index of this folder names", directory,
                    ", ".join(strays))
