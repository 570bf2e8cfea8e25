"""The Lightning base module of every modality: it builds (or loads) the network of a registered architecture and
records what ``zoo.load_pretrained`` needs to rebuild it from the checkpoint alone.

A subclass calls :meth:`ZooModule.init_model` once in ``__init__`` instead of ``save_hyperparameters``::

    class MyModule(ZooModule):
        def __init__(self, model: MyConfig, lr: float = 1e-3, pretrained: str | None = None):
            super().__init__()
            self.init_model(MyModel, model, pretrained=pretrained, hparams={"lr": lr})

The checkpoint then holds ``hyper_parameters.zoo_model = {"arch", "config", "prefix"[, "tokenizer"]}`` in plain
types (it loads with ``weights_only=True``), and ``--model.init_args.pretrained PATH`` starts from released weights
or an earlier run: a Hugging Face directory, a hub id, or a ``.ckpt`` of ``zoo.fit``.
"""

from __future__ import annotations

from typing import Any, Callable

import lightning as L
from torch import nn

from .checkpoints import MODEL_PREFIX, ZOO_MODEL_KEY


def zoo_model_metadata(model: nn.Module, tokenizer: str | None = None) -> dict:
    """The ``zoo_model`` entry for ``model`` (a registered architecture)."""
    meta: dict[str, Any] = {"arch": type(model).arch, "config": model.config_dict(), "prefix": MODEL_PREFIX}
    if tokenizer is not None:  # evals that need the token set (the DNA passkey) read it from here
        meta["tokenizer"] = tokenizer
    return meta


class ZooModule(L.LightningModule):
    """Holds the network as ``self.model``; see the module docstring."""

    model: nn.Module

    def init_model(self, architecture: type, config, *, pretrained: str | None = None,
                   pretrained_overrides: dict | None = None, tokenizer: str | None = None,
                   hparams: dict | None = None, check: Callable[[Any], None] | None = None) -> nn.Module:
        """Build ``architecture(config)``, or load ``pretrained`` (whose own config then decides the shape;
        ``pretrained_overrides`` are config fields the YAML still sets, e.g. LongVA's V2PE δ), run ``check`` on the
        config that will be trained, record ``zoo_model`` beside ``hparams``, and set ``self.model``."""
        if pretrained:
            from .loading import load_pretrained

            model = load_pretrained(pretrained, **(pretrained_overrides or {}))
            if not isinstance(model, architecture):
                raise ValueError(f"pretrained={pretrained!r} holds a {type(model).__name__}, not a "
                                 f"{architecture.__name__} ({architecture.arch}) model")
            model.train()
            if check is not None:
                check(model.config)
        else:
            if check is not None:
                check(config)
            model = architecture(config)
        self.save_hyperparameters({ZOO_MODEL_KEY: zoo_model_metadata(model, tokenizer), **(hparams or {})})
        self.model = model
        return model
