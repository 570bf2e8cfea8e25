"""Time series: Timer-XL over patches of every variable, ETT-style CSV data with the benchmark protocol, rolling
forecasts and the ``forecast`` eval task."""

from zoo.lazy import lazy_exports

# imported on first use (zoo.lazy): importing the package, or its eval module, imports nothing heavy
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".data": ["BenchmarkSeries", "Scaler", "SeriesFormatError", "SeriesTable", "SeriesWindows", "load_benchmark",
        "read_series_csv", "split_borders", "split_scheme", "write_synthetic_series"],
    ".lightning": ["ForecastDataModule", "ForecastModule"],
    ".timer_xl": ["TimerXL", "TimerXLConfig"],
})
