"""`python -m zoo.fit` on the shipped passkey config (shrunk to seconds) and `python -m zoo.eval passkey` on its
checkpoint: convergence, checkpoints, resume, config errors, loading, JSON and plots."""

import json
from pathlib import Path

import pytest
import torch

import zoo
from zoo.fit import main as fit_main

CONFIG = str(Path(__file__).resolve().parents[2] / "configs" / "lm_passkey.yaml")
SEQ = 128
TINY = [
    "--config", CONFIG,
    "--model.init_args.model.d_model", "64",
    "--model.init_args.model.d_ff", "192",
    "--model.init_args.model.max_position_embeddings", str(SEQ),
    "--model.init_args.warmup_steps", "20",
    "--data.init_args.seq_len", str(SEQ),
    "--data.init_args.val_per_depth", "8",
    "--trainer.val_check_interval", "100",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("fit")
    cli = fit_main(TINY + ["--trainer.default_root_dir", str(root), "--trainer.max_steps", "300"])
    return root, cli


def test_fit_converges_and_writes_checkpoints_and_logs(trained):
    root, cli = trained
    acc = cli.trainer.callback_metrics["val/passkey_acc"].item()
    assert acc >= 0.9, f"tiny passkey run reached only {acc:.2f}"
    ckpts = sorted(p.name for p in (root / "checkpoints").iterdir())
    assert "last.ckpt" in ckpts and any(n.startswith("best-") for n in ckpts)
    metrics = (root / "logs" / "version_0" / "metrics.csv").read_text()
    assert "val/passkey_acc" in metrics and "train/loss" in metrics
    assert (root / "logs" / "version_0" / "metrics.png").stat().st_size > 10_000


def test_load_pretrained_on_fit_checkpoint_matches_module(trained):
    root, cli = trained
    model = zoo.load_pretrained(root / "checkpoints" / "last.ckpt")
    ids = torch.randint(0, 256, (2, 64))
    with torch.no_grad():
        a, b = model(ids).logits, cli.model.model.eval()(ids).logits
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_resume_from_last_continues_the_step_count(trained, tmp_path):
    root, _ = trained
    cli = fit_main(TINY + ["--trainer.default_root_dir", str(root), "--trainer.max_steps", "320",
                           "--ckpt_path", "last"])
    assert cli.trainer.global_step == 320
    log = (root / "logs" / "version_1" / "metrics.csv").read_text().splitlines()
    steps = [int(line.split(",")[3]) for line in log[1:] if line.split(",")[3]]
    assert min(steps) >= 300, "resumed run started from scratch"


def test_typo_in_config_key_names_the_key(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        fit_main(TINY + ["--trainer.default_root_dir", str(tmp_path), "--model.init_args.model.d_modle", "64"])
    assert err.value.code != 0
    assert "d_modle" in capsys.readouterr().err


def test_print_config_shows_resolved_values(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        fit_main(TINY + ["--trainer.max_steps", "7", "--print_config"])
    assert err.value.code == 0
    out = capsys.readouterr().out
    assert "max_steps: 7" in out and "d_model: 64" in out


def test_eval_passkey_writes_json_and_plot(trained, tmp_path):
    from zoo.eval import main as eval_main

    root, _ = trained
    ckpt = root / "checkpoints" / "last.ckpt"
    out_json = tmp_path / "res.json"
    result = eval_main(["passkey", "--ckpt", str(ckpt), "--lengths", f"{SEQ},{2 * SEQ}", "--samples-per-depth", "4",
                        "--rope-scaling", "none,yarn", "--json", str(out_json)])
    saved = json.loads(out_json.read_text())
    assert saved == result
    assert set(saved["accuracy"]) == {str(SEQ), str(2 * SEQ)}
    assert set(saved["accuracy_by_depth"][str(SEQ)]) == {"0.0", "0.25", "0.5", "0.75", "1.0"}
    assert list(saved["by_rope_scaling"]) == ["none", "yarn"]
    assert saved["by_rope_scaling"]["yarn"]["factor"] == {str(SEQ): 1.0, str(2 * SEQ): 2.0}
    assert saved["accuracy"][str(SEQ)] >= 0.9  # the trained length, same as validation
    assert (ckpt.parent / "passkey_none_yarn.png").stat().st_size > 10_000
    assert (ckpt.parent / "passkey_none_yarn.json").exists()


def test_eval_rejects_bad_arguments(trained, capsys):
    from zoo.eval import main as eval_main

    root, _ = trained
    with pytest.raises(SystemExit):
        eval_main(["passkey", "--ckpt", str(root / "checkpoints" / "last.ckpt"), "--lengths", "12x"])
    assert "expected comma-separated integers, got '12x'" in capsys.readouterr().err
    for option, value, message in (("--depths", "0,1.5", "1.5 is outside [0, 1]"),
                                   ("--samples-per-depth", "-1", "must be ≥ 1, got -1"),
                                   ("--lengths", "512,0", "0 is outside [1, ∞)"),
                                   ("--batch-size", "0", "must be ≥ 1, got 0")):
        with pytest.raises(SystemExit) as err:
            eval_main(["passkey", "--ckpt", str(root / "checkpoints" / "last.ckpt"), option, value])
        assert err.value.code == 2
        assert f"argument {option}: {message}" in capsys.readouterr().err
    with pytest.raises(SystemExit) as err:  # abbreviations are off: a typo is named, not taken for --lengths
        eval_main(["passkey", "--ckpt", str(root / "checkpoints" / "last.ckpt"), "--length", "512"])
    assert "unrecognized arguments: --length 512" in capsys.readouterr().err


def test_ramba_yaml_layout_builds_the_hybrid_stack_and_trains(tmp_path):
    """configs/ramba_passkey.yaml: "mamba*3,hsa" in YAML gives Mamba, Mamba, Mamba, HSA — no model code."""
    config = str(Path(CONFIG).with_name("ramba_passkey.yaml"))
    cli = fit_main(["--config", config, "--trainer.default_root_dir", str(tmp_path), "--trainer.max_steps", "3",
                    "--trainer.val_check_interval", "3", "--data.init_args.seq_len", "128",
                    "--data.init_args.batch_size", "4", "--data.init_args.val_per_depth", "1",
                    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"])
    model = cli.model.model
    assert [type(b.mixer).__name__ for b in model.blocks] == ["Mamba", "Mamba", "Mamba", "HSA"]
    hsa = model.blocks[3].mixer
    assert (hsa.chunk_size, hsa.top_k, hsa.weighting) == (16, 4, "stick_breaking")
    assert cli.trainer.global_step == 3 and torch.isfinite(cli.trainer.callback_metrics["val/loss"])
