"""`python -m zoo.fit --config configs/longva.yaml` shrunk to 4 frames and 800 steps (under a minute) learns V-NIAH; the checkpoint
loads with zoo.load_pretrained and `python -m zoo.eval vniah` writes its table as JSON and a heatmap."""

import json
import os
from pathlib import Path

import pytest
import torch

import zoo
from zoo.eval import main as eval_main
from zoo.fit import main as fit_main
from zoo.modalities.video import LongVA

pytest.importorskip("av", reason="PyAV writes the synthetic haystack")
CONFIGS = Path(__file__).resolve().parents[3] / "configs"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("longva")
    old = os.environ.get("ZOO_CACHE")
    os.environ["ZOO_CACHE"] = str(root / "cache")  # the haystack is written here, not in the user's cache
    try:
        cli = fit_main(["--config", str(CONFIGS / "longva.yaml"), "--trainer.default_root_dir", str(root),
                        "--trainer.max_steps", "800", "--trainer.val_check_interval", "400",
                        "--data.init_args.num_frames", "4", "--model.init_args.warmup_steps", "20",
                        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"])
        yield root, cli
    finally:
        if old is None:
            os.environ.pop("ZOO_CACHE")
        else:
            os.environ["ZOO_CACHE"] = old


def test_fit_learns_vniah_at_the_training_frame_count(trained):
    root, cli = trained
    acc = cli.trainer.callback_metrics["val/vniah_acc"].item()
    assert acc >= 0.9, f"4-frame V-NIAH reached only {acc:.2f}"
    assert (root / "cache" / "vniah").is_dir() and any((root / "cache" / "vniah").glob("*.mp4"))


def test_checkpoint_loads_as_longva_with_identical_outputs(trained):
    root, cli = trained
    model = zoo.load_pretrained(root / "checkpoints" / "last.ckpt")
    assert isinstance(model, LongVA)
    ids = torch.tensor([[256, -200, 65, 66, 67]])
    video = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(ids, [video]).logits, cli.model.model.eval()(ids, [video]).logits,
                                   atol=0, rtol=0)


def test_eval_vniah_writes_table_json_and_heatmap(trained, tmp_path, capsys):
    root, _ = trained
    os.environ["ZOO_CACHE"] = str(root / "cache")
    result = eval_main(["vniah", "--ckpt", str(root / "checkpoints" / "last.ckpt"), "--frames", "4,8",
                        "--depths", "0,1", "--samples-per-depth", "4", "--out-dir", str(tmp_path)])
    assert set(result["accuracy"]) == {"4", "8"} and set(result["accuracy_by_depth"]["4"]) == {"0", "1"}
    assert result["accuracy"]["4"] >= 0.75
    assert result["trained_frames"] == 4  # read from the checkpoint (num_frames 4 above): the report marks it
    assert json.loads((tmp_path / "vniah.json").read_text())["accuracy"] == result["accuracy"]
    assert (tmp_path / "vniah.png").stat().st_size > 10_000
    assert "V-NIAH exact match" in capsys.readouterr().out
    for option, value, message in (("--depths", "1.5", "1.5 is outside [0, 1]"), ("--frames", "16,0", "0 is outside"),
                                   ("--v2pe-delta", "0", "0 is outside (0, 1]")):
        with pytest.raises(SystemExit):
            eval_main(["vniah", "--ckpt", str(root / "checkpoints" / "last.ckpt"), option, value])
        assert f"argument {option}: {message}" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # abbreviations are off
        eval_main(["vniah", "--ckpt", str(root / "checkpoints" / "last.ckpt"), "--frame", "16"])
    assert "unrecognized arguments: --frame 16" in capsys.readouterr().err


def test_answer_reads_a_video_file_and_names_the_needle_digit(trained, tmp_path):
    """End to end: frames written to an .mp4, sampled back with read_frames, answered by greedy decoding."""
    import numpy as np

    from zoo.modalities.video import answer, read_frames
    from zoo.modalities.video.vniah import QUESTION, haystack_path, render_needle, write_video

    root, cli = trained
    model = zoo.load_pretrained(root / "checkpoints" / "last.ckpt")
    os.environ["ZOO_CACHE"] = str(root / "cache")
    hay, _ = read_frames(haystack_path(), num_frames=30)
    rng = np.random.default_rng(5)
    right = 0
    for i, digit in enumerate("3816"):
        frames = list(hay[i * 6: i * 6 + 4])
        frames[i % 4] = render_needle(digit, 64, rng)
        path = write_video(tmp_path / f"needle_{digit}.mp4", frames)
        text = answer(model, path, QUESTION, num_frames=4)
        pieces = list(answer(model, path, QUESTION, num_frames=4, stream=True))
        assert "".join(pieces) == text  # streaming yields the same text, piece by piece
        sampled, _ = read_frames(path, num_frames=4)
        assert answer(model, sampled, QUESTION) == text  # frames already read give the same answer
        right += text == digit
    assert right >= 3, f"answered {right}/4 needle videos correctly"


def test_cached_decoding_equals_recomputing_the_full_sequence(trained):
    from zoo.modalities.video.qa import generate_tokens

    root, cli = trained
    model = cli.model.model.eval()
    ids = torch.tensor([[256, -200, 72, 105, 33]])
    video = torch.randn(2, 3, 32, 32)
    cached = list(generate_tokens(model, ids, [video], 6, eos_token_id=None))
    full = ids
    with torch.no_grad():
        for _ in range(6):
            nxt = model(full, [video]).logits[:, -1].argmax(-1)
            full = torch.cat((full, nxt[:, None]), 1)
    assert cached == full[0, 5:].tolist()
