"""What the Gradio demos in ``demos/`` share: argument parsing, the default tiny model (found or trained once), and a
launch that stays on this machine (127.0.0.1 by default, no share link, no analytics).

Resources are bounded by :class:`Limits`, each an option with a stated default: an upload above ``--max-upload-mb``
is refused by gradio (in the page, and by the server for any other client); a question above
``--max-question-chars`` is cut by the text box and refused by the handler; uploads are deleted from gradio's cache
once older than ``--keep-uploads-min`` minutes, and all of them when the server stops (Ctrl-C or SIGTERM). The page
states the limits.

Gradio is imported only here and in the demos (the ``[demo]`` extra)."""

from __future__ import annotations

import argparse
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from .arguments import positive_float, positive_int
from .paths import cache_dir

ROOT = Path(__file__).resolve().parents[1]


DEFAULT_MAX_UPLOAD_MB = 200.0
DEFAULT_MAX_QUESTION_CHARS = 1000
DEFAULT_KEEP_UPLOADS_MIN = 60.0


@dataclass(frozen=True)
class Limits:
    """What one request may use: upload size, question length, and how long uploads stay on the server."""

    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB
    max_question_chars: int = DEFAULT_MAX_QUESTION_CHARS
    keep_uploads_min: float = DEFAULT_KEEP_UPLOADS_MIN

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Limits:
        return cls(args.max_upload_mb, args.max_question_chars, args.keep_uploads_min)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def delete_cache(self) -> tuple[int, int]:
        """gradio's ``delete_cache=(frequency, age)`` in seconds: look every minute (or sooner for a shorter age)."""
        age = max(1, round(self.keep_uploads_min * 60))
        return min(age, 60), age

    def note(self) -> str:
        """The limits as the page states them."""
        return (f"Limits: uploads up to {self.max_upload_mb:g} MB, questions up to {self.max_question_chars:,} "
                f"characters; uploads are deleted from the server after {self.keep_uploads_min:g} minutes and when it "
                f"stops.")

    def check_question(self, question: str) -> None:
        if len(question) > self.max_question_chars:
            raise ValueError(f"the question is {len(question):,} characters long; the limit is "
                             f"{self.max_question_chars:,} (--max-question-chars)")


def parse_args(description: str, argv: list[str] | None = None,
               max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB) -> argparse.Namespace:
    """The demos' options; ``max_upload_mb`` is the demo's default upload limit (video files are larger than
    audio). Options must be spelled out: ``--por 7861`` is an error, not ``--port``."""
    p = argparse.ArgumentParser(description=description, allow_abbrev=False)
    p.add_argument("--ckpt", default=None,
                   help="checkpoint to serve (zoo .ckpt or a model directory); default: the tiny demo model")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--max-upload-mb", type=positive_float, default=max_upload_mb,
                   help=f"largest upload gradio accepts, in MB (default {max_upload_mb:g})")
    p.add_argument("--max-question-chars", type=positive_int, default=DEFAULT_MAX_QUESTION_CHARS,
                   help=f"longest question, in characters (default {DEFAULT_MAX_QUESTION_CHARS})")
    p.add_argument("--keep-uploads-min", type=positive_float, default=DEFAULT_KEEP_UPLOADS_MIN,
                   help=f"uploads older than this many minutes are deleted from gradio's cache, and all of them when "
                        f"the server stops (default {DEFAULT_KEEP_UPLOADS_MIN:g})")
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
    """The checkpoint's model, refused by name unless it is a ``cls`` (``what`` says which kind, for the error). A
    missing or damaged checkpoint ends the demo with one line naming it, not a traceback."""
    import zoo
    from zoo.loading import CheckpointError

    try:
        model = zoo.load_pretrained(ckpt)
    except (CheckpointError, FileNotFoundError, OSError) as err:
        raise SystemExit(f"error: {err}") from None
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


def serve(build_app, description: str, config: str, run_name: str, argv: list[str] | None = None,
          max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB) -> None:
    """Parse the options, fall back to the tiny model of ``configs/<config>``, build the app with its
    :class:`Limits` and launch it bound to --host (127.0.0.1 by default), with no share link and gradio refusing
    uploads above the limit."""
    args = parse_args(description, argv, max_upload_mb)
    limits = Limits.from_args(args)
    ckpt = Path(args.ckpt) if args.ckpt else default_checkpoint(config, run_name)
    app = build_app(ckpt, tiny=args.ckpt is None, limits=limits)
    # gradio deletes its uploads when the server closes, which it does on Ctrl-C; a service manager's SIGTERM
    # (systemd, docker stop) would otherwise kill it with the uploads left behind
    signal.signal(signal.SIGTERM, _interrupt)
    app.queue().launch(server_name=args.host, server_port=args.port, share=False, show_error=True,
                       max_file_size=limits.max_upload_bytes)


def _interrupt(signum, frame):
    raise KeyboardInterrupt
