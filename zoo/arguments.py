"""Argument types the command-line tools share: a nonsense number is an argument error that names the option and the
value (``--samples-per-depth -1``, ``--frames 0``), not a ZeroDivisionError deep in an eval.

Each factory returns an ``argparse`` ``type=`` callable; lists are comma-separated (``--lengths 512,1024``).
"""

from __future__ import annotations

import argparse
import math


def _number(cast, text: str, kind: str):
    try:
        value = cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def int_at_least(minimum: int):
    """An integer ≥ ``minimum`` (1 for counts and sizes)."""

    def parse(text: str) -> int:
        value = _number(int, text, "an integer")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be ≥ {minimum}, got {value}")
        return value

    parse.__name__ = f"integer ≥ {minimum}"
    return parse


def positive_float(text: str) -> float:
    value = _number(float, text, "a number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value:g}")
    return value


positive_float.__name__ = "number > 0"
positive_int = int_at_least(1)


def float_in(low: float, high: float, low_open: bool = False):
    """A number in [low, high] (``low_open``: (low, high])."""
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"

    def parse(text: str) -> float:
        value = _number(float, text, "a number")
        if (value <= low if low_open else value < low) or value > high:
            raise argparse.ArgumentTypeError(f"{value:g} is outside {interval}")
        return value

    parse.__name__ = f"number in {interval}"
    return parse


def number_list(cast, kind: str, low: float | None = None, high: float | None = None, low_open: bool = False):
    """Comma-separated numbers, each in [low, high] (``low_open``: (low, high]); at least one."""
    interval = (f"{'(' if low_open or low is None else '['}{'-∞' if low is None else f'{low:g}'}, "
                f"{'∞)' if high is None else f'{high:g}]'}")

    def parse(text: str) -> list:
        try:
            values = [_number(cast, part.strip(), kind) for part in text.split(",") if part.strip()]
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind}s, got {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind}s, got {text!r}")
        for v in values:
            if (low is not None and (v <= low if low_open else v < low)) or (high is not None and v > high):
                raise argparse.ArgumentTypeError(f"{v:g} is outside {interval}")
        return values

    parse.__name__ = f"comma-separated {kind}s"
    return parse


positive_ints = number_list(int, "integer", low=1)
positive_floats = number_list(float, "number", low=0, low_open=True)
fractions = number_list(float, "number", low=0, high=1)  # needle depths: fractions of the context
floats = number_list(float, "number")
ints = number_list(int, "integer")
