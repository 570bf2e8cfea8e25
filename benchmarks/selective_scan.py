"""Chunked selective scan vs the sequential reference, side by side: forward+backward time and errors.

    python benchmarks/selective_scan.py [--lengths 1024,4096,16384] [--dim 16] [--state 16]

Batch 1, fp32, per-token B and C, delta through softplus, the same inputs for both paths.
"""

from __future__ import annotations

import argparse
import time

import torch

from zoo.kernels.selective_scan import selective_scan_chunked, selective_scan_ref


def timed(fn, inputs):
    leaves = [x for x in inputs if x is not None and x.requires_grad]
    t0 = time.perf_counter()
    out = fn(*inputs, delta_softplus=True)
    grads = torch.autograd.grad(out.sum(), leaves)
    return time.perf_counter() - t0, out.detach(), grads


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--lengths", default="1024,4096,16384")
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--state", type=int, default=16)
    args = p.parse_args()
    torch.manual_seed(0)
    print("| seq_len | reference fwd+bwd | chunked fwd+bwd | speed-up | max abs error (out) | max relative error (grads) |")
    print("|---|---|---|---|---|---|")
    for length in [int(x) for x in args.lengths.split(",")]:
        d, n = args.dim, args.state
        inputs = (
            torch.randn(1, d, length, requires_grad=True), torch.randn(1, d, length, requires_grad=True),
            (-torch.rand(d, n) - 0.5).requires_grad_(), torch.randn(1, n, length, requires_grad=True),
            torch.randn(1, n, length, requires_grad=True),
        )
        t_ref, out_ref, g_ref = timed(selective_scan_ref, inputs)
        t_chk, out_chk, g_chk = timed(selective_scan_chunked, inputs)
        err = (out_ref - out_chk).abs().max().item()
        # gradients of A and delta sum over thousands of tokens, so their error is reported relative to their size
        gerr = max(((a - b).abs().max() / a.abs().max()).item() for a, b in zip(g_ref, g_chk))
        print(f"| {length} | {t_ref:.3f} s | {t_chk:.3f} s | {t_ref / t_chk:.1f}× | {err:.1e} | {gerr:.1e} |",
              flush=True)


if __name__ == "__main__":
    main()
