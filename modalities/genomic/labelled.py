"""Labelled sequences for downstream tasks, read in the benchmarks' own layouts.

- GenomicBenchmarks: ``DIR/train/<class>/<id>.txt`` and ``DIR/test/<class>/<id>.txt``, one sequence per file;
  classes sorted by name (label i = the i-th class folder).
- The Nucleotide Transformer downstream tasks: a CSV or Parquet table with ``sequence`` and ``label`` columns (and an
  optional ``name``); ``DIR/train.csv`` / ``DIR/test.csv`` (or ``.parquet``) for a folder.
- FASTA with the label in the header (``>id|label``), and TSV ``sequence<TAB>label`` (a header line ``sequence	label``
  is allowed).

:func:`read_labelled` returns a :class:`LabelledSequences` whose every record remembers where it came from
(``file:line``), so that errors can name it. Bad input raises :class:`LabelledDataError` naming the file and the
line (or the row): an empty sequence, a missing or malformed label, characters outside the alphabet, a class folder
without files. Nothing is skipped or reordered: records keep file order (GenomicBenchmarks: class, then file name).
:func:`validation_split` takes a fixed, seeded fraction of the training records (GenomicBenchmarks' 90/10), and
:func:`crop_span` refuses sequences longer than the model takes, unless a truncation side is named.
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

SPLITS = ("train", "test")
TABLE_SUFFIXES = (".csv", ".parquet")
FASTA_SUFFIXES = (".fa", ".fasta", ".fna")
DNA_ALPHABET = frozenset("ACGTNacgtn")
TRUNCATE = ("left", "right", "center")
TASKS = ("classification", "regression", "token_classification")


class LabelledDataError(ValueError):
    """A labelled-sequence file that cannot be read exactly; the message names the file and line."""


@dataclass
class LabelledSequences:
    sequences: list[str]
    labels: list  # int class ids, or floats for regression
    names: list[str]
    where: list[str]  # "file:line" (or "file:row N") of each record, for error messages
    classes: list[str] | None = None  # class names by id, when the layout names them (GenomicBenchmarks)
    source: str = ""
    task: str = field(default="classification")  # or "regression", or "token_classification" (a class per base)

    def __len__(self) -> int:
        return len(self.sequences)

    def add(self, sequence: str, label, name: str, where: str) -> None:
        self.sequences.append(sequence)
        self.labels.append(label)
        self.names.append(name)
        self.where.append(where)

    def subset(self, indices: list[int]) -> LabelledSequences:
        pick = lambda xs: [xs[i] for i in indices]  # noqa: E731
        return LabelledSequences(pick(self.sequences), pick(self.labels), pick(self.names), pick(self.where),
                                 self.classes, self.source, self.task)

    @property
    def n_classes(self) -> int | None:
        if self.task == "regression":
            return None
        if self.task == "token_classification":
            return max(max(labels) for labels in self.labels) + 1
        return len(self.classes) if self.classes is not None else max(self.labels) + 1


def read_labelled(path: str | Path, split: str = "train", task: str = "classification",
                  alphabet: frozenset[str] | None = DNA_ALPHABET) -> LabelledSequences:
    """The ``split`` of a labelled dataset at ``path`` (a GenomicBenchmarks / table folder, or one file)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.is_dir():
        if (path / split).is_dir():
            data = _read_genomic_benchmarks(path / split, task)
        else:
            tables = [path / f"{split}{s}" for s in TABLE_SUFFIXES if (path / f"{split}{s}").exists()]
            if not tables:
                found = sorted(p.name for p in path.iterdir())
                raise LabelledDataError(f"{path}: expected {split}/<class>/*.txt (GenomicBenchmarks) or "
                                        f"{split}.csv / {split}.parquet; found {found}")
            data = _read_table(tables[0], task)
    elif path.suffix.lower() in TABLE_SUFFIXES:
        data = _read_table(path, task)
    elif path.suffix.lower() in FASTA_SUFFIXES:
        data = _read_fasta(path, task)
    elif path.suffix.lower() == ".tsv":
        data = _read_tsv(path, task)
    else:
        raise LabelledDataError(f"{path}: not a labelled-sequence layout (a folder, .csv, .parquet, "
                                f"{', '.join(FASTA_SUFFIXES)} or .tsv)")
    if not len(data):
        raise LabelledDataError(f"{data.source}: no records")
    if task == "token_classification":
        for seq, labels, where in zip(data.sequences, data.labels, data.where):
            if len(labels) != len(seq):
                raise LabelledDataError(f"{where}: {len(labels)} per-base labels for a sequence of {len(seq)} bases")
    if alphabet is not None:
        for seq, where in zip(data.sequences, data.where):
            bad = set(seq) - alphabet
            if bad:
                raise LabelledDataError(f"{where}: characters {''.join(sorted(bad))!r} are not in the alphabet "
                                        f"{''.join(sorted(alphabet))}")
    return data


def _label(text: str, task: str, where: str):
    text = text.strip()
    if task == "token_classification":  # one class id per base: "0,0,1,2", "0 0 1 2" or "0012"
        parts = text.replace(",", " ").split() if ("," in text or " " in text) else list(text)
        if not parts or not all(p.isdigit() for p in parts):
            raise LabelledDataError(f"{where}: per-base labels {text[:40]!r} are not class ids (e.g. 0,0,1 or 001)")
        return [int(p) for p in parts]
    try:
        if task == "regression":
            value = float(text)
            if not math.isfinite(value):
                raise ValueError
            return value
        value = int(text)
        if value < 0:
            raise ValueError
        return value
    except ValueError:
        kind = "a finite number" if task == "regression" else "a class id ≥ 0"
        raise LabelledDataError(f"{where}: label {text!r} is not {kind}") from None


def _sequence(text: str, where: str) -> str:
    seq = text.strip()
    if not seq:
        raise LabelledDataError(f"{where}: empty sequence")
    return seq


def _read_genomic_benchmarks(folder: Path, task: str) -> LabelledSequences:
    if task != "classification":
        raise LabelledDataError(f"{folder}: the GenomicBenchmarks layout holds classes, not regression targets")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise LabelledDataError(f"{folder}: no class folders")
    out = LabelledSequences([], [], [], [], classes=classes, source=str(folder), task=task)
    for label, name in enumerate(classes):
        files = sorted((folder / name).glob("*.txt"))
        if not files:
            raise LabelledDataError(f"{folder / name}: a class folder without .txt files")
        for f in files:
            lines = [line for line in f.read_text().splitlines() if line.strip()]
            if len(lines) != 1:
                raise LabelledDataError(f"{f}:1: expected one sequence per file, found {len(lines)} lines")
            out.add(_sequence(lines[0], f"{f}:1"), label, f.stem, f"{f}:1")
    return out


def _read_table(path: Path, task: str) -> LabelledSequences:
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ImportError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
        table = pq.read_table(path)
        columns = table.column_names
        rows = table.to_pylist()
        where = [f"{path}:row {i + 1}" for i in range(len(rows))]
    else:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            rows = list(reader)
        where = [f"{path}:{i + 2}" for i in range(len(rows))]  # line 1 is the header
    missing = [c for c in ("sequence", "label") if c not in columns]
    if missing:
        raise LabelledDataError(f"{path}: no {' or '.join(missing)} column (columns: {', '.join(columns)})")
    out = LabelledSequences([], [], [], [], source=str(path), task=task)
    for i, (row, w) in enumerate(zip(rows, where)):
        if row["sequence"] is None or row["label"] is None:
            raise LabelledDataError(f"{w}: missing {'sequence' if row['sequence'] is None else 'label'}")
        name = str(row["name"]) if row.get("name") is not None else str(i)
        out.add(_sequence(str(row["sequence"]), w), _label(str(row["label"]), task, w), name, w)
    return out


def _read_fasta(path: Path, task: str) -> LabelledSequences:
    out = LabelledSequences([], [], [], [], source=str(path), task=task)
    lines = path.read_text().splitlines()
    header_line, chunks = None, []

    def close():
        if header_line is None:
            return
        i, header = header_line
        w = f"{path}:{i}"
        name, sep, label = header[1:].strip().rpartition("|")
        if not sep:
            raise LabelledDataError(f"{w}: header {header!r} has no '|label' (expected >id|label)")
        out.add(_sequence("".join(chunks), w), _label(label, task, w), name, w)

    for i, line in enumerate(lines, 1):
        if line.startswith(">"):
            close()
            header_line, chunks = (i, line), []
        elif line.strip():
            if header_line is None:
                raise LabelledDataError(f"{path}:{i}: sequence before the first '>' header")
            chunks.append(line.strip())
    close()
    return out


def _read_tsv(path: Path, task: str) -> LabelledSequences:
    out = LabelledSequences([], [], [], [], source=str(path), task=task)
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if i == 1 and [f.strip().lower() for f in fields] == ["sequence", "label"]:
            continue
        w = f"{path}:{i}"
        if len(fields) != 2:
            raise LabelledDataError(f"{w}: expected 'sequence<TAB>label', found {len(fields)} tab-separated fields")
        out.add(_sequence(fields[0], w), _label(fields[1], task, w), str(len(out)), w)
    return out


def validation_split(data: LabelledSequences, fraction: float = 0.1,
                     seed: int = 0) -> tuple[LabelledSequences, LabelledSequences]:
    """(train, validation): a seeded ``fraction`` of the records held out, both parts in their original order."""
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    n_val = max(1, round(len(data) * fraction))
    if n_val >= len(data):
        raise LabelledDataError(f"{data.source}: {len(data)} records are too few to hold out {fraction:.0%}")
    held = set(random.Random(seed).sample(range(len(data)), n_val))
    return (data.subset([i for i in range(len(data)) if i not in held]),
            data.subset([i for i in range(len(data)) if i in held]))


def crop_span(length: int, max_len: int, truncate: str | None, where: str) -> tuple[int, int]:
    """[start, end) of a ``length``-base record kept under ``max_len``: the whole record when it fits; longer is an
    error unless ``truncate`` names the side to cut (``left`` keeps the end, ``right`` the start, ``center`` the
    middle)."""
    if length <= max_len:
        return 0, length
    if truncate is None:
        raise LabelledDataError(f"{where}: sequence of {length} bases is longer than max_len {max_len}; set "
                                f"truncate: left, right or center to cut it")
    if truncate not in TRUNCATE:
        raise ValueError(f"truncate must be one of {', '.join(TRUNCATE)} or null, got {truncate!r}")
    start = {"left": length - max_len, "right": 0, "center": (length - max_len) // 2}[truncate]
    return start, start + max_len


def fit_length(seq: str, max_len: int, truncate: str | None, where: str) -> str:
    """``seq`` cut to :func:`crop_span`."""
    start, end = crop_span(len(seq), max_len, truncate, where)
    return seq[start:end]
