"""``python -m zoo.fit --config configs/NAME.yaml [--trainer.max_steps 50] [--ckpt_path last]``

LightningCLI over any zoo LightningModule / LightningDataModule (given by class_path in the YAML): ``--print_config``,
command-line overrides, a clear error naming a mistyped key, checkpoints, resume, loggers and the progress bar all
come from Lightning. This file adds what a run needs to be safe to interrupt and easy to start:

- ``--list`` prints the configs in ``configs/``; ``--config NAME`` takes a bare name from there.
- ``--ckpt_path last`` (or a path) is checked before training: a damaged ``last.ckpt`` gives way to the newest intact
  checkpoint beside it (logged); a damaged explicit path is an error naming it.
- A run directory whose ``checkpoints/`` holds another run's checkpoints is refused unless the run resumes from one
  of them (``--ckpt_path``) or ``--overwrite true`` says to replace them: a smoke run never replaces a real run's
  ``last.ckpt``.
- Checkpoints are written atomically and read with ``weights_only=True``; the random generators and the data
  position travel with them (:mod:`zoo.data`, :class:`zoo.callbacks.RNGState`), so a resumed run continues exactly.
- ``--progress auto`` shows a progress bar on a terminal and plain log lines when output goes to a file.
- Option abbreviations are off: ``--trainer.max_step 5`` is an error that names it.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

from .errors import UserInputError, one_line_errors

PROG = "python -m zoo.fit"
log = logging.getLogger(__name__)


class RunDirectoryError(UserInputError):
    """A run would write into a checkpoint directory that holds another run's checkpoints."""


def guard_run_directory(checkpoint_dirs: list[Path], resume_from: Path | None, overwrite: bool) -> None:
    """Refuse to train into a directory holding another run's ``*.ckpt`` files unless resuming from one of them; with
    ``overwrite`` the old checkpoints are deleted first (each one logged)."""
    for directory in checkpoint_dirs:
        existing = sorted(directory.glob("*.ckpt")) if directory.is_dir() else []
        if not existing:
            continue
        if resume_from is not None and resume_from.resolve().parent == directory.resolve():
            continue
        if overwrite:
            for path in existing:
                log.warning("--overwrite: deleting %s", path)
                path.unlink()
            continue
        names = ", ".join(p.name for p in existing[:4]) + (", …" if len(existing) > 4 else "")
        raise RunDirectoryError(
            f"{directory} holds the checkpoints of an earlier run ({names}). Resume it with --ckpt_path last, "
            "train elsewhere with --trainer.default_root_dir DIR, or replace them with --overwrite true")


def _resolve_config_names(args: list[str]) -> list[str]:
    """``--config NAME`` (or ``--config=NAME``) → ``configs/NAME.yaml`` when NAME is not a file; each config file is
    read as YAML first, so that a syntax error names the file (jsonargparse names ``<unicode string>``)."""
    from .configs import resolve_config

    out = list(args)
    for i, arg in enumerate(out):
        if arg == "--config" and i + 1 < len(out):
            out[i + 1] = str(check_yaml(resolve_config(out[i + 1])))
        elif arg.startswith("--config="):
            out[i] = "--config=" + str(check_yaml(resolve_config(arg.split("=", 1)[1])))
    return out


class ConfigFileError(UserInputError):
    """A config file that is not valid YAML."""


def check_yaml(path: Path) -> Path:
    import yaml

    try:
        yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigFileError(f"{path}{where}: YAML syntax error: {problem}") from None
    return path


def print_config_list() -> None:
    from .configs import list_configs

    configs = list_configs()
    width = max(map(len, configs))
    print(f"configs ({PROG} --config NAME):")
    for name, summary in configs.items():
        print(f"  {name:<{width}}  {summary}")


def _make_cli_class():
    """The LightningCLI subclass; built on first use so that ``--list`` and errors before parsing import nothing
    heavy."""
    from typing import Literal

    from jsonargparse import Namespace
    from lightning.pytorch.cli import LightningCLI

    class ZooCLI(LightningCLI):
        def init_parser(self, **kwargs):
            parser = super().init_parser(**kwargs)
            parser.allow_abbrev = False  # a typo such as --trainer.max_step must not pass as --trainer.max_steps
            return parser

        def add_arguments_to_parser(self, parser) -> None:
            parser.add_argument(
                "--ckpt_path", type=str | None, default=None,
                help="resume from this checkpoint; 'last' picks the last.ckpt that ModelCheckpoint saved (a damaged "
                     "one gives way to the newest intact checkpoint beside it)",
            )
            parser.add_argument("--overwrite", type=bool, default=False,
                                help="delete the checkpoints of an earlier run in this run's checkpoint directory")
            parser.add_argument("--progress", type=Literal["auto", "bar", "lines", "none"], default="auto",
                                help="progress display: a bar on a terminal and log lines otherwise (auto), or one")

        def before_instantiate_classes(self) -> None:
            """Keep everything of a run under ``trainer.default_root_dir``: CSV logs in ``logs/`` and checkpoints in
            a fixed ``checkpoints/`` (not per logger version), so that ``--ckpt_path last`` finds the previous
            run's."""
            trainer = self.config.trainer
            root = Path(trainer.default_root_dir or ".")
            if trainer.logger in (None, True):
                trainer.logger = Namespace(
                    class_path="lightning.pytorch.loggers.CSVLogger",
                    init_args=Namespace(save_dir=str(root), name="logs"))
            for cb in trainer.callbacks or []:
                if cb.class_path.endswith("ModelCheckpoint") and cb.init_args.get("dirpath") is None:
                    cb.init_args.dirpath = str(root / "checkpoints")

    return ZooCLI


def configure_trainer(trainer, progress: str) -> None:
    """What every zoo run gets beyond the YAML: atomic, weights-only checkpoint IO; the random generators in every
    checkpoint; and a progress display that works on a terminal and in a log file."""
    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
    from lightning.pytorch.callbacks import ProgressBar, RichProgressBar

    from .callbacks import AtomicCheckpointIO, LogProgress, RNGState, StepProgressBar

    if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # a user's own CheckpointIO stays
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()
    trainer.callbacks.append(RNGState())
    if progress == "auto":
        progress = "bar" if sys.stderr.isatty() else "lines"
    bars = [c for c in trainer.callbacks if isinstance(c, ProgressBar)]
    for bar in bars:
        trainer.callbacks.remove(bar)
    if progress == "bar" and bars:  # bars is empty when the YAML says enable_progress_bar: false
        keep = StepProgressBar() if type(bars[0]) is RichProgressBar else bars[0]  # a YAML's own bar stays
        trainer.callbacks.append(keep)
    elif progress == "lines":
        trainer.callbacks.append(LogProgress(every_n_steps=max(1, 5 * trainer.log_every_n_steps)))


def main(args: list[str] | None = None):
    from_command_line = args is None
    argv = sys.argv[1:] if from_command_line else list(args)
    with one_line_errors(PROG):
        if "--list" in argv:
            print_config_list()
            return None
        argv = _resolve_config_names(argv)
        import lightning as L

        from . import parallel  # noqa: F401  (registers the zoo_fsdp strategy name)
        from .checkpoints import resume_checkpoint

        if from_command_line:  # LightningCLI reads sys.argv itself (and warns when given both)
            sys.argv[1:] = argv
        cli = _make_cli_class()(
            L.LightningModule,
            L.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            run=False,
            save_config_kwargs={"overwrite": True},
            args=None if from_command_line else argv,
            parser_kwargs={"prog": PROG},
        )
        trainer = cli.trainer
        checkpoint_dirs = [Path(cb.dirpath) for cb in trainer.checkpoint_callbacks if cb.dirpath]
        ckpt_path = cli.config.get("ckpt_path")
        resume_from = None
        if ckpt_path is not None and ckpt_path not in ("best", "hpc", "registry"):
            if ckpt_path == "last" and not checkpoint_dirs:
                raise UserInputError("--ckpt_path last: this config saves no checkpoints (no ModelCheckpoint)")
            resume_from = resume_checkpoint(ckpt_path, checkpoint_dirs[0] if checkpoint_dirs else Path("."))
            ckpt_path = str(resume_from)
        overwrite = cli.config.get("overwrite", False)
        if trainer.is_global_zero or not overwrite:  # every rank refuses alike; only rank 0 deletes
            guard_run_directory(checkpoint_dirs, resume_from, overwrite)
        configure_trainer(trainer, cli.config.get("progress", "auto"))
        with warnings.catch_warnings():
            if resume_from is not None:  # the guard has checked the folder: Lightning's "not empty" warning is noise
                warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
            trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path)
        return cli


if __name__ == "__main__":
    main()
