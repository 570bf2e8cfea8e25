"""The demos' shared defaults: local-only binding, no share link, analytics off, uploads in the zoo cache."""

import os

from zoo.demo import parse_args


def test_demo_defaults_stay_on_this_machine():
    args = parse_args("demo", [])
    assert (args.host, args.port, args.ckpt) == ("127.0.0.1", 7860, None)
    args = parse_args("demo", ["--host", "0.0.0.0", "--port", "9000", "--ckpt", "x.ckpt"])
    assert (args.host, args.port, args.ckpt) == ("0.0.0.0", 9000, "x.ckpt")


def test_prepare_gradio_turns_analytics_off_and_keeps_uploads_in_the_cache(tmp_path, monkeypatch):
    import pytest

    pytest.importorskip("gradio")
    from zoo.demo import prepare_gradio

    monkeypatch.setenv("ZOO_CACHE", str(tmp_path))
    monkeypatch.delenv("GRADIO_ANALYTICS_ENABLED", raising=False)
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    prepare_gradio()
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    assert os.environ["GRADIO_TEMP_DIR"] == str(tmp_path / "gradio")
