"""`python -m zoo.fit --config configs/longvila.yaml` on 4 CPU processes (MM-SP, ring attention, over gloo; DDP,
and FSDP with activation checkpointing) follows the 1-process run of the same config step for step: equal training loss and gradient norm on the first
three steps. And a rank that stops taking part makes the others fail within the process-group timeout."""

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from zoo.sequence_parallel.testing import run_distributed

CONFIG = str(Path(__file__).resolve().parents[2] / "configs" / "longvila.yaml")


def _fit(root: Path, cache: Path, *extra: str) -> list[dict]:
    cmd = [sys.executable, "-m", "zoo.fit", "--config", CONFIG, "--trainer.default_root_dir", str(root),
           "--trainer.max_steps", "3", "--trainer.val_check_interval", "3", "--trainer.log_every_n_steps", "1",
           "--data.init_args.val_per_depth", "1", "--data.init_args.num_frames", "8",
           "--trainer.enable_progress_bar", "false", *extra]
    env = {**os.environ, "ZOO_CACHE": str(cache)}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = list(csv.DictReader(open(root / "logs" / "version_0" / "metrics.csv")))
    return [r for r in rows if r.get("train/loss")]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    # one haystack clip for all the runs compared: encoding the same frames twice with libx264 (PyAV 18, crf 18) gave
    # different clips here, so runs that each wrote their own trained on slightly different pixels (a CI flake)
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def single_process(tmp_path_factory, cache):
    return _fit(tmp_path_factory.mktemp("single"), cache, "--trainer.devices", "1", "--trainer.strategy", "auto",
                "--model.init_args.sequence_parallel", "null")


@pytest.mark.parametrize("strategy", [(), ("--trainer.strategy", "zoo.parallel.FSDPStrategy",
                                           "--trainer.strategy.sp_size", "4",
                                           "--trainer.callbacks+=zoo.parallel.ActivationCheckpointing")],
                         ids=["ddp", "fsdp+checkpointing"])
def test_longvila_on_4_processes_equals_one_process(tmp_path, single_process, cache, strategy):
    import zoo

    sp = _fit(tmp_path / "sp4", cache, *strategy)
    assert len(sp) == len(single_process) == 3
    for a, b in zip(sp, single_process):
        for key in ("train/loss", "train/grad_norm"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-5), (a["step"], key, a[key], b[key])
    # FSDP saves one whole checkpoint, which loads like any other
    assert type(zoo.load_pretrained(tmp_path / "sp4" / "checkpoints" / "last.ckpt")).__name__ == "LongVA"


def _stall_or_wait(rank, world, out):
    if rank == 1:
        time.sleep(8)  # a rank that stops taking part (stuck or dead) for longer than the timeout
        return
    t0 = time.perf_counter()
    try:
        dist.all_reduce(torch.ones(1))
        Path(out).write_text("completed")
    except RuntimeError as e:
        Path(out).write_text(f"{time.perf_counter() - t0:.1f} {e}"[:400])


def test_a_stalled_rank_makes_the_others_fail_within_the_timeout(tmp_path):
    out = tmp_path / "rank0.txt"
    run_distributed(_stall_or_wait, 2, str(out), timeout_s=3)
    elapsed, message = out.read_text().split(" ", 1)
    assert float(elapsed) < 7.5, f"rank 0 waited {elapsed} s with a 3 s timeout"
    assert "timed out" in message.lower() or "timeout" in message.lower(), message
