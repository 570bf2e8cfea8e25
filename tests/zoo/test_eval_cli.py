"""``python -m zoo.eval`` refuses what cannot work in one line: a missing or damaged --ckpt, a checkpoint of the wrong
kind of model for the task (naming the task that fits it), and nonsense numbers as argument errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from zoo.eval import main as eval_main

ROOT = Path(__file__).resolve().parents[2]


def _video_checkpoint(path: Path) -> Path:
    from zoo.modalities.video import LongVAModule
    from zoo.modalities.video.longva import LongVAConfig

    config = LongVAConfig(vision={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                                  "num_attention_heads": 2, "image_size": 16, "patch_size": 8},
                          lm={"vocab_size": 260, "d_model": 32, "n_layer": 1, "n_head": 2, "d_ff": 64,
                              "qkv_bias": True, "max_position_embeddings": 64})
    module = LongVAModule(config)
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    return path


def test_a_video_checkpoint_is_the_wrong_kind_for_the_passkey(tmp_path):
    ckpt = _video_checkpoint(tmp_path / "video.ckpt")
    with pytest.raises(SystemExit, match=rf"--ckpt {ckpt}: holds a LongVA \(video model\); the passkey task needs a "
                                         rf"language model over tokens \(text or DNA\); try `python -m zoo.eval vniah "
                                         rf"--ckpt {ckpt}`"):
        eval_main(["passkey", "--ckpt", str(ckpt), "--lengths", "128"])


@pytest.mark.parametrize("args, expected", [
    (["passkey", "--ckpt", "nope.ckpt"], "python -m zoo.eval: error: nope.ckpt: no such file or directory"),
    (["vniah", "--ckpt", "runs/longvaa"], "python -m zoo.eval: error: runs/longvaa: no such file or directory"),
    (["vniah", "--ckpt", "x.ckpt", "--frames", "0"], "argument --frames: 0 is outside [1, ∞)"),
    (["audio-needle", "--ckpt", "x.ckpt", "--samples-per-depth", "-1"], "argument --samples-per-depth: must be ≥ 1"),
    (["passkey", "--ckpt", "x.ckpt", "--sample", "3"], "unrecognized arguments: --sample 3"),
])
def test_bad_arguments_are_one_line_without_traceback(tmp_path, args, expected):
    done = subprocess.run([sys.executable, "-m", "zoo.eval", *args], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert expected in done.stderr.strip().splitlines()[-1]
