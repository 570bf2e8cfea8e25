"""Attention paths side by side: forward+backward time and peak memory, each point in a fresh process.

    python benchmarks/attention.py                       # 4K, 16K, 32K, 64K
    python benchmarks/attention.py --lengths 4096,16384  # a quicker subset

1 sequence, 8 heads, head dim 64, fp32, on whatever CPU/GPU torch sees. The packed-document mask splits the sequence
into 4 equal causal documents (so a document never attends to another). Rows:
- sdpa_causal: PyTorch SDPA with is_causal (the floor: fused kernel, no mask tensor);
- sdpa_dense_docs: SDPA with the packed-document mask passed as a dense N×N boolean tensor;
- chunked_docs: zoo's chunked path with the same mask, evaluated per tile (fully masked tiles skipped);
- chunked_causal: zoo's chunked path with a plain causal mask (its raw speed against the fused kernel).
Peak memory is the growth of the process's peak RSS over its size just before the call (inputs already allocated).
"""

from __future__ import annotations

import argparse
import json
import time

from _points import cap_memory, peak_rss_mb, print_table, rss_mb, run_grid

PATHS = ["sdpa_causal", "sdpa_dense_docs", "chunked_docs", "chunked_causal"]


def measure(path: str, seq_len: int, heads: int, head_dim: int) -> dict:
    import torch

    from zoo.kernels.attention import attention, attention_chunked, make_mask

    torch.manual_seed(0)
    q, k, v = (torch.randn(1, heads, seq_len, head_dim, requires_grad=True) for _ in range(3))
    docs = torch.arange(seq_len)[None] * 4 // seq_len  # 4 equal documents

    def call():
        if path == "sdpa_causal":
            return attention(q, k, v, causal=True, backend="sdpa")
        if path == "sdpa_dense_docs":
            return attention(q, k, v, causal=True, segment_ids=docs, backend="sdpa")
        if path == "chunked_docs":
            return attention_chunked(q, k, v, make_mask(causal=True, segment_ids=docs))[0]
        if path == "chunked_causal":
            return attention_chunked(q, k, v, make_mask(causal=True))[0]
        raise ValueError(path)

    base = rss_mb()
    t0 = time.perf_counter()
    out = call()
    t1 = time.perf_counter()
    out.backward(torch.ones_like(out))
    t2 = time.perf_counter()
    peak = peak_rss_mb()
    return {"path": path, "seq_len": seq_len, "fwd_s": t1 - t0, "bwd_s": t2 - t1, "total_s": t2 - t0,
            "peak_mb": peak - base}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--lengths", default="4096,16384,32768,65536")
    p.add_argument("--paths", default=",".join(PATHS))
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--timeout", type=int, default=900, help="seconds per point")
    p.add_argument("--json", default=None)
    p.add_argument("--point", default=None, help=argparse.SUPPRESS)  # internal: run one point and print JSON
    args = p.parse_args()
    if args.point:
        path, n = args.point.split(":")
        cap_memory()
        print(json.dumps(measure(path, int(n), args.heads, args.head_dim)))
        return
    lengths = [int(x) for x in args.lengths.split(",")]
    paths = args.paths.split(",")
    rows = run_grid(__file__, lengths, paths, ["--heads", str(args.heads), "--head-dim", str(args.head_dim)],
                    args.timeout)
    print()
    print_table(rows, lengths, paths, "chunked_docs", "sdpa_causal")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
