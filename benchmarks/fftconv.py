"""Hyena's long convolution: FFT (fftconv) vs direct causal convolution (fftconv_ref), side by side, forward only.

    python benchmarks/fftconv.py [--lengths 4096,16384,65536] [--channels 64]

Batch 1, fp32, a full-length filter per channel (as Hyena's implicit filter is); best of 3 runs each.
"""

from __future__ import annotations

import argparse
import time

import torch

from zoo.kernels.fftconv import fftconv, fftconv_ref


def best_of(fn, *args, repeat=3) -> tuple[float, torch.Tensor]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(*args)
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--lengths", default="4096,16384,65536")
    p.add_argument("--channels", type=int, default=64)
    args = p.parse_args()
    torch.manual_seed(0)
    print("| seq_len | direct (ref) | FFT | speed-up | max abs error |")
    print("|---|---|---|---|---|")
    for length in [int(x) for x in args.lengths.split(",")]:
        u = torch.randn(1, args.channels, length)
        k = torch.randn(args.channels, length) * torch.exp(-torch.arange(length) / (length / 8))
        with torch.no_grad():
            t_ref, y_ref = best_of(fftconv_ref, u, k)
            t_fft, y_fft = best_of(fftconv, u, k)
        err = (y_ref - y_fft).abs().max().item()
        print(f"| {length} | {t_ref:.3f} s | {t_fft:.4f} s | {t_ref / t_fft:.0f}× | {err:.1e} |", flush=True)


if __name__ == "__main__":
    main()
