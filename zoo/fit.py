"""``python -m zoo.fit --config configs/NAME.yaml [--trainer.max_steps 50] [--ckpt_path last]``

LightningCLI over any zoo LightningModule / LightningDataModule (given by class_path in the YAML): ``--print_config``,
command-line overrides, a clear error naming a mistyped key, checkpoints, resume, loggers and the progress bar all
come from Lightning; this file only adds ``--ckpt_path`` so that no ``fit`` subcommand is needed.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from jsonargparse import Namespace
from lightning.pytorch.cli import LightningCLI

from . import parallel  # noqa: F401  (registers the zoo_fsdp strategy name)


class ZooCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--ckpt_path", type=str | None, default=None,
            help="resume from this checkpoint; 'last' picks the last.ckpt that ModelCheckpoint saved",
        )

    def before_instantiate_classes(self) -> None:
        """Keep everything of a run under ``trainer.default_root_dir``: CSV logs in ``logs/`` and checkpoints in a
        fixed ``checkpoints/`` (not per logger version), so that ``--ckpt_path last`` finds the previous run's."""
        trainer = self.config.trainer
        root = Path(trainer.default_root_dir or ".")
        if trainer.logger in (None, True):
            trainer.logger = Namespace(
                class_path="lightning.pytorch.loggers.CSVLogger", init_args=Namespace(save_dir=str(root), name="logs")
            )
        for cb in trainer.callbacks or []:
            if cb.class_path.endswith("ModelCheckpoint") and cb.init_args.get("dirpath") is None:
                cb.init_args.dirpath = str(root / "checkpoints")


def main(args: list[str] | None = None) -> ZooCLI:
    cli = ZooCLI(
        L.LightningModule,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        run=False,
        save_config_kwargs={"overwrite": True},
        args=args,
        parser_kwargs={"prog": "python -m zoo.fit"},
    )
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.get("ckpt_path"))
    return cli


if __name__ == "__main__":
    main()
