"""CSV series and the benchmark protocol: splits, scaling, windows, and clear errors for bad files."""

from pathlib import Path

import numpy as np
import pytest

from zoo.modalities.timeseries import (
    SeriesFormatError, SeriesWindows, load_benchmark, read_series_csv, split_borders, split_scheme,
    write_synthetic_series,
)

ETTH1 = Path(__file__).resolve().parents[4] / "shared" / "data" / "ett" / "ETTh1.csv"


def _csv(tmp_path, text, name="s.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_reads_dates_and_variables(tmp_path):
    path = write_synthetic_series(tmp_path / "syn.csv", n_rows=50, n_vars=3)
    table = read_series_csv(path)
    assert table.names == ["x0", "x1", "x2"] and table.values.shape == (50, 3)
    assert (table.dates[1] - table.dates[0]).total_seconds() == 3600


def test_missing_values_are_an_error_unless_a_fill_is_chosen(tmp_path):
    path = _csv(tmp_path, "date,a,b\n2020-01-01 00:00,1,5\n2020-01-01 01:00,,6\n2020-01-01 02:00,3,NaN\n"
                          "2020-01-01 03:00,4,8\n")
    with pytest.raises(SeriesFormatError, match=r"column 'a' has 1 missing values \(first at line 3\); pass "
                                                r"fill='ffill' or fill='linear'"):
        read_series_csv(path)
    np.testing.assert_allclose(read_series_csv(path, fill="linear").values, [[1, 5], [2, 6], [3, 7], [4, 8]])
    np.testing.assert_allclose(read_series_csv(path, fill="ffill").values, [[1, 5], [1, 6], [3, 6], [4, 8]])
    lead = _csv(tmp_path, "date,a\n2020-01-01,\n2020-01-02,2\n", "lead.csv")
    np.testing.assert_allclose(read_series_csv(lead, fill="ffill").values, [[2], [2]])


def test_bad_files_name_the_file_line_and_column(tmp_path):
    with pytest.raises(SeriesFormatError, match=r"has no date column 'date'; its columns are \['time', 'a'\]"):
        read_series_csv(_csv(tmp_path, "time,a\n1,2\n"))
    with pytest.raises(SeriesFormatError, match=r"line 3, column 'a': 'abc' is not a number"):
        read_series_csv(_csv(tmp_path, "date,a\n2020-01-01,1\n2020-01-02,abc\n"))
    with pytest.raises(SeriesFormatError, match=r"line 2, column 'date': 'yesterday' is not an ISO date"):
        read_series_csv(_csv(tmp_path, "date,a\nyesterday,1\n"))
    with pytest.raises(SeriesFormatError, match=r"line 2: 3 fields, but the header has 2"):
        read_series_csv(_csv(tmp_path, "date,a\n2020-01-01,1,2\n"))
    with pytest.raises(FileNotFoundError, match="no series file at"):
        read_series_csv(tmp_path / "absent.csv")
    np.testing.assert_allclose(read_series_csv(_csv(tmp_path, "a,b\n1,2\n"), date_column=None).values, [[1, 2]])


def test_ett_and_ratio_splits_follow_the_benchmark():
    assert split_scheme("x/ETTh2.csv", "auto") == "ett_hourly"
    assert split_scheme("ETTm1.csv", "auto") == "ett_15min"
    assert split_scheme("weather.csv", "auto") == "ratio"
    assert split_borders(17420, 672, "ett_hourly") == {"train": (0, 8640), "val": (7968, 11520),
                                                       "test": (10848, 14400)}
    assert split_borders(69680, 672, "ett_15min")["test"] == (46080 - 672, 57600)
    n = 1000  # OpenLTM: train int(0.7 n), test int(0.2 n), validation the rest
    assert split_borders(n, 96, "ratio") == {"train": (0, 700), "val": (604, 800), "test": (704, 1000)}
    with pytest.raises(SeriesFormatError, match=r"has 9000 rows; the ett_hourly split needs 14400"):
        split_borders(9000, 672, "ett_hourly", source="ETTh9.csv")
    with pytest.raises(SeriesFormatError, match=r"the train split \(ratio, rows \[0, 140\)\) is too short for one "
                                                r"window of 200 rows"):
        split_borders(200, 100, "ratio", min_rows=200)


def test_scaler_is_fitted_on_training_rows_only(tmp_path):
    path = write_synthetic_series(tmp_path / "syn.csv", n_rows=1000, n_vars=2)
    series = load_benchmark(path, lookback=48, max_target=24)
    train = series.split("train")
    np.testing.assert_allclose(train.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(train.std(0), 1, atol=1e-5)
    assert abs(series.split("test")[48:].mean()) > 1e-3  # the trend moves the test rows away from 0
    windows = SeriesWindows(series.split("val"), 72)
    assert len(windows) == (800 - (700 - 48)) - 72 + 1
    np.testing.assert_array_equal(windows[len(windows) - 1].numpy(), series.scaled[800 - 72:800])


@pytest.mark.skipif(not ETTH1.exists(), reason=f"sample data not found at {ETTH1} (../shared/data)")
def test_etth1_reads_with_the_published_split():
    series = load_benchmark(ETTH1)
    assert series.table.names == ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
    assert series.scheme == "ett_hourly" and series.split("test").shape == (3552, 7)
    np.testing.assert_allclose(series.split("train").mean(0), 0, atol=1e-4)
