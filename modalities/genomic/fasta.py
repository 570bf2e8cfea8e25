"""FASTA windows for genomic language models, read through pyfaidx (random access by the .fai index).

``FastaWindows(paths, window)`` serves fixed-length windows over every record of one or more FASTA files, plain or
bgzip-compressed. The ``.fai`` (and ``.gzi``) index is read from next to the file when samtools (or anything else)
made one there, else built into the cache and rebuilt when the file changes (:func:`open_fasta`); nothing is written
next to the FASTA unless ``index_next_to_fasta=True``:

- ``mode="random"``: ``num_samples`` windows, each drawn from a record chosen in proportion to its length, at a
  uniform start; item ``i`` is the same on every call (seeded by ``seed`` and ``i``).
- ``mode="tiled"``: every window at ``stride`` (default ``window``) over every record, in file order.
- ``span=(lo, hi)``: only that fraction of each record (e.g. (0, 0.9) to train, (0.9, 1) to validate).

Soft-masked (lowercase) bases are kept as they are, or upper-cased with ``uppercase=True``. ``reverse_complement``
("random": each window is flipped with probability ½; "always"; or None) augments by strand. A window whose fraction
of N exceeds ``max_n_fraction`` is skipped and counted (``skipped``): tiled mode leaves it out, random mode draws
again. A malformed file (inconsistent line lengths, a blank line inside a record, a record name used twice, no '>'
header, binary data, a truncated bgzip file) raises :class:`FastaFormatError` naming the file, and the record and
line where there is one — never a wrong sequence. Record names need only be unique within a file: records are keyed
by (file, name), and each item says which file it came from.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import logging
import os
import re
import struct
import uuid
import zlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from zoo.paths import cache_dir

from .tokenizers import CharTokenizer, SequenceTokenizer

log = logging.getLogger(__name__)
COMPLEMENT = str.maketrans("ACGTNacgtnRYKMSWBDHVrykmswbdhv", "TGCANtgcanYRMKSWVHDByrmkswvhdb")


class FastaFormatError(ValueError):
    """A FASTA file that cannot be indexed exactly; the message names the file, record and line."""


def reverse_complement(seq: str) -> str:
    return seq.translate(COMPLEMENT)[::-1]


def open_fasta(path: str | Path, index_next_to_fasta: bool = False):
    """pyfaidx.Fasta over ``path`` (plain or bgzip); errors name the file (and the record and line where there is one).

    The ``.fai`` (and, for bgzip, ``.gzi``) index is read from next to the file when one is there and not older than
    the FASTA (samtools faidx makes the same files); it is never rewritten. Otherwise the index is built into the
    cache, ``cache_dir() / "fai"``, named by the file's resolved path, size and modification time, so that a FASTA
    rewritten in place (even with an older mtime, which pyfaidx alone would miss) gets a new index.
    ``index_next_to_fasta=True`` writes it next to the file instead (pyfaidx's default, rebuilt when older than the
    FASTA); the folder must then be writable.
    """
    import pyfaidx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such FASTA file")
    bgzip = path.name.lower().endswith((".bgz", ".gz"))  # pyfaidx's own test for a compressed file
    fai, gzi = Path(f"{path}.fai"), Path(f"{path}.gzi")
    building: tuple[Path, Path, Path, Path] | None = None  # (temporary .fai, .gzi, final .fai, .gzi) in the cache
    if index_next_to_fasta:
        kwargs = {}
        if not (_fresh(fai, path) and (_fresh(gzi, path) or not bgzip)) and not _writable(path.parent):
            raise PermissionError(f"{path}: cannot write its index next to it ({path.parent} is read-only); leave "
                                  "index_next_to_fasta False to keep the index in the cache")
    elif _fresh(fai, path) and (_fresh(gzi, path) or not bgzip):
        kwargs = {"indexname": str(fai), "gzi_indexname": str(gzi), "rebuild": False, "build_index": False}
    else:
        cached_fai, cached_gzi = _cached_index(path)
        if cached_fai.exists() and (cached_gzi.exists() or not bgzip):
            kwargs = {"indexname": str(cached_fai), "gzi_indexname": str(cached_gzi)}
        else:
            # built under a name of its own, then renamed: parallel workers or ranks never read a half-written index
            tmp = cached_fai.with_name(f"{cached_fai.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
            building = (tmp.with_suffix(".fai"), tmp.with_suffix(".gzi"), cached_fai, cached_gzi)
            kwargs = {"indexname": str(building[0]), "gzi_indexname": str(building[1])}
    try:
        fasta = pyfaidx.Fasta(str(path), sequence_always_upper=False, read_ahead=1 << 16, **kwargs)
    except Exception as e:
        if building:
            for part in building[:2]:
                part.unlink(missing_ok=True)
        error = _format_error(path, e, bgzip, kwargs.get("indexname") if "build_index" in kwargs else None)
        if error is None:
            raise
        raise error from e
    if building:
        for part, final in zip(building[:2], building[2:]):
            if part.exists():
                os.replace(part, final)
        _drop_older_cached_indexes(path, building[2])
    return fasta


def _fresh(index: Path, fasta: Path) -> bool:
    """pyfaidx's rule: an index is current unless the FASTA was modified after it."""
    return index.is_file() and index.stat().st_mtime >= fasta.stat().st_mtime


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & 0o200)  # root passes os.access alone


def _cached_index(path: Path) -> tuple[Path, Path]:
    """(.fai, .gzi) in the cache for ``path`` as it is now: a changed size or mtime names another index."""
    st = path.stat()
    return tuple(_cache_folder() / f"{_cache_prefix(path)}{st.st_size}-{st.st_mtime_ns}.{kind}"
                 for kind in ("fai", "gzi"))


def _cache_folder() -> Path:
    where = cache_dir() / "fai"
    where.mkdir(parents=True, exist_ok=True)
    return where


def _cache_prefix(path: Path) -> str:
    return f"{path.name}.{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16]}."


def _drop_older_cached_indexes(path: Path, current: Path) -> None:
    """Remove the cached indexes of earlier versions of ``path`` (and the unstamped ones of the layout before)."""
    prefix = _cache_prefix(path)
    older = re.compile(re.escape(prefix) + r"(\d+-\d+\.)?(fai|gzi)")  # not another process's .tmp index
    for other in current.parent.glob(glob.escape(prefix) + "*"):
        if older.fullmatch(other.name) and other.stem != current.stem:
            other.unlink(missing_ok=True)


def _format_error(path: Path, e: Exception, bgzip: bool, index: str | None) -> FastaFormatError | None:
    """The one-line FastaFormatError for what pyfaidx (or Biopython's BGZF reader) raised on ``path``, or None when
    ``e`` is not about the file's content (a permission error, say)."""
    import pyfaidx

    message = str(e)
    if isinstance(e, pyfaidx.UnsupportedCompressionFormat):
        if not bgzip:  # .bz2, .zip
            return FastaFormatError(f"{path}: pyfaidx reads compressed FASTA only as bgzip (.gz, .bgz); recompress "
                                    "with bgzip")
        with path.open("rb") as f:
            gzipped = f.read(2) == b"\x1f\x8b"
        if not gzipped:
            return FastaFormatError(f"{path}: named like a bgzip file but not gzip-compressed at all (damaged, or "
                                    "misnamed?)")
        return FastaFormatError(f"{path}: compressed with plain gzip; recompress with bgzip ({e})")
    if isinstance(e, pyfaidx.FastaIndexingError):
        if m := re.match(r"Unexpected text before the first sequence definition line in .* at line (\d+)\.", message):
            return FastaFormatError(f"{path}, line {m[1]}: text before the first '>' header; a FASTA file starts "
                                    "with a '>name' line (comment lines with ';')")
        if m := re.match(r"Bad sequence name .* at line (\d+)\.", message):  # pyfaidx counts this line from 0
            return FastaFormatError(f"{path}, line {int(m[1]) + 1}: a '>' header without a record name")
        if "does not contain a valid sequence" in message:
            what = "is empty" if path.stat().st_size == 0 else "holds no FASTA record (no line starts with '>')"
            return FastaFormatError(f"{path} {what}")
        return FastaFormatError(f"{path}: {e}")
    if isinstance(e, UnicodeDecodeError):
        return FastaFormatError(f"{path}, line {_first_line_that_is_not_text(path, bgzip)}: bytes that are not "
                                "text; is this a FASTA file?")
    if isinstance(e, ValueError) and (m := re.fullmatch(r'Duplicate key "(.*)"', message)):
        lines = _header_lines(path, bgzip, m[1])
        if len(lines) < 2 and index is not None:
            return FastaFormatError(f"{path}: its index {index} lists record {m[1]!r} twice; rebuild the index "
                                    "(samtools faidx) or remove it")
        return FastaFormatError(f"{path}: record name {m[1]!r} is used twice (headers at lines "
                                f"{' and '.join(map(str, lines[:2]))}); record names must be unique within a file")
    if index is not None and isinstance(e, (ValueError, pyfaidx.IndexNotFoundError)):
        return FastaFormatError(f"{path}: its index {index} cannot be read ({e}); rebuild it (samtools faidx) or "
                                "remove it")
    if bgzip and isinstance(e, (struct.error, zlib.error, EOFError, RuntimeError, ValueError, OSError)) \
            and not isinstance(e, (PermissionError, FileNotFoundError, pyfaidx.FastaNotFoundError)):
        return FastaFormatError(f"{path}: truncated or damaged bgzip file ({e})")
    return None


def _lines(path: Path, bgzip: bool):
    with (gzip.open(path, "rb") if bgzip else path.open("rb")) as f:  # a BGZF file is a valid multi-member gzip
        yield from enumerate(f, 1)


def _first_line_that_is_not_text(path: Path, bgzip: bool) -> int | None:
    for number, line in _lines(path, bgzip):
        try:
            line.decode()
        except UnicodeDecodeError:
            return number
    return None


def _header_lines(path: Path, bgzip: bool, name: str) -> list[int]:
    """Line numbers of the headers naming ``name`` (the first word after '>', as pyfaidx keys records)."""
    found = []
    for number, line in _lines(path, bgzip):
        if line.startswith(b">") and line[1:].split()[:1] == [name.encode()]:
            found.append(number)
            if len(found) == 2:
                break
    return found


class FastaWindows(Dataset):
    def __init__(self, paths: str | Path | list[str | Path], window: int, mode: str = "random",
                 num_samples: int = 10_000, stride: int | None = None, uppercase: bool = True,
                 reverse_complement: str | None = None, max_n_fraction: float = 0.5,
                 tokenizer: SequenceTokenizer | None = None, add_special_tokens: bool = False, seed: int = 0,
                 span: tuple[float, float] = (0.0, 1.0), index_next_to_fasta: bool = False):
        if mode not in ("random", "tiled"):
            raise ValueError(f"mode must be 'random' or 'tiled', got {mode!r}")
        if reverse_complement not in (None, "random", "always"):
            raise ValueError(f"reverse_complement must be None, 'random' or 'always', got {reverse_complement!r}")
        if window < 1:
            raise ValueError(f"window must be ≥ 1, got {window}")
        self.paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
        if not self.paths:
            raise ValueError("FastaWindows needs at least one FASTA file")
        self.window, self.mode, self.num_samples = window, mode, num_samples
        self.stride = stride or window
        self.uppercase, self.rc, self.max_n_fraction = uppercase, reverse_complement, max_n_fraction
        self.tokenizer = tokenizer or CharTokenizer()
        self.add_special_tokens, self.seed = add_special_tokens, seed
        if not 0 <= span[0] < span[1] <= 1:
            raise ValueError(f"span must be (lo, hi) with 0 ≤ lo < hi ≤ 1, got {span}")
        self.span = tuple(span)
        self.skipped = 0
        self._fastas = [open_fasta(p, index_next_to_fasta) for p in self.paths]
        # (file index, record name, first base, length) of every record part in ``span`` long enough for a window
        self.records = []
        for f, fa in enumerate(self._fastas):
            for name in fa.keys():
                n = len(fa[name])
                lo, hi = int(span[0] * n), int(span[1] * n)
                if hi - lo >= window:
                    self.records.append((f, name, lo, hi - lo))
        if not self.records:
            longest = max((len(fa[n]) for fa in self._fastas for n in fa.keys()), default=0)
            raise ValueError(f"no record in {', '.join(map(str, self.paths))} holds a {window}-base window "
                             f"(longest: {longest})")
        if mode == "tiled":
            self.windows = []
            for r, (f, name, lo, length) in enumerate(self.records):
                for start in range(lo, lo + length - window + 1, self.stride):
                    if self._too_many_n(self._read(f, name, start)):
                        self.skipped += 1
                    else:
                        self.windows.append((r, start))
            if self.skipped:
                log.info("FastaWindows: %d of %d tiled windows skipped (N fraction > %g)", self.skipped,
                         self.skipped + len(self.windows), max_n_fraction)
            if not self.windows:
                raise ValueError(f"every window of {', '.join(map(str, self.paths))} is more than "
                                 f"{max_n_fraction:.0%} N")
        lengths = np.array([n for _, _, _, n in self.records], dtype=np.float64)
        self._weights = (lengths - window + 1) / (lengths - window + 1).sum()

    def __len__(self) -> int:
        return self.num_samples if self.mode == "random" else len(self.windows)

    def _read(self, f: int, name: str, start: int) -> str:
        return str(self._fastas[f][name][start: start + self.window])

    def _too_many_n(self, seq: str) -> bool:
        return (seq.count("N") + seq.count("n")) > self.max_n_fraction * len(seq)

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng([self.seed, i])
        if self.mode == "tiled":
            r, start = self.windows[i]
            f, name, _, _ = self.records[r]
            seq = self._read(f, name, start)
        else:
            for _ in range(100):
                f, name, lo, length = self.records[int(rng.choice(len(self.records), p=self._weights))]
                start = lo + int(rng.integers(0, length - self.window + 1))
                seq = self._read(f, name, start)
                if not self._too_many_n(seq):
                    break
                self.skipped += 1
            else:
                raise ValueError(f"100 random windows in a row were more than {self.max_n_fraction:.0%} N: "
                                 f"{', '.join(map(str, self.paths))} is mostly N at window {self.window}")
        strand = "+"
        if self.rc == "always" or (self.rc == "random" and rng.random() < 0.5):
            seq, strand = reverse_complement(seq), "-"
        if self.uppercase:
            seq = seq.upper()
        ids = torch.tensor(self.tokenizer.encode(seq, add_special_tokens=self.add_special_tokens))
        return {"input_ids": ids, "sequence": seq, "record": name, "start": start, "strand": strand,
                "file": str(self.paths[f])}
