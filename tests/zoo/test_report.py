"""``python -m zoo.report``: eval results of every kind under run directories become one Markdown page and one
self-contained HTML page with the numbers in tables and the plots inlined; duplicates and foreign JSON are listed as
skipped, a broken JSON is an error naming the file."""

import json
import shutil
from pathlib import Path

import pytest

from zoo.report import main

ROOT = Path(__file__).resolve().parents[2]


def _write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _by_depth(acc):
    return {k: {"0.0": v, "0.5": v, "1.0": v} for k, v in acc.items()}


@pytest.fixture
def runs(tmp_path):
    video = {"task": "vniah", "checkpoint": "runs/longva/checkpoints/last.ckpt", "positions": "plain positions",
             "accuracy": {"16": 1.0, "64": 0.75}, "accuracy_by_depth": _by_depth({"16": 1.0, "64": 0.75})}
    _write(tmp_path / "longva" / "checkpoints" / "vniah.json", video)
    _write(tmp_path / "longva" / "vniah.json", video)  # the same result twice (--json and out_dir)
    plain, yarn = {"512": 1.0, "2048": 0.25}, {"512": 1.0, "2048": 0.9}
    _write(tmp_path / "lm" / "passkey.json", {
        "task": "passkey", "trained_length": 512, "accuracy": plain, "accuracy_by_depth": _by_depth(plain),
        "by_rope_scaling": {"none": {"accuracy": plain, "accuracy_by_depth": _by_depth(plain)},
                            "yarn": {"accuracy": yarn, "accuracy_by_depth": _by_depth(yarn)}}})
    audio = {"30": 1.0, "120": 0.5}
    _write(tmp_path / "audio" / "audio_needle.json", {
        "task": "audio-needle", "trained_seconds": 30, "accuracy": audio, "accuracy_by_depth": _by_depth(audio),
        "by_positions": {"partial_yarn": {"accuracy": audio, "accuracy_by_depth": _by_depth(audio)}}})
    _write(tmp_path / "timer" / "forecast.json", {
        "task": "forecast", "data": "../shared/data/ett/ETTh1.csv",
        "96": {"mse": 0.363, "mae": 0.398, "windows": 2785}, "192": {"mse": 0.394, "mae": 0.418, "windows": 2689},
        "avg": {"mse": 0.3785, "mae": 0.408}})
    _write(tmp_path / "timer" / "config_dump.json", {"lr": 1e-4})
    shutil.copytree(ROOT / "benchmarks" / "results", tmp_path / "bench")
    return tmp_path


def test_report_gathers_every_kind_into_markdown_and_html(runs, capsys):
    out = runs / "report"
    found = main([str(runs / name) for name in ("longva", "lm", "audio", "timer", "bench")] + ["--out", str(out)])
    assert {c.task for c in found.curves} == {"V-NIAH", "passkey", "audio needle"}
    text = (out / "report.md").read_text()
    assert "| longva/checkpoints/vniah |  | 1.00 | 0.75 |" in text
    assert "| lm/passkey (yarn) | 512 | 1.00 | 0.90 |" in text
    assert "| audio/audio_needle (partial_yarn) | 30 | 1.00 | 0.50 |" in text
    assert "| MSE | 0.363 | 0.394 | 0.379 |" in text and "ETTh1.csv" in text
    assert "### bench/attention_cpu" in text and "sdpa_causal" in text
    skipped = dict((Path(p).relative_to(runs).as_posix(), why) for p, why in found.skipped)
    assert skipped["longva/vniah.json"] == f"the same result as {runs / 'longva/checkpoints/vniah.json'}"
    assert skipped["timer/config_dump.json"] == "no 'task' field"
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 2 and 'src="accuracy_by_length.png"' not in page
    assert "<table>" in page and "0.90" in page
    assert "wrote" in capsys.readouterr().out


def test_report_names_a_broken_file_and_refuses_an_empty_run(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "vniah.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"bad/vniah.json: not valid JSON"):
        main([str(tmp_path / "bad"), "--out", str(tmp_path / "r")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no eval results under"):
        main([str(tmp_path / "empty"), "--out", str(tmp_path / "r")])
