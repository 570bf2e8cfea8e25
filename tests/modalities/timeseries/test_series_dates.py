"""Rows out of time order or with a date twice are refused naming the file, both lines and both dates (splits and
windows follow the rows, so file order must be time order); ``sort_dates=True`` sorts the rows, the values moving with
their dates; a repeated date stays an error; ETTh1 as shipped is in order and reads unchanged."""

from pathlib import Path

import numpy as np
import pytest

from zoo.modalities.timeseries import SeriesFormatError, load_benchmark, read_series_csv, write_synthetic_series

ETTH1 = Path(__file__).resolve().parents[4] / "shared" / "data" / "ett" / "ETTh1.csv"

UNSORTED = ("date,a,b\n"
            "2016-07-01 00:00:00,0,10\n"
            "2016-07-01 01:00:00,1,11\n"
            "2016-07-01 03:00:00,3,13\n"
            "2016-07-01 02:00:00,2,12\n")


def _csv(tmp_path, text, name="ETTh1.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_rows_out_of_time_order_are_refused(tmp_path):
    path = _csv(tmp_path, UNSORTED)
    with pytest.raises(SeriesFormatError, match=r"ETTh1\.csv, line 5: 2016-07-01 02:00:00 comes before line 4's "
                                                r"2016-07-01 03:00:00; the rows must be in time order \(pass "
                                                r"sort_dates=True, --data\.sort_dates, to sort them\)$"):
        read_series_csv(path)


def test_a_repeated_date_is_refused_even_when_sorting(tmp_path):
    path = _csv(tmp_path, "date,a\n2016-07-01 05:00:00,5\n2016-07-01 07:00:00,7\n2016-07-01 07:00:00,8\n")
    message = r"ETTh1\.csv, line 4: repeats line 3's date 2016-07-01 07:00:00; each time step may appear only once"
    with pytest.raises(SeriesFormatError, match=message):
        read_series_csv(path)
    with pytest.raises(SeriesFormatError, match=message):
        read_series_csv(path, sort_dates=True)
    apart = _csv(tmp_path, "date,a\n2016-07-01 07:00:00,7\n2016-07-01 05:00:00,5\n2016-07-01 07:00:00,8\n", "b.csv")
    with pytest.raises(SeriesFormatError, match=r"b\.csv, line 4: repeats line 2's date 2016-07-01 07:00:00"):
        read_series_csv(apart, sort_dates=True)  # sorting brings lines 2 and 4 together


def test_sort_dates_sorts_rows_and_values_follow_their_dates(tmp_path):
    table = read_series_csv(_csv(tmp_path, UNSORTED), sort_dates=True)
    assert [d.hour for d in table.dates] == [0, 1, 2, 3]
    np.testing.assert_array_equal(table.values, [[0, 10], [1, 11], [2, 12], [3, 13]])
    # missing values are filled in time order, and reported by their line in the file
    gappy = _csv(tmp_path, "date,a\n2020-01-01 02:00,4\n2020-01-01 00:00,0\n2020-01-01 01:00,\n", "gappy.csv")
    np.testing.assert_array_equal(read_series_csv(gappy, fill="linear", sort_dates=True).values, [[0], [2], [4]])
    with pytest.raises(SeriesFormatError, match=r"column 'a' has 1 missing values \(first at line 4\)"):
        read_series_csv(gappy, sort_dates=True)
    with pytest.raises(ValueError, match=r"sort_dates=True needs a date column, but date_column is None"):
        read_series_csv(_csv(tmp_path, "a\n1\n", "nodate.csv"), date_column=None, sort_dates=True)


def test_load_benchmark_sorts_when_asked(tmp_path):
    path = write_synthetic_series(tmp_path / "syn.csv", n_rows=300, n_vars=2)
    lines = path.read_text().splitlines()
    shuffled = [lines[0]] + lines[1:][::-1]
    reversed_path = _csv(tmp_path, "\n".join(shuffled) + "\n", "reversed.csv")
    with pytest.raises(SeriesFormatError, match=r"reversed\.csv, line 3: 2020-01-13 10:00:00 comes before line 2's "
                                                r"2020-01-13 11:00:00"):
        load_benchmark(reversed_path, lookback=24, max_target=12)
    np.testing.assert_array_equal(load_benchmark(reversed_path, 24, max_target=12, sort_dates=True).scaled,
                                  load_benchmark(path, 24, max_target=12).scaled)


def test_dates_with_and_without_utc_offset_are_not_mixed(tmp_path):
    path = _csv(tmp_path, "date,a\n2020-01-01T00:00:00+00:00,1\n2020-01-01T01:00:00,2\n")
    with pytest.raises(SeriesFormatError, match=r"line 3, column 'date': '2020-01-01T01:00:00' has no UTC offset and "
                                                r"line 2's '2020-01-01T00:00:00\+00:00' does; give every date one"):
        read_series_csv(path)


@pytest.mark.skipif(not ETTH1.exists(), reason=f"sample data not found at {ETTH1} (../shared/data)")
def test_etth1_is_in_time_order_and_reads_unchanged():
    table = read_series_csv(ETTH1)
    assert table.n_rows == 17420 and str(table.dates[0]) == "2016-07-01 00:00:00"
    assert str(table.dates[-1]) == "2018-06-26 19:00:00"
    sorted_table = read_series_csv(ETTH1, sort_dates=True)
    np.testing.assert_array_equal(sorted_table.values, table.values)
    assert sorted_table.dates == table.dates
