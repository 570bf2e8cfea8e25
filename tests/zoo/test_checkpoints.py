"""Checkpoints as files: ``save_pretrained`` never deletes or half-writes a file it does not own; every damaged,
unsafe or missing checkpoint is one ``CheckpointError`` line naming the file and the problem (never torch's advice to
retry with ``weights_only=False``); a local-looking path that does not exist never goes to the Hub."""

from __future__ import annotations

import json
import logging
import pickle

import pytest
import torch
from safetensors.torch import load_file, save_file

import zoo
from zoo.checkpoints import CheckpointError, resume_checkpoint, torch_load
from zoo.lm import CausalLM, LMConfig
from zoo.loading import CheckpointNotFoundError, looks_local


def tiny_lm(seed: int = 0) -> CausalLM:
    torch.manual_seed(seed)
    return CausalLM(LMConfig(vocab_size=64, d_model=32, n_layer=2, n_head=2, d_ff=64, family="qwen2",
                              qkv_bias=True)).eval()


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------- save_pretrained owns only its own files


def test_save_pretrained_keeps_every_file_it_did_not_write(tmp_path, caplog):
    foreign = {"model_ema.safetensors": {"ema": torch.ones(3)}, "model-finetuned.safetensors": {"w": torch.zeros(2)},
               "model-00009-of-00009.safetensors": {"x": torch.ones(1)}}  # shard-named, but no index names it
    for name, tensors in foreign.items():
        save_file(tensors, tmp_path / name)
    (tmp_path / "tokenizer.json").write_text("{}")
    before = {name: (tmp_path / name).read_bytes() for name in [*foreign, "tokenizer.json"]}

    model = tiny_lm(0)
    with caplog.at_level(logging.WARNING, logger="zoo.loading"):
        model.save_pretrained(tmp_path, max_shard_size="20KB")  # sharded, with an index
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1 and all((tmp_path / s).exists() for s in shards)
    assert "model-00009-of-00009.safetensors" in caplog.text  # reported, left in place

    smaller = tiny_lm(1)
    smaller.save_pretrained(tmp_path)  # one file now: the previous index's shards go, nothing else
    assert not (tmp_path / "model.safetensors.index.json").exists()
    assert not any((tmp_path / s).exists() for s in shards)
    assert same_weights(zoo.load_pretrained(tmp_path), smaller)

    tiny_lm(2).save_pretrained(tmp_path, max_shard_size="20KB")  # sharded again: the single file would win
    assert not (tmp_path / "model.safetensors").exists()
    assert same_weights(zoo.load_pretrained(tmp_path), tiny_lm(2))
    for name, data in before.items():
        assert (tmp_path / name).read_bytes() == data, f"{name} was changed"
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file is left behind"


def test_transformers_loads_the_folder_after_switching_layouts(tmp_path):
    from transformers import Qwen2ForCausalLM

    tiny_lm(0).save_pretrained(tmp_path, max_shard_size="20KB")
    model = tiny_lm(1)
    model.save_pretrained(tmp_path)  # a stale index would make transformers read the old shards
    ids = torch.randint(0, 64, (1, 12))
    with torch.no_grad():
        hf = Qwen2ForCausalLM.from_pretrained(tmp_path).eval()
        torch.testing.assert_close(hf(ids).logits, model(ids).logits, atol=1e-4, rtol=1e-4)


def test_an_interrupted_save_leaves_the_previous_weights_intact(tmp_path, monkeypatch):
    import safetensors.torch

    first = tiny_lm(0)
    first.save_pretrained(tmp_path)
    before = (tmp_path / "model.safetensors").read_bytes()

    def dies_half_way(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\0" * 100)
        raise KeyboardInterrupt  # a Ctrl-C in the middle of writing

    monkeypatch.setattr(safetensors.torch, "save_file", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        tiny_lm(1).save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]


def test_save_pretrained_into_a_file_is_refused(tmp_path):
    (tmp_path / "out").write_text("mine")
    with pytest.raises(NotADirectoryError, match="out: save_pretrained writes a directory"):
        tiny_lm().save_pretrained(tmp_path / "out")
    assert (tmp_path / "out").read_text() == "mine"


# ---------------------------------------------------------------- damaged and unsafe files: one line, the file named


class Pickled:  # anything that is not a tensor or a plain container
    pass


def _zoo_ckpt(path, model):
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "global_step": 3,
                "hyper_parameters": {"zoo_model": {"arch": CausalLM.arch, "config": model.config.to_dict(),
                                                   "prefix": "model."}}}, path)
    return path


def _truncate(path, keep: float = 0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def _damaged(tmp_path):
    """(what, path, expected message) for each kind of damage, in the layouts load_pretrained reads."""
    model = tiny_lm()
    cases = []
    cases.append(("truncated .ckpt", _truncate(_zoo_ckpt(tmp_path / "trunc.ckpt", model)),
                  r"trunc.ckpt: truncated: the zip archive ends without its central directory after [\d,]+ bytes"))
    cases.append(("empty .ckpt", tmp_path / "empty.ckpt", r"empty.ckpt: the file is empty"))
    (tmp_path / "empty.ckpt").write_bytes(b"")
    torch.save({"state_dict": {}, "hook": Pickled()}, tmp_path / "unsafe.ckpt")
    cases.append(("pickled object", tmp_path / "unsafe.ckpt",
                  r"unsafe.ckpt: it pickles an object of type .*Pickled, which the safe loader \(weights_only=True\)"))
    (tmp_path / "text.ckpt").write_text("not a checkpoint\n")
    cases.append(("not a checkpoint", tmp_path / "text.ckpt", r"text.ckpt: not a torch checkpoint"))
    legacy = tmp_path / "legacy.ckpt"
    torch.save({"state_dict": model.state_dict()}, legacy, _use_new_zipfile_serialization=False)
    cases.append(("truncated legacy .ckpt", _truncate(legacy), r"legacy.ckpt: truncated or damaged legacy torch file"))

    hf = tmp_path / "hf_trunc"
    model.save_pretrained(hf)
    _truncate(hf / "model.safetensors")
    cases.append(("truncated safetensors", hf, r"hf_trunc/model.safetensors: damaged safetensors file \("))

    shards = tmp_path / "bin_shards"
    shards.mkdir()
    (shards / "config.json").write_text(json.dumps(model.hf_config()))
    state = model.hf_state_dict()
    keys = list(state)
    half = len(keys) // 2
    torch.save({k: state[k] for k in keys[:half]}, shards / "pytorch_model-00001-of-00002.bin")
    torch.save({k: state[k] for k in keys[half:]}, shards / "pytorch_model-00002-of-00002.bin")
    (shards / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": {
        k: f"pytorch_model-0000{1 if i < half else 2}-of-00002.bin" for i, k in enumerate(keys)}}))
    _truncate(shards / "pytorch_model-00002-of-00002.bin")
    cases.append(("truncated .bin shard", shards, r"bin_shards/pytorch_model-00002-of-00002.bin: truncated"))

    bad_index = tmp_path / "bad_index"
    model.save_pretrained(bad_index, max_shard_size="20KB")
    (bad_index / "model.safetensors.index.json").write_text("{not json")
    cases.append(("unreadable index", bad_index, r"model.safetensors.index.json: not a shard index"))

    bad_config = tmp_path / "bad_config"
    model.save_pretrained(bad_config)
    (bad_config / "config.json").write_text('{"model_type": "qwen2",')
    cases.append(("config.json not JSON", bad_config, r"bad_config/config.json: not valid JSON"))
    return cases


def test_every_damaged_or_unsafe_checkpoint_is_one_line_naming_the_file(tmp_path):
    for what, path, message in _damaged(tmp_path):
        with pytest.raises(CheckpointError, match=message) as err:
            zoo.load_pretrained(path)
        text = str(err.value)
        assert "\n" not in text, f"{what}: {text!r}"
        assert "weights_only=False" not in text and "Re-running" not in text, f"{what} relays torch's advice"
        assert err.value.__cause__ is None or isinstance(err.value.__cause__, CheckpointError), what


def test_the_safe_loader_never_runs_a_pickle(tmp_path):
    class Boom:
        def __reduce__(self):
            return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))

    path = tmp_path / "evil.ckpt"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": Boom()}, f)  # a legacy-format pickle that would execute on load
    with pytest.raises(CheckpointError, match="evil.ckpt"):
        torch_load(path)
    assert not (tmp_path / "PWNED").exists()


# ---------------------------------------------------------------- local paths never go to the Hub


@pytest.fixture
def no_hub(monkeypatch):
    import huggingface_hub

    def called(*args, **kwargs):
        raise AssertionError(f"the Hub was asked for {args}")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", called)


def test_a_missing_local_path_is_named_and_never_sent_to_the_hub(tmp_path, monkeypatch, no_hub):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "longva" / "checkpoints").mkdir(parents=True)
    with pytest.raises(CheckpointNotFoundError, match=r"^runs/longvaa: no such file or directory \(did you mean "
                                                      r"runs/longva\?\)$"):
        zoo.load_pretrained("runs/longvaa")
    with pytest.raises(CheckpointNotFoundError, match=r"^my_model: no such file or directory"):
        zoo.load_pretrained("my_model")
    with pytest.raises(CheckpointNotFoundError, match=r"^org/model.ckpt: no such file or directory"):
        zoo.load_pretrained("org/model.ckpt")
    for local in ("runs/longvaa", "./org/name", "~/m", "a/b/c", "model.safetensors", "my_model", "org/name.ckpt"):
        assert looks_local(local), local
    assert not looks_local("lmms-lab/LongVA-7B")


def test_hub_ids_offline_fail_fast_with_the_reason(tmp_path, monkeypatch):
    import time

    from huggingface_hub import constants

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    start = time.monotonic()
    with pytest.raises(CheckpointNotFoundError, match=r"^some-org/some-model: not a local path, and HF_HUB_OFFLINE is "
                                                      r"set and it is not in the local Hub cache$"):
        zoo.load_pretrained("some-org/some-model")
    assert time.monotonic() - start < 5


def test_hub_requests_have_a_short_timeout(tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    seen = {}

    def unreachable(repo_id, **kwargs):
        seen.update(kwargs)
        raise LocalEntryNotFoundError("Got: ConnectError: [Errno -2] Name or service not known")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", unreachable)
    with pytest.raises(CheckpointNotFoundError, match=r"some-org/some-model: not a local path, and the Hub could not "
                                                      r"be reached \(Got: ConnectError"):
        zoo.load_pretrained("some-org/some-model")
    assert seen["etag_timeout"] <= 5


# ---------------------------------------------------------------- resuming: damaged last.ckpt


def _lightning_ckpt(path, step: int):
    torch.save({"state_dict": {"w": torch.ones(2)}, "global_step": step}, path)
    return path


def test_a_damaged_last_checkpoint_gives_way_to_the_newest_intact_one(tmp_path, caplog):
    _lightning_ckpt(tmp_path / "latest-step=100.ckpt", 100)
    _lightning_ckpt(tmp_path / "latest-step=200.ckpt", 200)
    _lightning_ckpt(tmp_path / "best-step=100.ckpt", 100)
    _truncate(_lightning_ckpt(tmp_path / "last.ckpt", 300))
    with caplog.at_level(logging.WARNING, logger="zoo.checkpoints"):
        assert resume_checkpoint("last", tmp_path) == tmp_path / "latest-step=200.ckpt"
    assert "last.ckpt: truncated" in caplog.text and "latest-step=200.ckpt (step 200)" in caplog.text
    with pytest.raises(CheckpointError, match=r"--ckpt_path: .*last.ckpt: truncated.*; intact checkpoints beside it: "
                                              r"latest-step=200.ckpt \(step 200\)"):
        resume_checkpoint(str(tmp_path / "last.ckpt"), tmp_path)  # an explicit path is never swapped
    for p in tmp_path.glob("latest*"):
        p.unlink()
    (tmp_path / "best-step=100.ckpt").unlink()
    with pytest.raises(CheckpointError, match="no intact checkpoint lies beside it"):
        resume_checkpoint("last", tmp_path)
    with pytest.raises(CheckpointError, match="holds no last.ckpt to resume from"):
        resume_checkpoint("last", tmp_path / "nothing")
