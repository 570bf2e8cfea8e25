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
    for name in ("GRADIO_ANALYTICS_ENABLED", "GRADIO_TEMP_DIR"):
        # set, then deleted: monkeypatch records the original state, so what prepare_gradio sets is undone after
        # the test (a bare delenv of an unset variable records nothing, and later demos read the leftover)
        monkeypatch.setenv(name, "unset-by-the-test")
        monkeypatch.delenv(name)
    prepare_gradio()
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    assert os.environ["GRADIO_TEMP_DIR"] == str(tmp_path / "gradio")
