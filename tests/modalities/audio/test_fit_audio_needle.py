"""`python -m zoo.fit --config configs/audio_qa.yaml` shrunk to 2-second encoder windows (100 encoder positions, 50
audio tokens), 2-second clips and 1-digit codes learns the audio needle in well under a minute; the checkpoint loads
with zoo.load_pretrained, `python -m zoo.eval audio-needle` writes its table (plain and Partial YaRN, at 1× and 2× the
training length) as JSON and a PNG, and `answer` names the digit dialled in a real audio file."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo.eval import main as eval_main
from zoo.fit import main as fit_main
from zoo.modalities.audio import Qwen2Audio

CONFIGS = Path(__file__).resolve().parents[3] / "configs"
SMALL = ["--model.init_args.model.audio.max_source_positions", "100",
         "--model.init_args.model.partial_yarn.window", "50",
         "--data.init_args.seconds", "2", "--data.init_args.min_seconds", "1", "--data.init_args.window_seconds", "2",
         "--data.init_args.code_length", "1",
         "--data.init_args.num_workers", "0", "--data.init_args.val_per_depth", "4"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio_qa")
    cli = fit_main(["--config", str(CONFIGS / "audio_qa.yaml"), "--trainer.default_root_dir", str(root),
                    "--trainer.max_steps", "300", "--trainer.val_check_interval", "300",
                    "--model.init_args.warmup_steps", "20", "--trainer.enable_progress_bar", "false",
                    "--trainer.enable_model_summary", "false", *SMALL])
    return root, cli


def test_fit_learns_the_audio_needle_at_the_training_length(trained):
    _, cli = trained
    acc = cli.trainer.callback_metrics["val/needle_acc"].item()
    assert acc >= 0.9, f"2-second audio needle reached only {acc:.2f}"


def test_checkpoint_loads_with_identical_outputs(trained):
    root, cli = trained
    model = zoo.load_pretrained(root / "checkpoints" / "last.ckpt")
    assert isinstance(model, Qwen2Audio) and model.audio_tower.window_seconds == 2
    from zoo.modalities.audio.needle import NeedleTask, collate

    batch = collate([NeedleTask(2, 1, 259, 128, 2).sample(0.5, np.random.default_rng(0))])
    inputs = {k: batch[k] for k in ("input_ids", "input_features", "attention_mask", "feature_attention_mask")}
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, cli.model.model.eval()(**inputs).logits, atol=0, rtol=0)


def test_eval_audio_needle_writes_table_json_and_plot(trained, tmp_path, capsys):
    root, _ = trained
    result = eval_main(["audio-needle", "--ckpt", str(root / "checkpoints" / "last.ckpt"), "--seconds", "2,4",
                        "--depths", "0,1", "--samples-per-depth", "4", "--code-length", "1",
                        "--trained-seconds", "2", "--out-dir", str(tmp_path)])
    assert set(result["by_positions"]) == {"plain", "partial_yarn"}
    for run in result["by_positions"].values():
        assert set(run["accuracy"]) == {"2", "4"} and set(run["accuracy_by_depth"]["2"]) == {"0", "1"}
    # within the training length Partial YaRN changes nothing (spans ≤ the window are untouched)
    assert result["by_positions"]["plain"]["accuracy"]["2"] == result["by_positions"]["partial_yarn"]["accuracy"]["2"]
    assert result["by_positions"]["plain"]["accuracy"]["2"] >= 0.75
    assert json.loads((tmp_path / "audio_needle.json").read_text())["by_positions"] == result["by_positions"]
    assert (tmp_path / "audio_needle.png").stat().st_size > 10_000
    assert "audio needle exact match" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="--positions: 'yarn' is not one of plain, partial_yarn"):
        eval_main(["audio-needle", "--ckpt", str(root / "checkpoints" / "last.ckpt"), "--positions", "yarn"])


def test_answer_reads_an_audio_file_and_names_the_dialled_digit(trained, tmp_path):
    import soundfile as sf

    from zoo.modalities.audio import AudioDecodeError, answer, load_audio
    from zoo.modalities.audio.needle import QUESTION, insert_needle, make_haystack, render_code

    root, _ = trained
    model = zoo.load_pretrained(root / "checkpoints" / "last.ckpt")
    rng = np.random.default_rng(7)
    hits = 0
    for digit in "0123456789":
        audio, _ = insert_needle(make_haystack(2, rng), render_code(digit), float(rng.uniform()))
        path = tmp_path / f"call_{digit}.wav"
        sf.write(path, audio, 16000, subtype="FLOAT")
        got = answer(model, path, QUESTION, max_new_tokens=4)
        hits += got == digit
        assert "".join(answer(model, path, QUESTION, max_new_tokens=4, stream=True)) == got
        assert answer(model, load_audio(path), QUESTION, max_new_tokens=4) == got  # samples already read
    assert hits >= 8, f"answered {hits}/10 dialled digits"
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioDecodeError, match="empty.wav: the file is empty"):
        answer(model, tmp_path / "empty.wav", QUESTION)
