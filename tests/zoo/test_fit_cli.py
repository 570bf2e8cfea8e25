"""``python -m zoo.fit`` as a new user meets it: a run directory holding another run's checkpoints is refused (a smoke
run never replaces a real run's last.ckpt), a damaged ``last.ckpt`` gives way to the newest intact one, a missing or
damaged ``--ckpt_path`` and a YAML syntax error are one line naming the file, typos of options are errors, configs are
listed and found by name, progress goes to log files as lines, and checkpoint writes are atomic."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from zoo.fit import main as fit_main

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--config", "lm_passkey",  # a bare name: configs/lm_passkey.yaml
        "--model.init_args.model.d_model", "32", "--model.init_args.model.n_layer", "1",
        "--model.init_args.model.n_head", "2", "--model.init_args.model.d_ff", "64",
        "--model.init_args.model.max_position_embeddings", "128", "--model.init_args.warmup_steps", "2",
        "--data.init_args.seq_len", "110", "--data.init_args.min_seq_len", "null", "--data.init_args.batch_size", "2",
        "--data.init_args.val_per_depth", "1", "--trainer.val_check_interval", "2",
        "--trainer.enable_model_summary", "false", "--trainer.num_sanity_val_steps", "0"]


def fit(root: Path, steps: int, *extra: str):
    return fit_main(TINY + ["--trainer.default_root_dir", str(root), "--trainer.max_steps", str(steps), *extra])


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "nothing on stderr"
    return err[-1]


def test_a_second_run_into_the_same_directory_is_refused_unless_resumed_or_overwritten(tmp_path, capsys):
    fit(tmp_path, 4)
    ckpts = sorted(p.name for p in (tmp_path / "checkpoints").glob("*.ckpt"))
    last = (tmp_path / "checkpoints" / "last.ckpt").read_bytes()
    with pytest.raises(SystemExit) as err:
        fit(tmp_path, 2)  # a smoke run
    assert err.value.code == 1
    line = error_line(capsys)
    assert line.startswith("python -m zoo.fit: error: ") and "holds the checkpoints of an earlier run" in line
    assert "--ckpt_path last" in line and "--overwrite true" in line
    assert (tmp_path / "checkpoints" / "last.ckpt").read_bytes() == last, "the earlier run's last.ckpt was touched"
    cli = fit(tmp_path, 6, "--ckpt_path", "last")  # resuming the run is what the directory is for
    assert cli.trainer.global_step == 6
    cli = fit(tmp_path, 2, "--overwrite", "true")  # asked for: the old checkpoints go
    assert cli.trainer.global_step == 2
    assert not (tmp_path / "checkpoints" / "latest-step=6.ckpt").exists() and "latest-step=4.ckpt" in ckpts


def test_a_truncated_last_checkpoint_resumes_from_the_newest_intact_one(tmp_path, caplog):
    fit(tmp_path, 4)
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])  # a save that was killed half-way (before the atomic writer)
    with caplog.at_level("WARNING"):
        cli = fit(tmp_path, 6, "--ckpt_path", "last")
    assert "last.ckpt: truncated" in caplog.text and "latest-step=4.ckpt (step 4)" in caplog.text
    assert cli.trainer.global_step == 6
    assert torch.load(last, weights_only=True)["global_step"] == 6  # rewritten, intact


@pytest.mark.parametrize("case", ["missing", "damaged", "no_last"])
def test_bad_ckpt_path_is_one_line_without_traceback(tmp_path, case):
    args = [sys.executable, "-m", "zoo.fit", *TINY, "--trainer.default_root_dir", str(tmp_path / "run"),
            "--trainer.max_steps", "2"]
    if case == "missing":
        args += ["--ckpt_path", str(tmp_path / "missing.ckpt")]
        expected = f"--ckpt_path: {tmp_path / 'missing.ckpt'}: no such checkpoint file"
    elif case == "damaged":
        (tmp_path / "bad.ckpt").write_bytes(b"PK\x03\x04" + b"\0" * 100)
        args += ["--ckpt_path", str(tmp_path / "bad.ckpt")]
        expected = f"--ckpt_path: {tmp_path / 'bad.ckpt'}: truncated: the zip archive ends without its central"
    else:
        args += ["--ckpt_path", "last"]
        expected = f"--ckpt_path last: {tmp_path / 'run' / 'checkpoints'} holds no last.ckpt to resume from"
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == f"python -m zoo.fit: error: {expected}" or \
        done.stderr.strip().splitlines()[-1].startswith(f"python -m zoo.fit: error: {expected}")


def test_yaml_syntax_error_names_the_config_file(tmp_path, capsys):
    bad = tmp_path / "broken.yaml"
    bad.write_text("trainer:\n  max_steps: 5\n   callbacks: [\n")
    with pytest.raises(SystemExit) as err:
        fit_main(["--config", str(bad)])
    assert err.value.code == 1
    assert error_line(capsys) == (f"python -m zoo.fit: error: {bad}, line 3, column 13: YAML syntax error: mapping "
                                  "values are not allowed here")


def test_option_typos_are_errors_that_name_them(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        fit(tmp_path, 2, "--trainer.max_step", "5")
    assert err.value.code != 0
    assert "--trainer.max_step" in capsys.readouterr().err
    assert not (tmp_path / "checkpoints").exists()


def test_list_prints_every_config_with_one_line(capsys):
    import zoo

    fit_main(["--list"])
    out = capsys.readouterr().out.splitlines()
    configs = zoo.list_configs()
    assert set(configs) == {p.stem for p in (ROOT / "configs").glob("*.yaml")}
    assert len(out) == 1 + len(configs)
    longva = next(line for line in out if line.split()[0] == "longva")
    assert "Tiny LongVA-shaped video LM trained on synthetic V-NIAH" in longva and len(longva) < 140


def test_progress_goes_to_a_log_file_as_lines(tmp_path):
    from zoo.callbacks import LogProgress

    stream = io.StringIO()
    trainer = SimpleNamespace(global_step=0, max_steps=8, current_epoch=0, sanity_checking=False,
                              callback_metrics={"train/loss": torch.tensor(1.5), "val/loss": torch.tensor(0.5),
                                                "val/passkey_acc": torch.tensor(0.25)})
    progress = LogProgress(every_n_steps=2, stream=stream)
    progress.on_train_start(trainer, None)
    for step in range(1, 5):
        trainer.global_step = step
        progress.on_train_batch_end(trainer, None, None, None, step - 1)
    progress.on_validation_end(trainer, None)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "training from step 0/8"
    assert lines[1].startswith("step 2/8  train/loss 1.5  ") and " s/step  eta " in lines[1]
    assert lines[2].startswith("step 4/8  train/loss 1.5  ")
    assert lines[3] == "validation at step 4/8: val/loss 0.5  val/passkey_acc 0.25"


def test_auto_progress_uses_lines_without_a_terminal_and_the_bar_counts_steps(tmp_path):
    from lightning.pytorch.callbacks import ProgressBar

    from zoo.callbacks import LogProgress, StepProgressBar

    cli = fit(tmp_path, 2)  # pytest's stderr is not a terminal
    assert any(isinstance(c, LogProgress) for c in cli.trainer.callbacks)
    assert not any(isinstance(c, ProgressBar) for c in cli.trainer.callbacks)
    bar = StepProgressBar()
    bar._trainer = SimpleNamespace(num_training_batches=float("inf"), max_steps=2000, max_epochs=-1)
    assert bar.total_train_batches == 2000
    assert bar._get_train_description(0).strip() == "step"  # not "Epoch 0/-2"
    bar._trainer = SimpleNamespace(num_training_batches=50, max_steps=2000, max_epochs=-1)
    assert bar._get_train_description(3).strip() == "Epoch 3"


def test_checkpoint_writes_are_atomic_and_stage_nothing_in_tmpdir(tmp_path, monkeypatch):
    import tempfile

    from zoo.callbacks import AtomicCheckpointIO

    staging = tmp_path / "tmpdir"
    staging.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(staging))
    target = tmp_path / "ckpts" / "last.ckpt"
    ckpt_io = AtomicCheckpointIO()
    ckpt_io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "global_step": 1}, target)
    assert ckpt_io.load_checkpoint(target)["global_step"] == 1
    real_save = torch.save

    def killed_half_way(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", killed_half_way)
    with pytest.raises(KeyboardInterrupt):
        ckpt_io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "global_step": 2}, target)
    monkeypatch.setattr(torch, "save", real_save)
    assert ckpt_io.load_checkpoint(target)["global_step"] == 1, "the previous checkpoint must survive"
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]
    assert list(staging.iterdir()) == []
