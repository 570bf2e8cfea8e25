"""docs/extending.md does what it says: its `# my_ext/…` blocks are written to those files, and every other Python
block of a section runs, in order, in an empty folder; the modality section runs with the entry points of its
pyproject.toml block installed, and without importing my_ext by hand."""

from __future__ import annotations

import re
import sys
import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import zoo.plugins
import zoo.registry

PAGE = Path(__file__).resolve().parents[2] / "docs" / "extending.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def sections() -> dict[str, list[tuple[str, str]]]:
    """'## title' → [(language, code)] of the page, in order."""
    out: dict[str, list[tuple[str, str]]] = {}
    for part in re.split(r"^## ", PAGE.read_text(), flags=re.M)[1:]:
        title, _, body = part.partition("\n")
        out[title.strip()] = BLOCK.findall(body)
    return out


def files(blocks) -> dict[str, str]:
    return {code.split("\n", 1)[0][2:].strip(): code for lang, code in blocks
            if lang == "python" and code.startswith("# my_ext/")}


def runnable(blocks) -> list[str]:
    return [code for lang, code in blocks if lang == "python" and not code.startswith("# my_ext/")]


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """An empty folder on sys.path with the page's files, registries restored afterwards."""
    every_file = {name: code for blocks in sections().values() for name, code in files(blocks).items()}
    (tmp_path / "my_ext").mkdir()
    (tmp_path / "my_ext" / "__init__.py").write_text("")
    for name, code in every_file.items():
        (tmp_path / name).write_text(code)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    zoo.plugins.discover(zoo.plugins.MODEL_GROUP)  # the zoo's own entries, before the snapshot that is restored
    zoo.plugins.discover(zoo.plugins.EVAL_GROUP)
    registries = [r for r in vars(zoo.registry).values() if isinstance(r, zoo.registry.Registry)]
    saved = [dict(r._entries) for r in registries]
    yield tmp_path
    for r, entries in zip(registries, saved):
        r._entries = entries
    for name in [m for m in sys.modules if m == "my_ext" or m.startswith("my_ext.")]:
        del sys.modules[name]


def run_section(title: str) -> None:
    codes = runnable(sections()[title])
    assert codes, f"docs/extending.md section {title!r} has no runnable block"
    for i, code in enumerate(codes):
        exec(compile(code, f"docs/extending.md [{title}, block {i + 1}]", "exec"), {"__name__": "__doc_block__"})


def test_the_page_has_the_sections_the_house_promises():
    assert {"Add a mixer", "Add a position scheme", "Add a model family with its Hugging Face loader",
            "Add an eval task", "Add a modality"} <= set(sections())
    assert set(files(sum(sections().values(), []))) == {"my_ext/mixers.py", "my_ext/positions.py",
                                                         "my_ext/bigram.py", "my_ext/tasks.py", "my_ext/models.py"}


@pytest.mark.parametrize("title, registry, name", [
    ("Add a mixer", "MIXERS", "causal_mean"),
    ("Add a position scheme", "POSITIONS", "skip"),
    ("Add a model family with its Hugging Face loader", "ARCHITECTURES", "toy_bigram"),
    ("Add an eval task", "EVAL_TASKS", "copy"),
])
def test_section_runs_as_written(workspace, title, registry, name):
    """Each section's blocks assert what they show; afterwards, what the page added is registered under its name."""
    entries = getattr(zoo.registry, registry)
    assert name not in entries
    run_section(title)
    assert name in entries


def test_a_modality_plugs_in_through_its_declared_entry_points(workspace, monkeypatch):
    (toml,) = [code for lang, code in sections()["Add a modality"] if lang == "toml"]
    declared = tomllib.loads(toml)["project"]["entry-points"]
    ours = tomllib.loads((PAGE.parents[1] / "pyproject.toml").read_text())["project"]["entry-points"]
    assert set(declared) == set(ours) == {zoo.plugins.MODEL_GROUP, zoo.plugins.EVAL_GROUP}
    extra = {group: [EntryPoint(name, module, group) for name, module in eps.items()]
             for group, eps in declared.items()}
    real = zoo.plugins.entry_points
    monkeypatch.setattr(zoo.plugins, "entry_points", lambda group: [*real(group=group), *extra.get(group, [])])
    monkeypatch.setattr(zoo.plugins, "_discovered", set())
    assert "my_ext.models" not in sys.modules
    run_section("Add a modality")
    assert "my_ext.models" in sys.modules  # found through the entry point, not imported by the block
