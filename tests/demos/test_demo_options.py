"""The demos' options without a browser: no abbreviated options, the resource limits' defaults and how the page and
gradio get them, and a missing or damaged --ckpt ending the demo with one line instead of a traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from zoo.demo import Limits, parse_args

ROOT = Path(__file__).resolve().parents[2]


def test_abbreviated_options_are_errors_that_name_them(capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args("demo", ["--por", "7861"])
    assert exit_.value.code == 2
    assert "error: unrecognized arguments: --por 7861" in capsys.readouterr().err


def test_limits_have_stated_defaults_and_refuse_nonsense(capsys):
    args = parse_args("demo", [])
    assert (args.max_upload_mb, args.max_question_chars, args.keep_uploads_min) == (200, 1000, 60)
    assert parse_args("demo", [], max_upload_mb=50).max_upload_mb == 50
    args = parse_args("demo", ["--max-upload-mb", "1.5", "--max-question-chars", "80", "--keep-uploads-min", "5"])
    assert (args.max_upload_mb, args.max_question_chars, args.keep_uploads_min) == (1.5, 80, 5)
    with pytest.raises(SystemExit):
        parse_args("demo", ["--max-upload-mb", "0"])
    assert "argument --max-upload-mb: must be > 0, got 0" in capsys.readouterr().err


def test_limits_as_gradio_and_the_page_get_them():
    limits = Limits(max_upload_mb=1.5, max_question_chars=1200, keep_uploads_min=60)
    assert limits.max_upload_bytes == 1_572_864
    assert limits.delete_cache == (60, 3600)  # look every minute, delete what is older than an hour
    assert Limits(keep_uploads_min=0.05).delete_cache == (3, 3)
    assert limits.note() == ("Limits: uploads up to 1.5 MB, questions up to 1,200 characters; uploads are deleted "
                             "from the server after 60 minutes and when it stops.")
    limits.check_question("x" * 1200)
    with pytest.raises(ValueError, match=r"the question is 1,201 characters long; the limit is 1,200 "
                                         r"\(--max-question-chars\)"):
        limits.check_question("x" * 1201)


@pytest.mark.parametrize("script,default_mb", [("video_qa.py", 200), ("audio_qa.py", 50)])
def test_each_demo_states_its_upload_default(script, default_mb):
    out = subprocess.run([sys.executable, str(ROOT / "demos" / script), "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert f"largest upload gradio accepts, in MB (default {default_mb})" in " ".join(out.split())


@pytest.mark.parametrize("script", ["video_qa.py", "audio_qa.py"])
def test_a_missing_or_damaged_checkpoint_is_one_line_and_a_nonzero_exit(script, tmp_path):
    damaged = tmp_path / "damaged.ckpt"
    damaged.write_bytes(b"not a checkpoint\n")
    for ckpt in ("/nonexistent.ckpt", str(damaged)):
        run = subprocess.run([sys.executable, str(ROOT / "demos" / script), "--ckpt", ckpt], capture_output=True,
                             text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert run.returncode != 0
        assert "Traceback" not in run.stderr, run.stderr
        last = run.stderr.strip().splitlines()[-1]
        assert last.startswith(f"error: {ckpt}"), run.stderr
