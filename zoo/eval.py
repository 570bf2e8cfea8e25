"""``python -m zoo.eval TASK [options]`` — every task prints a table and writes its figures as JSON (``--json PATH``).

Accuracy tasks write ``{"accuracy": {"<length>": value, …}, …}``; tasks with depths add
``"accuracy_by_depth": {"<length>": {"<depth>": value}}``. Tasks register themselves in ``zoo.registry.EVAL_TASKS``
as objects with ``help``, ``add_arguments(parser)`` and ``run(args) -> dict``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import one_line_errors
from .plugins import EVAL_GROUP, discover
from .registry import EVAL_TASKS

PROG = "python -m zoo.eval"


def build_parser(tasks: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser, with the options of ``tasks`` (all when None). Options can need the task's data module (choices
    of splits, say), so ``main`` builds only the chosen task's, and ``--help`` lists the tasks without importing
    any model, data or torch."""
    discover(EVAL_GROUP)  # every installed modality's tasks (zoo.plugins)
    # abbreviations off: --frame must not pass for --frames
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0], allow_abbrev=False)
    sub = parser.add_subparsers(dest="task", required=True, metavar="TASK")
    for name in EVAL_TASKS.names():
        task = EVAL_TASKS.get(name)
        p = sub.add_parser(name, help=task.help, description=task.help, allow_abbrev=False)
        if tasks is None or name in tasks:
            task.add_arguments(p)
            p.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    return parser


def write_json(result: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser([chosen] if chosen else [])
    args = parser.parse_args(argv)
    with one_line_errors(PROG):
        result = EVAL_TASKS.get(args.task).run(args)
    if args.json is not None:
        write_json(result, args.json)
        print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
