"""What the Gradio demos in ``demos/`` share: argument parsing, the default tiny model (found or trained once), and a
launch that stays on this machine (127.0.0.1 by default, no share link, no analytics).

Gradio is imported only here and in the demos (the ``[demo]`` extra)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .paths import cache_dir

ROOT = Path(__file__).resolve().parents[1]


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--ckpt", default=None,
                   help="checkpoint to serve (zoo .ckpt or a model directory); default: the tiny demo model")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    return p.parse_args(argv)


def default_checkpoint(config: str, run_name: str) -> Path:
    """The tiny model of ``configs/<config>``: ``runs/<run_name>/checkpoints/last.ckpt`` if the README's command made
    one here, else a run cached under ``$ZOO_CACHE/demo_runs``, trained now (with Lightning's progress bar) if it is
    absent and resumed if an earlier training was interrupted (a ``trained`` marker is written when fit ends)."""
    readme_run = Path("runs") / run_name / "checkpoints" / "last.ckpt"
    if readme_run.exists():
        return readme_run
    run = cache_dir() / "demo_runs" / run_name
    last = run / "checkpoints" / "last.ckpt"
    if (run / "trained").exists() and last.exists():
        return last
    resume = last.exists()
    print(f"{'resuming' if resume else 'no trained ' + run_name + ' model yet:'} training configs/{config} into {run} "
          f"(once; a few minutes on a CPU)")
    from .fit import main as fit_main

    fit_main(["--config", str(ROOT / "configs" / config), "--trainer.default_root_dir", str(run)]
             + (["--ckpt_path", "last"] if resume else []))
    (run / "trained").write_text(f"configs/{config}\n")
    return last


def prepare_gradio():
    """Import gradio with analytics off and its uploads in the zoo cache (a temp/cache directory)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("GRADIO_TEMP_DIR", str(cache_dir() / "gradio"))
    try:
        import gradio as gr
    except ImportError:
        raise SystemExit("the demos need gradio: pip install -e '.[demo]'") from None
    return gr


def load_model(ckpt: Path, cls: type, what: str):
    """The checkpoint's model, refused by name unless it is a ``cls`` (``what`` says which kind, for the error)."""
    import zoo

    model = zoo.load_pretrained(ckpt)
    if not isinstance(model, cls):
        raise SystemExit(f"{ckpt} holds a {type(model).__name__}, not {what}")
    return model


def model_note(ckpt: Path, tiny: bool, tiny_note: str) -> str:
    """What the page says about its model: plainly that it is the tiny demo model, or which checkpoint it is."""
    return f"**Tiny demo model** {tiny_note}" if tiny else f"Model: `{ckpt}`"


def upload_path(value) -> str | None:
    """A gr.File value (a path, or a file object with .name) → its path."""
    if value is None:
        return None
    return value if isinstance(value, str) else value.name


def serve(build_app, description: str, config: str, run_name: str, argv: list[str] | None = None) -> None:
    """Parse --ckpt/--host/--port, fall back to the tiny model of ``configs/<config>``, build the app and launch it
    bound to --host (127.0.0.1 by default), with no share link."""
    args = parse_args(description, argv)
    ckpt = Path(args.ckpt) if args.ckpt else default_checkpoint(config, run_name)
    app = build_app(ckpt, tiny=args.ckpt is None)
    app.queue().launch(server_name=args.host, server_port=args.port, share=False, show_error=True)
