"""Time series: Timer-XL over patches of every variable, ETT-style CSV data with the benchmark protocol, rolling
forecasts and the ``forecast`` eval task."""

from .data import BenchmarkSeries, Scaler, SeriesFormatError, SeriesTable, SeriesWindows, load_benchmark, read_series_csv
from .data import split_borders, split_scheme, write_synthetic_series
from .lightning import ForecastDataModule, ForecastModule
from .timer_xl import TimerXL, TimerXLConfig

__all__ = ["BenchmarkSeries", "ForecastDataModule", "ForecastModule", "Scaler", "SeriesFormatError", "SeriesTable",
           "SeriesWindows", "TimerXL", "TimerXLConfig", "load_benchmark", "read_series_csv", "split_borders",
           "split_scheme", "write_synthetic_series"]
