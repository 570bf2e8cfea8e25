"""``python -m zoo.report RUN_DIR… [--out DIR]``: one page (Markdown and self-contained HTML) of every eval result
found under the given run directories (or JSON files): V-NIAH, passkey (text and DNA), audio needle, forecasts and
benchmark results — accuracy against length for all needle tasks in one plot, each task's depth × length grid, the
forecast error by horizon, and the figures the evals drew themselves.

Every ``*.json`` under a RUN_DIR is read; one that is not an eval or benchmark result is listed at the end of the page
as skipped (with the reason), and an unreadable one is an error naming the file.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

NEEDLE_TASKS = {"vniah": ("V-NIAH", "frames"), "passkey": ("passkey", "tokens"),
                "audio-needle": ("audio needle", "seconds")}


@dataclass
class Curve:
    """Accuracy against length for one model / position scheme."""

    label: str
    task: str
    unit: str
    accuracy: dict[float, float]
    by_depth: dict[str, dict[str, float]]
    trained: float | None = None


@dataclass
class Found:
    curves: list[Curve] = field(default_factory=list)
    forecasts: list[tuple[str, dict]] = field(default_factory=list)
    benchmarks: list[tuple[str, list[dict]]] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def _label(path: Path, roots: list[Path]) -> str:
    for root in roots:
        try:
            rel = path.relative_to(root if root.is_dir() else root.parent)
            return f"{(root.name if root.is_dir() else root.parent.name)}/{rel.with_suffix('')}"
        except ValueError:
            continue
    return str(path.with_suffix(""))


def classify(path: Path, data, label: str, found: Found) -> None:
    if isinstance(data, list) and data and all(
            isinstance(r, dict) and all(isinstance(v, (int, float, str, bool)) for v in r.values()) for r in data):
        # benchmarks/*.py write a list of flat rows (one per path / setting)
        found.benchmarks.append((label, data))
        return
    if not isinstance(data, dict):
        found.skipped.append((path, "not an eval result (a JSON object with a task)"))
        return
    task = data.get("task")
    if task is None and isinstance(data.get("avg"), dict) and "mse" in data["avg"]:
        task = "forecast"  # written before forecasts carried their task name
    if task == "forecast":
        found.forecasts.append((label, data))
        return
    if task in NEEDLE_TASKS:
        name, unit = NEEDLE_TASKS[task]
        if task == "passkey" and data.get("data") == "dna":
            unit = "bases"
        variants = data.get("by_rope_scaling") or data.get("by_positions") or {"": data}
        trained = data.get("trained_length") or data.get("trained_seconds") or data.get("trained_frames")
        for scheme, run in variants.items():
            acc = {float(k): float(v) for k, v in run["accuracy"].items()}
            found.curves.append(Curve(f"{label}{f' ({scheme})' if scheme else ''}", name, unit, acc,
                                      run.get("accuracy_by_depth", {}), run.get("trained_length", trained)))
        return
    found.skipped.append((path, f"task {task!r} is not one the report knows" if task else "no 'task' field"))


def gather(paths: list[Path]) -> Found:
    found = Found()
    files: list[Path] = []
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such run directory or file")
        files += sorted(path.rglob("*.json")) if path.is_dir() else [path]
    seen: dict[str, Path] = {}
    for file in files:
        text = file.read_text()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{file}: not valid JSON ({e})") from None
        key = json.dumps(data, sort_keys=True)
        if key in seen:  # evals write their JSON next to the checkpoint and again where --json says
            found.skipped.append((file, f"the same result as {seen[key]}"))
            continue
        seen[key] = file
        classify(file, data, _label(file, paths), found)
    for path in paths:
        if path.is_dir():
            found.figures += sorted(p for p in path.rglob("*.png") if "report" not in p.parts)
    return found


def _save(fig, title: str, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_curves(curves: list[Curve], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({c.task for c in curves})
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.2 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for c in (c for c in curves if c.task == task):
            xs = sorted(c.accuracy)
            ax.plot(xs, [c.accuracy[x] for x in xs], marker="o", label=c.label)
            if c.trained:
                ax.axvline(float(c.trained), color="0.7", linestyle=":", linewidth=1)
        units = {c.unit for c in curves if c.task == task}
        ax.set_xscale("log", base=2)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel(f"length ({', '.join(sorted(units))})")
        ax.set_ylabel("exact-match accuracy")
        ax.set_title(task)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, "Long-context accuracy across lengths (dotted: trained length)", out / "accuracy_by_length.png")


def _plot_forecasts(forecasts: list[tuple[str, dict]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for label, r in forecasts:
        horizons = sorted(int(k) for k in r if k.isdigit())
        for ax, metric in zip(axes, ("mse", "mae")):
            ax.plot(horizons, [r[str(h)][metric] for h in horizons], marker="o", label=label)
    for ax, metric in zip(axes, ("MSE", "MAE")):
        ax.set_xlabel("forecast horizon (steps)")
        ax.set_ylabel(f"test {metric} (scaled)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, "Forecast error by horizon", out / "forecast_by_horizon.png")


def _fmt_len(x: float) -> str:
    return f"{x:g}"


def build_markdown(found: Found, title: str, images: dict[str, str]) -> str:
    """The report as Markdown; ``images`` maps figure keys to the paths the page links."""
    lines = [f"# {title}", ""]
    if found.curves:
        lines += ["## Needle and passkey retrieval across lengths", "", f"![accuracy by length]({images['curves']})", ""]
        for task in sorted({c.task for c in found.curves}):
            curves = [c for c in found.curves if c.task == task]
            lengths = sorted({x for c in curves for x in c.accuracy})
            unit = curves[0].unit
            lines += [f"### {task} (exact match by length, {unit})", "",
                      "| run | trained | " + " | ".join(_fmt_len(x) for x in lengths) + " |",
                      "|---|---|" + "---|" * len(lengths)]
            for c in curves:
                cells = [f"{c.accuracy[x]:.2f}" if x in c.accuracy else "" for x in lengths]
                trained = _fmt_len(float(c.trained)) if c.trained else ""
                lines.append(f"| {c.label} | {trained} | " + " | ".join(cells) + " |")
            lines.append("")
            for c in curves:
                if not c.by_depth:
                    continue
                depth_keys = list(next(iter(c.by_depth.values())))
                cols = list(c.by_depth)
                lines += [f"<details><summary>{c.label}: accuracy by depth × length</summary>", "",
                          "| depth | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
                for d in depth_keys:
                    lines.append(f"| {d} | " + " | ".join(f"{c.by_depth[col].get(d, float('nan')):.2f}"
                                                       for col in cols) + " |")
                lines += ["", "</details>", ""]
    if found.forecasts:
        lines += ["## Forecasts", "", f"![forecast error by horizon]({images['forecasts']})", ""]
        for label, r in found.forecasts:
            horizons = sorted((k for k in r if k.isdigit()), key=int) + (["avg"] if "avg" in r else [])
            lines += [f"### {label}" + (f" — {Path(r['data']).name}" if r.get("data") else ""), "",
                      "| horizon | " + " | ".join(horizons) + " |", "|---|" + "---|" * len(horizons),
                      "| MSE | " + " | ".join(f"{r[h]['mse']:.3f}" for h in horizons) + " |",
                      "| MAE | " + " | ".join(f"{r[h]['mae']:.3f}" for h in horizons) + " |", ""]
    if found.benchmarks:
        lines += ["## Benchmarks", ""]
        for label, rows in found.benchmarks:
            keys = list(dict.fromkeys(k for r in rows for k in r))
            lines += [f"### {label}", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
            for r in rows:
                lines.append("| " + " | ".join(f"{r[k]:.4g}" if isinstance(r.get(k), float) else str(r.get(k, ""))
                                               for k in keys) + " |")
            lines.append("")
    if images.get("figures"):
        lines += ["## Figures from the evals", ""]
        for key, link in images["figures"]:
            lines += [f"**{key}**", "", f"![{key}]({link})", ""]
    if found.skipped:
        lines += ["## Skipped files", ""] + [f"- `{p}`: {why}" for p, why in found.skipped] + [""]
    return "\n".join(lines)


def _html(markdown_text: str, out: Path) -> str:
    """A self-contained HTML page: the Markdown rendered (tables, images inlined as data URIs)."""
    import markdown as md

    body = md.markdown(markdown_text, extensions=["tables", "md_in_html"])
    for png in sorted(out.rglob("*.png")):
        rel = png.relative_to(out).as_posix()
        data = base64.b64encode(png.read_bytes()).decode()
        body = body.replace(f'src="{html.escape(rel)}"', f'src="data:image/png;base64,{data}"')
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;"
             "text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}")
    return f"<!doctype html><html><head><meta charset='utf-8'><title>zoo report</title><style>{style}</style>" \
           f"</head><body>{body}</body></html>"


def write_report(paths: list[Path], out: Path, title: str = "zoo long-context report") -> Found:
    found = gather(paths)
    if not (found.curves or found.forecasts or found.benchmarks):
        raise SystemExit(f"no eval results under {', '.join(map(str, paths))}: run `python -m zoo.eval TASK …` first "
                         f"(skipped: {[str(p) for p, _ in found.skipped]})")
    out.mkdir(parents=True, exist_ok=True)
    images: dict = {}
    if found.curves:
        images["curves"] = _plot_curves(found.curves, out).name
    if found.forecasts:
        images["forecasts"] = _plot_forecasts(found.forecasts, out).name
    figures = []
    (out / "figures").mkdir(exist_ok=True)
    for i, png in enumerate(found.figures):
        key = _label(png, paths)
        target = out / "figures" / f"{i:02d}_{png.name}"
        shutil.copyfile(png, target)
        figures.append((key, f"figures/{target.name}"))
    images["figures"] = figures
    text = build_markdown(found, title, images)
    (out / "report.md").write_text(text)
    (out / "report.html").write_text(_html(text, out))
    return found


def main(argv: list[str] | None = None) -> Found:
    parser = argparse.ArgumentParser(prog="python -m zoo.report", description=__doc__.split("\n\n")[0],
                                     allow_abbrev=False)
    parser.add_argument("runs", nargs="+", type=Path, help="run directories (searched for *.json) or JSON files")
    parser.add_argument("--out", type=Path, default=Path("report"), help="output directory (default: report/)")
    parser.add_argument("--title", default="zoo long-context report")
    args = parser.parse_args(argv)
    found = write_report(args.runs, args.out, args.title)
    print(f"{len(found.curves)} accuracy curves, {len(found.forecasts)} forecasts, {len(found.benchmarks)} "
          f"benchmark tables, {len(found.figures)} figures; skipped {len(found.skipped)} files")
    for path, why in found.skipped:
        print(f"  skipped {path}: {why}")
    print(f"wrote {args.out / 'report.md'} and {args.out / 'report.html'}")
    return found


if __name__ == "__main__":
    main()
