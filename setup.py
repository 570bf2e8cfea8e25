"""Package discovery for the layout of pyproject.toml's [tool.setuptools] note: four source folders install under
one ``zoo`` namespace, so every package below them is found here rather than listed by hand (a new mixer folder or
modality needs no edit)."""

from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
ROOTS = {"zoo": "zoo", "zoo.kernels": "kernels", "zoo.modalities": "modalities",
         "zoo.sequence_parallel": "sequence_parallel"}


def packages() -> list[str]:
    found = []
    for name, folder in ROOTS.items():
        for init in sorted((HERE / folder).rglob("__init__.py")):
            init = init.relative_to(HERE)
            parts = init.parent.relative_to(folder).parts
            found.append(".".join((name, *parts)))
    return sorted(set(found))


setup(package_dir=ROOTS, packages=packages())
