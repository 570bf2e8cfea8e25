"""Peak memory of featurising long audio: window by window (iter_audio_features) against the whole file at once
(load_audio + audio_features), each in a fresh process.

    python benchmarks/audio_memory.py [--minutes 10,120] [--rate 16000] [--format wav] [--paths streamed,whole]

For each length it writes a mono 16-bit file of quiet noise with a tone every few seconds (block by block, into a
temporary folder that is deleted afterwards) and, per path, runs a child process that featurises it and keeps only a
running sum of the features, so that nothing accumulates but what the path itself holds. The child reports its peak
resident set size (``ru_maxrss``), which includes the ~0.3 GB of the interpreter, torch and the zoo. The streamed
path is flat in the length when the peak of the longest file is within 1.5× of the shortest's.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WRITE_BLOCK_SECONDS = 60


def write_long_audio(path: Path, seconds: float, rate: int = 16000, seed: int = 0) -> Path:
    """Mono PCM_16 ``path`` (wav or flac by its suffix) of ``seconds``: noise at -40 dB and a 0.2 s tone each 5 s,
    written a minute at a time so that writing a long file needs little memory."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    total = round(seconds * rate)
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=1, subtype="PCM_16") as f:
        for start in range(0, total, WRITE_BLOCK_SECONDS * rate):
            n = min(WRITE_BLOCK_SECONDS * rate, total - start)
            t = (start + np.arange(n)) / rate
            block = 0.01 * rng.standard_normal(n, dtype=np.float32)
            block += (0.3 * np.sin(2 * np.pi * 440 * t) * ((t % 5) < 0.2)).astype(np.float32)
            f.write(block)
    return path


def featurise(path: str, which: str) -> dict:
    """Featurise ``path`` by one path in this process; the features' running sum, windows and peak RSS."""
    import torch

    from zoo.modalities.audio import audio_features, iter_audio_features, load_audio

    torch.set_num_threads(1)
    baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    total, frames, windows = 0.0, 0, 0
    if which == "streamed":
        for feats, mask in iter_audio_features(path):
            total += float(feats.double().sum())
            frames += int(mask.sum())
            windows += 1
    elif which == "whole":
        feats, mask = audio_features(load_audio(path))
        total, frames, windows = float(feats.double().sum()), int(mask.sum()), len(feats)
    else:
        raise SystemExit(f"--point: path must be streamed or whole, got {which!r}")
    return {"path": which, "file": path, "windows": windows, "real_frames": frames, "feature_sum": total,
            "seconds": round(time.perf_counter() - t0, 2), "baseline_rss_mb": round(baseline_mb, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def measure(path: Path, which: str, timeout: int = 3600) -> dict:
    """``featurise(path, which)`` in a fresh Python process (its peak RSS is its own); the child's result."""
    res = subprocess.run([sys.executable, __file__, "--point", f"{which}:{path}"], capture_output=True, text=True,
                         timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"{which} on {path.name} failed: {res.stderr.strip().splitlines()[-1:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--minutes", default="10,120", help="comma-separated lengths")
    p.add_argument("--rate", type=int, default=16000, help="the files' sample rate (16000: no resampling)")
    p.add_argument("--format", choices=("wav", "flac"), default="wav")
    p.add_argument("--paths", default="streamed,whole", help="streamed, whole or both")
    p.add_argument("--point", help=argparse.SUPPRESS)  # child mode: PATH_KIND:FILE
    args = p.parse_args()
    if args.point:
        which, _, path = args.point.partition(":")
        print(json.dumps(featurise(path, which)))
        return
    minutes = [float(m) for m in args.minutes.split(",")]
    paths = [s.strip() for s in args.paths.split(",") if s.strip()]
    rows: dict[str, dict[float, dict]] = {k: {} for k in paths}
    with tempfile.TemporaryDirectory(prefix="zoo-audio-memory-") as tmp:
        for m in minutes:
            path = write_long_audio(Path(tmp) / f"{m:g}min.{args.format}", m * 60, args.rate)
            size_mb = path.stat().st_size / 2**20
            for which in paths:
                rows[which][m] = r = measure(path, which)
                print(f"{m:g} min ({size_mb:.0f} MB {args.format}, {args.rate} Hz), {which}: peak RSS "
                      f"{r['peak_rss_mb']:.0f} MB (after imports {r['baseline_rss_mb']:.0f} MB), {r['windows']} "
                      f"windows, {r['seconds']:.1f} s", flush=True)
            path.unlink()
    print("\n| audio | " + " | ".join(f"{w} peak RSS" for w in paths) + " |")
    print("|---|" + "---|" * len(paths))
    for m in minutes:
        print(f"| {m:g} min | " + " | ".join(f"{rows[w][m]['peak_rss_mb']:,.0f} MB" for w in paths) + " |")
    if len(minutes) > 1:
        lo, hi = min(minutes), max(minutes)
        print("| ratio " + f"{hi:g} / {lo:g} min | " +
              " | ".join(f"{rows[w][hi]['peak_rss_mb'] / rows[w][lo]['peak_rss_mb']:.2f}×" for w in paths) + " |")
    if {"streamed", "whole"} <= set(paths):
        for m in minutes:
            a, b = rows["streamed"][m]["feature_sum"], rows["whole"][m]["feature_sum"]
            print(f"{m:g} min: feature sums streamed {a:.6e}, whole {b:.6e} (relative difference "
                  f"{abs(a - b) / abs(b):.1e})")


if __name__ == "__main__":
    main()
