"""A run interrupted after a checkpoint and resumed with ``--ckpt_path last`` trains on exactly the batches, and ends
with exactly the weights (bit for bit), of a run that never stopped — for the endless synthetic streams (text passkey,
V-NIAH, DNA passkey), the map-style datasets across an epoch boundary (FASTA windows in order, proteins shuffled,
time-series windows shuffled, labelled DNA records shuffled) and the model-side randomness (Timer-XL's dropout,
Caduceus/LC-PLM's masks, V2PE's δ, reverse-complement augmentation when fine-tuning).

Each scenario runs ``zoo.fit`` three times on a tiny config: uninterrupted; interrupted at the start of step K (a
crash after the checkpoint of step C < K); resumed from ``last``. A probe callback logs a digest of every training
batch with its step. One scenario is killed with SIGKILL in a subprocess, as a user's run would be.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from zoo.fit import main as fit_main

ROOT = Path(__file__).resolve().parents[2]
FASTA = ROOT / "tests" / "data" / "genomic" / "chr17.hg19.part.fa"

PROBE = textwrap.dedent('''
    """Test probe: logs a digest of every training batch; crashes (or SIGKILLs itself) at the start of a step."""
    import hashlib, json, os, signal
    import lightning as L
    import torch


    class ProbeCrash(RuntimeError):
        pass


    def digest(obj) -> str:
        h = hashlib.sha1()

        def walk(x):
            if isinstance(x, torch.Tensor):
                h.update(x.detach().cpu().contiguous().numpy().tobytes())
            elif isinstance(x, dict):
                for k in sorted(x):
                    h.update(k.encode())
                    walk(x[k])
            elif isinstance(x, (list, tuple)):
                for v in x:
                    walk(v)
            else:
                h.update(repr(x).encode())

        walk(obj)
        return h.hexdigest()[:16]


    class Probe(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            kill = os.environ.get("PROBE_KILL_AT_STEP")
            if kill and trainer.global_step == int(kill):
                if os.environ.get("PROBE_SIGKILL"):
                    os.kill(os.getpid(), signal.SIGKILL)
                raise ProbeCrash(f"interrupted at step {kill}")
            with open(os.environ["PROBE_LOG"], "a") as f:
                f.write(json.dumps({"step": trainer.global_step, "epoch": trainer.current_epoch,
                                    "batch_idx": batch_idx, "batch": digest(batch)}) + "\\n")
''')


def _checkpointing() -> list[dict]:
    return [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
             "init_args": {"save_last": True, "filename": "latest-{step}", "save_top_k": -1}},
            {"class_path": "probe.Probe"}]


def _trainer(max_steps: int, val_every: int | None, **extra) -> dict:
    t = {"accelerator": "cpu", "max_steps": max_steps, "log_every_n_steps": 1, "enable_model_summary": False,
         "num_sanity_val_steps": 0, "callbacks": _checkpointing(), "logger": False}
    if val_every is not None:
        t.update(val_check_interval=val_every, check_val_every_n_epoch=None)
    t.update(extra)
    return t


def _lm_module(class_path: str, vocab_size: int, max_position_embeddings: int) -> dict:
    """A one-layer, 32-wide causal LM (text or DNA) under a zoo LightningModule."""
    return {"class_path": class_path, "init_args": {
        "model": {"vocab_size": vocab_size, "d_model": 32, "n_layer": 1, "n_head": 2, "d_ff": 64,
                  "max_position_embeddings": max_position_embeddings}, "warmup_steps": 2}}


def text_stream():
    return {"trainer": _trainer(12, 4),
            "model": _lm_module("zoo.modalities.text.LMModule", 260, 160),
            "data": {"class_path": "zoo.modalities.text.PasskeyDataModule", "init_args": {
                "seq_len": 128, "min_seq_len": 110, "batch_size": 4, "val_per_depth": 1}}}


def dna_stream():
    return {"trainer": _trainer(12, 4),
            "model": _lm_module("zoo.modalities.genomic.GenomicLMModule", 16, 128),
            "data": {"class_path": "zoo.modalities.genomic.DnaPasskeyDataModule", "init_args": {
                "seq_len": 96, "min_seq_len": 64, "batch_size": 4, "val_per_depth": 1}}}


def video_stream():
    return {"trainer": _trainer(8, 3),
            "model": {"class_path": "zoo.modalities.video.LongVAModule", "init_args": {
                "model": {"vision": {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                                     "num_attention_heads": 2, "image_size": 16, "patch_size": 8},
                          "lm": {"vocab_size": 260, "d_model": 32, "n_layer": 1, "n_head": 2, "d_ff": 64,
                                 "qkv_bias": True, "max_position_embeddings": 128, "bos_token_id": 256,
                                 "eos_token_id": 257, "pad_token_id": 258},
                          "spatial_pool_stride": 2, "v2pe_delta": 0.25},
                "v2pe_train_deltas": [1.0, 0.5, 0.25], "warmup_steps": 2}},
            "data": {"class_path": "zoo.modalities.video.VNIAHDataModule", "init_args": {
                "image_size": 16, "num_frames": 3, "batch_size": 3, "val_per_depth": 1}}}


def fasta_windows_in_order():
    # 24 windows per epoch in batches of 4: 6 batches an epoch, validation (and a checkpoint) every 3
    return {"trainer": _trainer(16, None, val_check_interval=3, check_val_every_n_epoch=1),
            "model": _lm_module("zoo.modalities.genomic.GenomicLMModule", 16, 64),
            "data": {"class_path": "zoo.modalities.genomic.FastaDataModule", "init_args": {
                "path": str(FASTA), "window": 64, "batch_size": 4, "samples_per_epoch": 24}}}


def proteins_shuffled_with_masks():
    # masked LM: the mask generator is module state (rng_attributes); records shuffled per epoch
    return {"trainer": _trainer(14, None, val_check_interval=2, check_val_every_n_epoch=1),
            "model": {"class_path": "zoo.modalities.genomic.GenomicMLMModule", "init_args": {
                "tokenizer": "protein", "model": {"vocab_size": 32, "d_model": 16, "n_layer": 1, "rcps": False,
                                                  "mixer": "bimamba", "mixer_kwargs": {"d_state": 4, "expand": 2}},
                "warmup_steps": 2}},
            "data": {"class_path": "zoo.modalities.genomic.ProteinDataModule", "init_args": {
                "max_len": 32, "batch_size": 4, "n_synthetic": 40}}}


def series_shuffled_with_dropout(csv: Path):
    # Timer-XL with dropout 0.1 (torch's global generator) on shuffled windows, over epochs
    return {"trainer": _trainer(14, None, val_check_interval=2, check_val_every_n_epoch=1),
            "model": {"class_path": "zoo.modalities.timeseries.ForecastModule", "init_args": {
                "model": {"patch_len": 8, "d_model": 16, "d_ff": 32, "n_layer": 1, "n_head": 2, "dropout": 0.1,
                          "channel_independent": True}, "warmup_steps": 2}},
            "data": {"class_path": "zoo.modalities.timeseries.ForecastDataModule", "init_args": {
                "path": str(csv), "lookback": 16, "patch_len": 8, "split": "ratio", "batch_size": 8,
                "val_batch_size": 64}}}


def labelled_shuffled_with_rc_augment(root: Path):
    # fine-tuning a from-scratch DNA classifier with reverse-complement augmentation (a module generator) on shuffled
    # GenomicBenchmarks-layout records: 22 training records in batches of 4, 6 batches an epoch
    rng = torch.Generator().manual_seed(0)
    for i in range(24):
        folder = root / "train" / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        ids = torch.randint(0, 4, (int(torch.randint(8, 16, (1,), generator=rng)),), generator=rng)
        (folder / f"{i}.txt").write_text("".join("ACGT"[j] for j in ids))
    backbone = {"arch": "causal_lm", "config": {"vocab_size": 16, "d_model": 16, "n_layer": 1, "n_head": 2,
                                                "d_ff": 32}}
    return {"trainer": _trainer(14, None, val_check_interval=2, check_val_every_n_epoch=1),
            "model": {"class_path": "zoo.modalities.genomic.SequenceTaskModule", "init_args": {
                "backbone": backbone, "rc_augment": True, "warmup_steps": 2}},
            "data": {"class_path": "zoo.modalities.genomic.LabelledDataModule", "init_args": {
                "path": str(root), "max_len": 16, "batch_size": 4}}}


def _series_csv(path: Path, rows: int = 120) -> Path:
    t = torch.arange(rows, dtype=torch.float64)
    lines = ["date,a,b"] + [f"2020-01-{1 + i // 24:02d} {i % 24:02d}:00:00,{torch.sin(v / 5):.6f},{v / 50:.6f}"
                            for i, v in enumerate(t)]
    path.write_text("\n".join(lines) + "\n")
    return path


class Runner:
    def __init__(self, tmp_path: Path, monkeypatch, config: dict):
        self.tmp = tmp_path
        (tmp_path / "probe.py").write_text(PROBE)
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.setenv("ZOO_CACHE", str(tmp_path.parent / "resume_cache"))  # one haystack for the module
        self.monkeypatch = monkeypatch
        self.config = tmp_path / "config.yaml"
        self.config.write_text(yaml.safe_dump({"seed_everything": 0, **config}))

    def fit(self, name: str, *extra: str, kill_at: int | None = None) -> list[dict]:
        log = self.tmp / f"{name}.jsonl"
        self.monkeypatch.setenv("PROBE_LOG", str(log))
        if kill_at is None:
            self.monkeypatch.delenv("PROBE_KILL_AT_STEP", raising=False)
        else:
            self.monkeypatch.setenv("PROBE_KILL_AT_STEP", str(kill_at))
        args = ["--config", str(self.config), "--trainer.default_root_dir", str(self.tmp / name.split("+")[0]),
                *extra]
        if kill_at is None:
            fit_main(args)
        else:
            with pytest.raises(Exception, match=f"interrupted at step {kill_at}"):
                fit_main(args)
        torch.manual_seed(12345)  # nothing of this process's state may leak into the next run
        return [json.loads(line) for line in log.read_text().splitlines()]

    def weights(self, run: str) -> dict:
        ckpt = torch.load(self.tmp / run / "checkpoints" / "last.ckpt", weights_only=True)
        return ckpt["state_dict"]


SCENARIOS = {
    "text_stream": (text_stream, 6, 4),
    "dna_stream": (dna_stream, 7, 4),
    "video_stream": (video_stream, 5, 3),
    "fasta_mid_epoch": (fasta_windows_in_order, 11, 9),
    "fasta_epoch_boundary": (fasta_windows_in_order, 8, 6),
    "proteins_epoch_boundary": (proteins_shuffled_with_masks, 11, 10),
    "proteins_mid_epoch": (proteins_shuffled_with_masks, 13, 12),
    "series_mid_epoch": (series_shuffled_with_dropout, 11, 10),
    "labelled_mid_epoch": (labelled_shuffled_with_rc_augment, 11, 10),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_resumed_run_equals_uninterrupted_run(name, tmp_path, monkeypatch):
    if name == "video_stream":
        pytest.importorskip("av", reason="PyAV writes the synthetic haystack")
    build, kill_at, checkpoint_step = SCENARIOS[name]
    if name.startswith("series"):
        config = build(_series_csv(tmp_path / "series.csv"))
    elif name.startswith("labelled"):
        config = build(tmp_path / "labelled")
    else:
        config = build()
    run = Runner(tmp_path, monkeypatch, config)
    full = run.fit("full")
    first = run.fit("split", kill_at=kill_at)
    assert [r["step"] for r in first] == list(range(kill_at))
    resumed = run.fit("split+resume", "--ckpt_path", "last")
    assert resumed[0]["step"] == checkpoint_step, "resumed from the last checkpoint before the interruption"
    if name.endswith("mid_epoch"):
        assert resumed[0]["batch_idx"] > 0, "the checkpoint lies inside an epoch"
    if name.endswith("epoch_boundary"):
        assert resumed[0]["batch_idx"] == 0 and resumed[0]["epoch"] > 0, "the checkpoint ends an epoch"
    by_step = {r["step"]: r for r in full}
    assert [r["step"] for r in resumed] == [r["step"] for r in full if r["step"] >= checkpoint_step]
    for r in resumed:
        expected = by_step[r["step"]]
        assert (r["epoch"], r["batch_idx"], r["batch"]) == (expected["epoch"], expected["batch_idx"],
                                                            expected["batch"]), f"step {r['step']}"
    a, b = run.weights("full"), run.weights("split")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after resuming"


def test_sigkill_after_a_checkpoint_then_resume_from_the_command_line(tmp_path):
    """The real thing: ``python -m zoo.fit`` killed with SIGKILL, resumed with ``--ckpt_path last``."""
    (tmp_path / "probe.py").write_text(PROBE)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"seed_everything": 0, **text_stream()}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()

    def fit(name: str, root: str, *extra: str, kill_at: int | None = None) -> subprocess.CompletedProcess:
        run_env = {**env, "PROBE_LOG": str(tmp_path / f"{name}.jsonl")}
        if kill_at is not None:
            run_env.update(PROBE_KILL_AT_STEP=str(kill_at), PROBE_SIGKILL="1")
        return subprocess.run([sys.executable, "-m", "zoo.fit", "--config", str(config),
                               "--trainer.default_root_dir", str(tmp_path / root), *extra],
                              env=run_env, capture_output=True, text=True, timeout=300)

    assert fit("full", "full").returncode == 0
    killed = fit("split", "split", kill_at=6)
    assert killed.returncode == -signal.SIGKILL
    resumed = fit("resume", "split", "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    log = [json.loads(x) for x in (tmp_path / "resume.jsonl").read_text().splitlines()]
    full = {r["step"]: r["batch"] for r in map(json.loads, (tmp_path / "full.jsonl").read_text().splitlines())}
    assert log[0]["step"] == 4 and all(full[r["step"]] == r["batch"] for r in log)
    a = torch.load(tmp_path / "full" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "split" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert list((tmp_path / "tmp").iterdir()) == [], "nothing may be staged in $TMPDIR"
