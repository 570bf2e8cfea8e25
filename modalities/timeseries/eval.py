"""``python -m zoo.eval forecast --ckpt PATH [--data FILE]``: rolling forecasts on a file's test split under the
benchmark protocol; prints MSE / MAE per horizon and their average, writes JSON and PNG plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from zoo.arguments import positive_int, positive_ints
from zoo.registry import EVAL_TASKS

# the model, data and torch are imported where they are used: `python -m zoo.eval --help` imports only arguments
# Timer-XL paper, ETTh1, lookback 672 (MSE / MAE); shown beside ours when the file is ETTh1
PAPER_ETTH1 = {"96": (0.364, 0.397), "192": (0.405, 0.424), "336": (0.427, 0.439), "720": (0.439, 0.459),
               "avg": (0.409, 0.430)}


class ForecastTask:
    help = "rolling-forecast MSE / MAE on a CSV file's test split (ETT protocol) for several horizons"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        from .data import FILLS, SPLITS

        p.add_argument("--ckpt", required=True, help="zoo .ckpt from zoo.fit, or a Timer checkpoint directory")
        p.add_argument("--data", default=None, help="CSV file (default: the file the checkpoint was trained on)")
        p.add_argument("--horizons", type=positive_ints, default=[96, 192, 336, 720])
        p.add_argument("--lookback", type=positive_int, default=None, help="default: the checkpoint's training lookback, else 672")
        p.add_argument("--split", choices=SPLITS, default=None, help="default: the checkpoint's, else auto")
        p.add_argument("--date-column", default=None, help="default: the checkpoint's, else 'date'")
        p.add_argument("--fill", choices=FILLS, default=None, help="default: the checkpoint's, else none")
        p.add_argument("--sort-dates", action=argparse.BooleanOptionalAction, default=None,
                       help="sort rows that are out of time order (default: the checkpoint's, else refuse them)")
        p.add_argument("--batch-size", type=positive_int, default=256)
        p.add_argument("--plot-variable", default=None, help="variable to plot (default: the last column, OT in ETT)")
        p.add_argument("--out-dir", type=Path, default=None, help="where the PNG goes (default: next to the checkpoint)")
        p.add_argument("--no-progress", action="store_true")

    def run(self, args) -> dict:
        from zoo.loading import checkpoint_hparams, load_pretrained

        from .data import load_benchmark
        from .forecast import horizon_metrics, plot_forecasts, rolling_forecasts
        from .timer_xl import TimerXL

        ckpt = Path(args.ckpt)
        model = load_pretrained(ckpt)
        if not isinstance(model, TimerXL):
            raise SystemExit(f"{ckpt} holds a {type(model).__name__}, not a Timer-XL forecaster")
        trained = checkpoint_hparams(ckpt).get("datamodule_hyper_parameters", {})
        data = args.data or trained.get("path")
        if data is None:
            raise SystemExit("--data FILE is required: the checkpoint does not record its training file")
        lookback = args.lookback or trained.get("lookback") or 672
        p = model.config.patch_len
        if lookback % p:
            raise SystemExit(f"--lookback {lookback} is not a multiple of the model's patch_len {p}")
        split = args.split or trained.get("split") or "auto"
        date_column = args.date_column or trained.get("date_column", "date")
        fill = args.fill or trained.get("fill") or "none"
        sort_dates = args.sort_dates if args.sort_dates is not None else bool(trained.get("sort_dates", False))
        horizons = sorted(args.horizons)
        if not horizons or horizons[0] <= 0:
            raise SystemExit(f"--horizons must be positive integers, got {args.horizons}")
        series = load_benchmark(data, lookback, split, max(horizons), date_column, fill, sort_dates)
        test = series.split("test")
        n_windows = test.shape[0] - lookback - horizons[0] + 1
        preds = rolling_forecasts(model, test, lookback, horizons[-1], n_windows, args.batch_size,
                                  progress=not args.no_progress)
        result = {"task": "forecast", "checkpoint": str(ckpt), "data": str(data), "lookback": lookback,
                  **horizon_metrics(test, preds, lookback, horizons)}

        name = Path(data).name
        paper = PAPER_ETTH1 if name == "ETTh1.csv" and lookback == 672 and series.scheme == "ett_hourly" else None
        print(f"{name}: test rows [{series.borders['test'][0]}, {series.borders['test'][1]}) ({series.scheme} split), "
              f"lookback {lookback}, rolling {p}-step forecasts, scaled space")
        print(f"{'horizon':>8} {'windows':>8} {'MSE':>8} {'MAE':>8}" + ("   paper MSE / MAE" if paper else ""))
        for key in [str(h) for h in horizons] + ["avg"]:
            r = result[key]
            row = f"{key:>8} {r.get('windows', ''):>8} {r['mse']:>8.3f} {r['mae']:>8.3f}"
            if paper and key in PAPER_ETTH1:
                row += f"   {paper[key][0]:.3f} / {paper[key][1]:.3f}"
            print(row)

        names = series.table.names
        if args.plot_variable is None:
            variable = len(names) - 1
        elif args.plot_variable in names:
            variable = names.index(args.plot_variable)
        else:
            raise SystemExit(f"--plot-variable {args.plot_variable!r} is not a column of {data}: {names}")
        out_dir = args.out_dir or (ckpt.parent if ckpt.is_file() else ckpt)
        png = out_dir / f"forecast_{Path(data).stem}.png"
        plot_forecasts(test, preds, lookback, horizons, names, variable, png,
                       f"{ckpt.name} on {name}: rolling forecasts (lookback {lookback}); avg MSE "
                       f"{result['avg']['mse']:.3f}", result)
        print(f"wrote {png}")
        return result


EVAL_TASKS.register("forecast")(ForecastTask())
