"""Genomic entries of ``python -m zoo.eval``: the DNA passkey variant of the passkey task (character tokens).
Light on purpose: ``--help`` imports it; the samples and scorers are imported when a DNA checkpoint is evaluated."""

from __future__ import annotations

from zoo.registry import PASSKEY_VARIANTS


@PASSKEY_VARIANTS.register("char")
def dna_passkey(data_hparams: dict, model) -> dict:
    """Character-token checkpoints retrieve a ``key_len``-base DNA key; a masked LM is scored at its [MASK]s."""
    from .passkey import eval_hooks

    key_len = data_hparams.get("key_len", 6)
    masked = not getattr(model, "is_causal", True)
    make_set, score = eval_hooks(key_len, masked)
    return {"kind": "dna", "key_len": key_len, "masked": masked, "make_set": make_set, "score": score}
