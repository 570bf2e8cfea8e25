"""`python -m zoo.fit --config configs/timer_xl_etth1.yaml` on a small synthetic file learns to forecast (beating
repetition of the last value several times over), and `python -m zoo.eval forecast` rolls the best checkpoint out to
longer horizons, writing the JSON the README describes and a plot."""

import json
from pathlib import Path

import numpy as np

from zoo.eval import main as eval_main
from zoo.fit import main as fit_main
from zoo.modalities.timeseries import load_benchmark, write_synthetic_series
from zoo.modalities.timeseries.forecast import horizon_metrics

ROOT = Path(__file__).resolve().parents[3]


def test_horizon_metrics_match_a_direct_loop():
    rng = np.random.default_rng(0)
    values = rng.standard_normal((40, 2))
    preds = rng.standard_normal((40 - 10 - 4 + 1, 8, 2))
    got = horizon_metrics(values, preds, lookback=10, horizons=[4, 8])
    for h in (4, 8):
        errs = [preds[s, :h] - values[s + 10:s + 10 + h] for s in range(40 - 10 - h + 1)]
        assert got[str(h)]["windows"] == len(errs)
        np.testing.assert_allclose(got[str(h)]["mse"], np.mean(np.square(errs)), rtol=1e-12)
        np.testing.assert_allclose(got[str(h)]["mae"], np.mean(np.abs(errs)), rtol=1e-12)
    np.testing.assert_allclose(got["avg"]["mse"], (got["4"]["mse"] + got["8"]["mse"]) / 2)


def test_fit_then_rolling_forecast_eval(tmp_path):
    data = write_synthetic_series(tmp_path / "synthetic.csv", n_rows=2000, n_vars=3)
    run = tmp_path / "run"
    fit_main(["--config", str(ROOT / "configs" / "timer_xl_etth1.yaml"), "--trainer.default_root_dir", str(run),
              "--data.init_args.path", str(data), "--data.init_args.lookback", "96", "--data.init_args.patch_len", "24",
              "--model.init_args.model.patch_len", "24", "--model.init_args.model.d_model", "32",
              "--model.init_args.model.d_ff", "64", "--model.init_args.model.n_head", "4",
              "--model.init_args.lr", "3e-3", "--trainer.max_epochs", "2",
              "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"])
    best = run / "checkpoints" / "best.ckpt"
    assert best.exists()
    result = eval_main(["forecast", "--ckpt", str(best), "--horizons", "24,48", "--no-progress",
                        "--json", str(tmp_path / "forecast.json")])
    assert json.loads((tmp_path / "forecast.json").read_text()) == result
    assert set(result) == {"task", "checkpoint", "data", "lookback", "24", "48", "avg"} and result["task"] == "forecast"
    test = load_benchmark(data, 96, max_target=48).split("test")
    for h in (24, 48):  # persistence: every future step equals the last observed value
        n = result[str(h)]["windows"]
        assert n == len(test) - 96 - h + 1
        last = test[95:95 + n][:, None]
        truth = np.stack([test[s + 96:s + 96 + h] for s in range(n)])
        persistence = float(np.mean((truth - last) ** 2))
        assert result[str(h)]["mse"] < 0.3 * persistence, (h, result[str(h)], persistence)
    assert (run / "checkpoints" / "forecast_synthetic.png").stat().st_size > 10_000


def test_eval_of_a_timer_directory_equals_separate_rolling_forecasts_per_horizon(tmp_path):
    """Zero-shot eval of a Timer checkpoint directory; the one shared rollout gives the same metrics as forecasting
    each horizon on its own."""
    import torch

    import zoo

    from .test_timer_xl import _write_timer_dir

    ckpt = tmp_path / "timer"
    ckpt.mkdir()
    _write_timer_dir(ckpt)
    data = write_synthetic_series(tmp_path / "syn.csv", n_rows=400, n_vars=2)
    result = eval_main(["forecast", "--ckpt", str(ckpt), "--data", str(data), "--lookback", "32",
                        "--horizons", "8,20", "--no-progress", "--out-dir", str(tmp_path)])
    model = zoo.load_pretrained(ckpt)
    test = load_benchmark(data, 32, max_target=20).split("test")
    for h in (8, 20):
        n = len(test) - 32 - h + 1
        x = torch.stack([torch.from_numpy(test[s:s + 32]) for s in range(n)])
        pred = model.forecast(x, h).numpy()
        truth = np.stack([test[s + 32:s + 32 + h] for s in range(n)])
        np.testing.assert_allclose(result[str(h)]["mse"], np.mean((pred - truth) ** 2), rtol=1e-5)
        np.testing.assert_allclose(result[str(h)]["mae"], np.mean(np.abs(pred - truth)), rtol=1e-5)
    assert (tmp_path / "forecast_syn.png").exists()
