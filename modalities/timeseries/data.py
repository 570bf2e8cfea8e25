"""Multivariate series from CSV files (a date column plus one column per variable, as ETT, ECL, Weather, … ship)
and the long-term forecasting benchmark protocol.

Protocol (Informer / PatchTST / Timer-XL, as OpenLTM implements it):
- splits by row: ETTh* files train on [0, 8640), validate on [8640 − L, 11520) and test on [11520 − L, 14400)
  (12 / 4 / 4 months of hours); ETTm* files the same months in 15-minute rows (× 4); any other file 70 / 10 / 20 %
  of its rows. L is the lookback, so the first validation and test forecasts start right at the split border.
- a StandardScaler (mean and population std per variable) fitted on the training rows scales everything; metrics are
  reported in that scaled space.
- every window of the split is used (stride 1), in order; none is dropped.

Rows must be in time order with no date twice (splits and windows follow the rows); ``sort_dates=True`` sorts a file
that is out of order, and a repeated date is an error either way.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

SPLITS = ("auto", "ett_hourly", "ett_15min", "ratio")
FILLS = ("none", "ffill", "linear")
_MISSING = {"", "nan", "na", "n/a", "null", "none", "?"}


class SeriesFormatError(ValueError):
    """A series file that cannot be read as a date column plus numeric variables."""


@dataclass
class SeriesTable:
    path: Path
    names: list[str]  # variable (column) names, in file order
    values: np.ndarray  # (rows, variables) float64
    dates: list[datetime] | None  # None when the file has no date column (date_column=None)

    @property
    def n_rows(self) -> int:
        return self.values.shape[0]


def read_series_csv(path: str | Path, date_column: str | None = "date", fill: str = "none",
                    sort_dates: bool = False) -> SeriesTable:
    """Read ``path``: a header row, then one row per time step. ``date_column`` names the timestamp column (ISO
    dates; ``None`` for files without one); every other column is a variable and must be numeric.

    The rows must be in time order, each date once: splits and windows follow the rows, so a file out of order is an
    error naming both lines and dates, unless ``sort_dates=True`` sorts the rows by date (stably; the values move
    with their dates). A repeated date is an error either way: which of two rows is the true one is not ours to guess.

    Missing values (empty, NaN, NA, …) are an error naming the column, how many and the first line, unless ``fill``
    says what to do: ``"ffill"`` carries the last seen value forward (a leading gap takes the first value seen),
    ``"linear"`` interpolates between the nearest values on either side (constant beyond the ends).
    """
    path = Path(path)
    if fill not in FILLS:
        raise ValueError(f"fill must be one of {FILLS}, got {fill!r}")
    if not path.is_file():
        raise FileNotFoundError(f"no series file at {path}")
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise SeriesFormatError(f"{path} is empty")
    header = [h.strip() for h in rows[0]]
    if date_column is not None and date_column not in header:
        raise SeriesFormatError(
            f"{path} has no date column {date_column!r}; its columns are {header}. Give the right name "
            f"(date_column / --data.date_column) or date_column=None for a file without dates"
        )
    date_index = header.index(date_column) if date_column is not None else None
    var_index = [i for i in range(len(header)) if i != date_index]
    if not var_index:
        raise SeriesFormatError(f"{path} has no variable columns besides {date_column!r}")
    body = rows[1:]
    if not body:
        raise SeriesFormatError(f"{path} has a header but no rows")
    if sort_dates and date_index is None:
        raise ValueError("sort_dates=True needs a date column, but date_column is None")
    values = np.empty((len(body), len(var_index)), dtype=np.float64)
    dates: list[datetime] | None = [] if date_index is not None else None
    for r, row in enumerate(body):
        line = r + 2
        if len(row) != len(header):
            raise SeriesFormatError(f"{path}, line {line}: {len(row)} fields, but the header has {len(header)}")
        if dates is not None:
            try:
                dates.append(datetime.fromisoformat(row[date_index].strip()))
            except ValueError:
                raise SeriesFormatError(
                    f"{path}, line {line}, column {date_column!r}: {row[date_index]!r} is not an ISO date/time"
                ) from None
            if (dates[-1].tzinfo is None) != (dates[0].tzinfo is None):  # naive and aware times do not compare
                raise SeriesFormatError(
                    f"{path}, line {line}, column {date_column!r}: {row[date_index].strip()!r} "
                    f"{'has no' if dates[-1].tzinfo is None else 'has a'} UTC offset and line 2's "
                    f"{body[0][date_index].strip()!r} {'does' if dates[-1].tzinfo is None else 'does not'}; give "
                    "every date one, or none"
                )
        for j, i in enumerate(var_index):
            cell = row[i].strip()
            if cell.lower() in _MISSING:
                values[r, j] = np.nan
                continue
            try:
                values[r, j] = float(cell)
            except ValueError:
                raise SeriesFormatError(f"{path}, line {line}, column {header[i]!r}: {cell!r} is not a number") from None
            if not math.isfinite(values[r, j]):
                raise SeriesFormatError(f"{path}, line {line}, column {header[i]!r}: {cell!r} is not finite")
    names = [header[i] for i in var_index]
    lines = np.arange(2, len(body) + 2)  # the file line of each row, which sorting moves with the row
    if dates is not None:
        if sort_dates:
            order = sorted(range(len(dates)), key=dates.__getitem__)  # Python's sort is stable
            dates, values, lines = [dates[k] for k in order], values[order], lines[order]
        _check_time_order(path, dates, lines, [row[date_index].strip() for row in body])
    missing = np.isnan(values)
    if missing.any():
        if fill == "none":
            j = int(np.nonzero(missing.any(0))[0][0])
            first = int(lines[missing[:, j]].min())
            raise SeriesFormatError(
                f"{path}: column {names[j]!r} has {int(missing[:, j].sum())} missing values (first at line {first}); "
                f"pass fill='ffill' or fill='linear' (--data.fill) to fill them"
            )
        values = _fill(values, missing, fill, path, names)
    return SeriesTable(path, names, values, dates)


def _check_time_order(path: Path, dates: list[datetime], lines: np.ndarray, text: list[str]) -> None:
    """Each row strictly later than the one before; else the first offending line (in file order) and its dates.
    ``text[line - 2]`` is the date as the file writes it."""
    repeats = [k for k in range(1, len(dates)) if dates[k] == dates[k - 1]]
    earlier = [k for k in range(1, len(dates)) if dates[k] < dates[k - 1]]
    if not repeats and not earlier:
        return
    k = min(repeats + earlier, key=lambda k: lines[k])
    line, before = int(lines[k]), int(lines[k - 1])
    if dates[k] == dates[k - 1]:
        raise SeriesFormatError(f"{path}, line {line}: repeats line {before}'s date {text[before - 2]}; each time step "
                                "may appear only once (sort_dates does not merge rows)")
    raise SeriesFormatError(f"{path}, line {line}: {text[line - 2]} comes before line {before}'s {text[before - 2]}; "
                            "the rows must be in time order (pass sort_dates=True, --data.sort_dates, to sort them)")


def _fill(values: np.ndarray, missing: np.ndarray, how: str, path: Path, names: list[str]) -> np.ndarray:
    values = values.copy()
    t = np.arange(values.shape[0])
    for j in range(values.shape[1]):
        gap = missing[:, j]
        if not gap.any():
            continue
        if gap.all():
            raise SeriesFormatError(f"{path}: column {names[j]!r} has no values at all")
        known = ~gap
        if how == "linear":
            values[gap, j] = np.interp(t[gap], t[known], values[known, j])
        else:  # ffill: index of the last known value at or before each row; a leading gap takes the first value
            last = np.maximum.accumulate(np.where(known, t, -1))
            last[last < 0] = int(np.argmax(known))
            values[:, j] = values[last, j]
    return values


def split_scheme(path: str | Path, split: str) -> str:
    """``auto`` → ``ett_hourly`` for ETTh* files, ``ett_15min`` for ETTm*, else ``ratio``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if split != "auto":
        return split
    name = Path(path).name
    return "ett_hourly" if name.startswith("ETTh") else "ett_15min" if name.startswith("ETTm") else "ratio"


def split_borders(n_rows: int, lookback: int, scheme: str, min_rows: int = 1, source: str = "series") -> dict:
    """Row ranges ``{"train": (start, end), "val": …, "test": …}``; validation and test start ``lookback`` rows before
    their border so that their first forecast begins at it. Each split must hold ``min_rows`` rows (lookback + the
    longest target) for at least one window."""
    if scheme in ("ett_hourly", "ett_15min"):
        per_month = 30 * 24 * (4 if scheme == "ett_15min" else 1)
        train_end, val_end, test_end = 12 * per_month, 16 * per_month, 20 * per_month
        if n_rows < test_end:
            raise SeriesFormatError(
                f"{source} has {n_rows} rows; the {scheme} split needs {test_end} (12/4/4 months of "
                f"{'15-minute' if scheme == 'ett_15min' else 'hourly'} rows); use split='ratio' for other lengths"
            )
    elif scheme == "ratio":
        train_end = int(n_rows * 0.7)
        test_end = n_rows
        val_end = n_rows - int(n_rows * 0.2)
    else:
        raise ValueError(f"unknown split scheme {scheme!r}; choose one of {SPLITS[1:]}")
    borders = {"train": (0, train_end), "val": (train_end - lookback, val_end), "test": (val_end - lookback, test_end)}
    for name, (a, b) in borders.items():
        if a < 0 or b - a < min_rows:
            raise SeriesFormatError(
                f"{source}: the {name} split ({scheme}, rows [{a}, {b})) is too short for one window of "
                f"{min_rows} rows (lookback {lookback} + target); the file has {n_rows} rows"
            )
    return borders


@dataclass
class Scaler:
    """Per-variable standardisation fitted on the training rows (population std; a constant column keeps scale 1,
    as scikit-learn's StandardScaler does)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray) -> Scaler:
        std = values.std(0)
        return cls(values.mean(0), np.where(std > 0, std, 1.0))

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (values - self.mean) / self.std

    def inverse(self, values: np.ndarray) -> np.ndarray:
        return values * self.std + self.mean


@dataclass
class BenchmarkSeries:
    """A file read, split and scaled by the protocol: ``scaled`` (rows, variables) float32 and the split borders."""

    table: SeriesTable
    scheme: str
    borders: dict
    scaler: Scaler
    scaled: np.ndarray

    def split(self, name: str) -> np.ndarray:
        a, b = self.borders[name]
        return self.scaled[a:b]


def load_benchmark(
    path: str | Path, lookback: int = 672, split: str = "auto", max_target: int = 96, date_column: str | None = "date",
    fill: str = "none", sort_dates: bool = False,
) -> BenchmarkSeries:
    table = read_series_csv(path, date_column, fill, sort_dates)
    scheme = split_scheme(path, split)
    borders = split_borders(table.n_rows, lookback, scheme, lookback + max_target, str(table.path))
    a, b = borders["train"]
    scaler = Scaler.fit(table.values[a:b])
    scaled = scaler.transform(table.values).astype(np.float32)
    return BenchmarkSeries(table, scheme, borders, scaler, scaled)


class SeriesWindows(Dataset):
    """Every window of ``length`` consecutive rows of ``values`` (rows, variables), stride 1 → ``(length, variables)``
    float32 tensors."""

    def __init__(self, values: np.ndarray, length: int):
        if values.shape[0] < length:
            raise ValueError(f"{values.shape[0]} rows hold no window of {length}")
        self.values = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
        self.length = length

    def __len__(self) -> int:
        return self.values.shape[0] - self.length + 1

    def __getitem__(self, i: int) -> torch.Tensor:
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.values[i:i + self.length]


def write_synthetic_series(path: str | Path, n_rows: int = 2000, n_vars: int = 3, seed: int = 0) -> Path:
    """A CSV in ETT layout (hourly dates + ``n_vars`` columns): daily and weekly cycles with per-variable phase, a
    slow trend, a lagged cross-variable coupling and noise. For tests and quick experiments."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_rows, dtype=np.float64)
    cols = []
    for c in range(n_vars):
        phase = rng.uniform(0, 2 * np.pi)
        x = np.sin(2 * np.pi * t / 24 + phase) + 0.5 * np.sin(2 * np.pi * t / 168 + 2 * phase) + 1e-4 * t * (c + 1)
        cols.append(x)
    for c in range(1, n_vars):  # variable c echoes variable c-1 six hours later
        cols[c] = cols[c] + 0.5 * np.roll(cols[c - 1], 6)
    values = np.stack(cols, 1) + 0.05 * rng.standard_normal((n_rows, n_vars))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    start = datetime(2020, 1, 1)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["date"] + [f"x{c}" for c in range(n_vars)])
        for i in range(n_rows):
            w.writerow([(start + timedelta(hours=i)).isoformat(sep=" ")] + [f"{v:.6f}" for v in values[i]])
    return path
