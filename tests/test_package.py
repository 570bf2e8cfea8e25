"""The install shape: one zoo namespace over the design's folders, and no GPU package imported at import time."""

import subprocess
import sys
from pathlib import Path

import pytest

import zoo

ROOT = Path(__file__).resolve().parents[1]


def test_folders_import_under_the_zoo_namespace():
    import zoo.kernels
    import zoo.modalities
    import zoo.sequence_parallel

    assert Path(zoo.kernels.__file__).parent == ROOT / "kernels"
    assert Path(zoo.modalities.__file__).parent == ROOT / "modalities"
    assert Path(zoo.sequence_parallel.__file__).parent == ROOT / "sequence_parallel"


def test_import_pulls_in_no_cuda_only_package():
    code = (
        "import sys, zoo, zoo.kernels, zoo.lm, zoo.loading, zoo.fit, zoo.eval, zoo.modalities.text;"
        "bad = [m for m in ('flash_attn', 'mamba_ssm', 'causal_conv1d') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_create_model_and_unknown_name():
    model = zoo.create_model("lm-tiny", n_layer=1)
    assert len(model.blocks) == 1
    assert "lm-tiny" in zoo.list_models()
    with pytest.raises(KeyError, match="unknown model 'lm-huge'; registered: .*lm-tiny"):
        zoo.create_model("lm-huge")


def _modules_after(argv: list[str]) -> set[str]:
    """The modules a command-line run of ``argv`` (``python -m ...``) has imported when it exits."""
    code = (
        "import runpy, sys; sys.argv = {argv!r}\n"
        "try:\n    runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
        "except SystemExit:\n    pass\n"
        "print('MODULES', ' '.join(sorted(sys.modules)))"
    ).format(argv=argv)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("MODULES "))
    return set(line.split()[1:])


HEAVY = ("torch", "lightning", "transformers", "timm", "matplotlib", "av", "numpy")


@pytest.mark.parametrize("argv", [["zoo.eval", "--help"], ["zoo.fit", "--list"], ["zoo.eval", "passkey", "--help"]])
def test_help_and_listings_import_nothing_heavy(argv):
    """Start-up is what a help screen costs: no torch, Lightning or modality code before it prints."""
    loaded = _modules_after(argv)
    assert not [m for m in HEAVY if m in loaded]
    assert not [m for m in loaded if m.startswith("zoo.modalities.") and not m.endswith((".eval", "modalities"))
                and m.count(".") > 2]


def test_fit_help_imports_lightning_but_no_modality():
    loaded = _modules_after(["zoo.fit", "--help"])
    assert "lightning" in loaded  # its help lists every Trainer option
    assert not [m for m in loaded if m.startswith("zoo.modalities")]
