"""Frame sampling throughput: zoo's read_frames against raw decord on the same frames, side by side.

    python benchmarks/video_sampling.py [--video PATH] [--frames 8,32,128] [--repeats 5]

Both sides open the file and decode the same uniformly spaced frames (np.linspace(0, n-1, k, dtype=int)); raw is
``decord.VideoReader(path).get_batch(indices)``, zoo is ``read_frames(path, num_frames=k)`` (decord backend, which
adds timestamps and checks). Best of ``--repeats``; throughput ratio = raw time / zoo time (1.0 = no overhead).
Default video: tests/data/video/flipping_a_pancake.mkv (426×240, 310 frames).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

DEFAULT = Path(__file__).resolve().parents[1] / "tests" / "data" / "video" / "flipping_a_pancake.mkv"


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--video", type=Path, default=DEFAULT)
    p.add_argument("--frames", default="8,32,128")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    import decord

    from zoo.modalities.video import read_frames

    n = len(decord.VideoReader(str(args.video)))

    def raw(k):
        vr = decord.VideoReader(str(args.video), num_threads=1)
        return vr.get_batch(np.linspace(0, n - 1, k, dtype=int).tolist()).asnumpy()

    def zoo(k):
        return read_frames(args.video, num_frames=k, backend="decord")[0]

    print(f"{args.video.name}: {n} frames; best of {args.repeats}\n")
    print("| frames | raw decord | zoo read_frames | throughput ratio (raw ÷ zoo time) |")
    print("|---|---|---|---|")
    for k in [int(x) for x in args.frames.split(",")]:
        assert np.array_equal(raw(k), zoo(k)), "the two paths must return the same pixels"
        t_raw, t_zoo = best_of(lambda: raw(k), args.repeats), best_of(lambda: zoo(k), args.repeats)
        print(f"| {k} | {t_raw * 1000:.1f} ms | {t_zoo * 1000:.1f} ms | {t_raw / t_zoo:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
