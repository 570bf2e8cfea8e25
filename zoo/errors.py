"""The error base the command-line tools know: a problem with the user's input (a file, a field, a record, an
argument), whose message already names what is wrong. ``zoo.fit``, ``zoo.eval``, ``zoo.plan`` and the demos print
it as one ``error: …`` line and exit with status 1, without a traceback; anything else is a bug and keeps its
traceback."""

from __future__ import annotations

import sys
from contextlib import contextmanager


class UserInputError(Exception):
    """Base of the zoo's errors about inputs: checkpoints, data files, configs, arguments."""


@contextmanager
def one_line_errors(prog: str):
    """Turn a :class:`UserInputError` (or a missing file) raised inside into ``prog: error: message`` and exit 1."""
    try:
        yield
    except (UserInputError, FileNotFoundError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
