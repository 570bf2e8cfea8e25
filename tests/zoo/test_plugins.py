"""The core knows no modality: modalities (and a researcher's own packages) register through entry points."""

from __future__ import annotations

import ast
import json
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import torch

import zoo.plugins
from zoo.registry import CHECKPOINT_LAYOUTS, EVAL_TASKS, MIXERS, CheckpointLayout

ROOT = Path(__file__).resolve().parents[2]
CORE = [ROOT / "zoo", ROOT / "kernels", ROOT / "sequence_parallel"]
MODALITIES = sorted(p for p in (ROOT / "modalities").iterdir() if (p / "__init__.py").exists())


def imported_modules(path: Path, package: str) -> list[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved against ``package``)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.append(".".join(base + ([node.module] if node.module else [])))
            else:
                names.append(node.module)
    return names


def test_core_imports_no_modality():
    offenders = []
    for folder in CORE:
        for path in folder.rglob("*.py"):
            package = "zoo." + ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1]) \
                if folder.name != "zoo" else ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
            offenders += [f"{path.relative_to(ROOT)}: {m}" for m in imported_modules(path, package)
                          if "modalities" in m.split(".")]
    assert offenders == []


@pytest.mark.parametrize("modality", [p.name for p in MODALITIES])
def test_no_modality_imports_another(modality):
    others = {p.name for p in MODALITIES} - {modality}
    offenders = []
    for path in (ROOT / "modalities" / modality).rglob("*.py"):
        for m in imported_modules(path, f"zoo.modalities.{modality}"):
            parts = m.split(".")
            if parts[:2] == ["zoo", "modalities"] and len(parts) > 2 and parts[2] in others:
                offenders.append(f"{path.relative_to(ROOT)}: {m}")
    assert offenders == []


def test_every_modality_package_is_declared_as_a_plugin():
    declared = set(zoo.plugins.plugin_modules(zoo.plugins.MODEL_GROUP).values()) | set(
        zoo.plugins.plugin_modules(zoo.plugins.EVAL_GROUP).values())
    # the core's own causal LM registers through the same group, so that loading imports no family by hand
    assert "zoo.lm" in declared
    declared.discard("zoo.lm")
    for module in declared:
        assert (ROOT / "modalities" / Path(*module.split(".")[2:])).with_suffix(".py").exists(), module
    # every modality with eval tasks or model families is reachable
    assert {m.split(".")[2] for m in declared} == {p.name for p in MODALITIES}


@pytest.fixture
def plugin_package(tmp_path, monkeypatch):
    """A researcher's package outside the zoo, declaring one toy mixer, one eval task and one checkpoint layout."""
    pkg = tmp_path / "my_zoo_plugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "models.py").write_text('''
import json
import torch
from torch import nn
from zoo.registry import CHECKPOINT_LAYOUTS, CheckpointLayout, register_mixer


@register_mixer("toy_shift")
class ToyShift(nn.Module):
    def __init__(self, d_model, **kwargs):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x, ctx, state=None):
        return self.proj(torch.nn.functional.pad(x, (0, 0, 1, 0))[:, :-1])


def _is_mine(path):
    return (path / "my_layout.json").exists()


def _load(path, **overrides):
    from zoo.lm import CausalLM, LMConfig
    return CausalLM(LMConfig(**{**json.loads((path / "my_layout.json").read_text()), **overrides}))


CHECKPOINT_LAYOUTS.register("my_layout")(CheckpointLayout(detect=_is_mine, load=_load, tokenizer=None))
''')
    (pkg / "tasks.py").write_text('''
from zoo.registry import EVAL_TASKS


class Echo:
    help = "prints its argument"

    def add_arguments(self, p):
        p.add_argument("--word", required=True)

    def run(self, args):
        return {"word": args.word}


EVAL_TASKS.register("toy-echo")(Echo())
''')
    monkeypatch.syspath_prepend(str(tmp_path))
    real = zoo.plugins.entry_points
    extra = {zoo.plugins.MODEL_GROUP: [EntryPoint("mine", "my_zoo_plugin.models", zoo.plugins.MODEL_GROUP)],
             zoo.plugins.EVAL_GROUP: [EntryPoint("mine", "my_zoo_plugin.tasks", zoo.plugins.EVAL_GROUP)]}
    monkeypatch.setattr(zoo.plugins, "entry_points", lambda group: [*real(group=group), *extra.get(group, [])])
    monkeypatch.setattr(zoo.plugins, "_discovered", set())
    yield pkg
    for name in ("my_zoo_plugin", "my_zoo_plugin.models", "my_zoo_plugin.tasks"):
        sys.modules.pop(name, None)
    MIXERS._entries.pop("toy_shift", None)
    EVAL_TASKS._entries.pop("toy-echo", None)
    CHECKPOINT_LAYOUTS._entries.pop("my_layout", None)


def test_a_package_outside_the_zoo_plugs_in_a_mixer_a_layout_and_a_task(plugin_package, tmp_path):
    import zoo
    from zoo.eval import main

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    (ckpt / "my_layout.json").write_text(json.dumps(
        {"vocab_size": 32, "d_model": 16, "n_layer": 2, "n_head": 2, "layout": "toy_shift"}))
    model = zoo.load_pretrained(ckpt)  # the layout hook, found by discovery
    assert [type(b.mixer).__name__ for b in model.blocks] == ["ToyShift", "ToyShift"]
    ids = torch.randint(0, 32, (1, 7))
    out = model(ids).logits
    assert out.shape == (1, 7, 32)
    assert main(["toy-echo", "--word", "hello"]) == {"word": "hello"}


def test_a_plugin_that_fails_to_import_is_named(monkeypatch):
    broken = EntryPoint("broken", "no_such_module_for_zoo", zoo.plugins.MODEL_GROUP)
    monkeypatch.setattr(zoo.plugins, "entry_points", lambda group: [broken])
    monkeypatch.setattr(zoo.plugins, "_discovered", set())
    with pytest.raises(ImportError, match=r"zoo plugin 'broken' \(zoo.models: no_such_module_for_zoo\) failed"):
        zoo.plugins.discover(zoo.plugins.MODEL_GROUP)


def test_missing_entry_points_say_how_to_install(monkeypatch):
    monkeypatch.setattr(zoo.plugins, "entry_points", lambda group: [])
    monkeypatch.setattr(zoo.plugins, "_discovered", set())
    with pytest.raises(RuntimeError, match=r"no 'zoo.eval_tasks' entry points are installed.*pip install -e \."):
        zoo.plugins.discover(zoo.plugins.EVAL_GROUP)


def test_sequence_parallel_and_padding_read_the_mixers_declared_capability(plugin_package):
    from zoo.lm import CausalLM, LMConfig
    from zoo.plugins import MODEL_GROUP, discover

    discover(MODEL_GROUP)
    model = CausalLM(LMConfig(vocab_size=32, d_model=16, n_layer=2, n_head=2, layout="attention,toy_shift"))
    mask = torch.tensor([[0, 1, 1, 1]])
    with pytest.raises(ValueError, match=r"padding before real tokens, but this stack has \['ToyShift'\] layers"):
        model(torch.randint(0, 32, (1, 4)), attention_mask=mask)
    MIXERS.get("toy_shift").masked_attention = True  # declared: the padding mask is then trusted to reach it
    try:
        assert model(torch.randint(0, 32, (1, 4)), attention_mask=mask).logits.shape == (1, 4, 32)
    finally:
        del MIXERS.get("toy_shift").masked_attention
