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
