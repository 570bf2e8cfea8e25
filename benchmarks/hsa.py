"""HSA against dense attention, side by side: forward+backward time and peak memory, each point in a fresh process.

    python benchmarks/hsa.py                        # 4K, 16K, 64K
    python benchmarks/hsa.py --lengths 4096,16384   # a quicker subset

The geometry of RAMba-370M's HSA layer: 1 sequence, 16 query heads of dim 64 over 1 key/value group, retrieval dim
1024, chunks of 64, top-8, stick-breaking weights, fp32. Landmarks are given (random), so the chunk encoder's cost,
O(N·d²) like any projection, is not in the HSA row. Rows:
- hsa: zoo.kernels.hsa.hsa, the blocked path (256 queries at a time, chosen chunks gathered, blocks recomputed in the
  backward pass);
- dense_eager: causal attention with the N×N score matrix materialised (zoo's attention_ref; what an eager
  implementation of full or of masked-sparse attention such as hsa_ref costs at the least);
- sdpa_causal: PyTorch SDPA with is_causal (fused, linear memory: the speed floor of *full* attention).
Peak memory is the growth of the process's peak RSS over its size just before the call (inputs already allocated).
"""

from __future__ import annotations

import argparse
import json
import time

from _points import MEMORY_CAP_GB, cap_memory, peak_rss_mb, print_table, rss_mb, run_grid

PATHS = ["hsa", "dense_eager", "sdpa_causal"]
HEADS, GROUPS, HEAD_DIM, RETRIEVAL_DIM, CHUNK, TOP_K = 16, 1, 64, 1024, 64, 8


def measure(path: str, seq_len: int) -> dict:
    import torch

    from zoo.kernels.attention import attention
    from zoo.kernels.hsa import hsa

    torch.manual_seed(0)
    q = torch.randn(1, seq_len, HEADS, HEAD_DIM, requires_grad=True)
    k, v = (torch.randn(1, seq_len, GROUPS, HEAD_DIM, requires_grad=True) for _ in range(2))
    q_r = torch.randn(1, seq_len, GROUPS, RETRIEVAL_DIM // GROUPS, requires_grad=True)
    landmarks = torch.randn(1, seq_len // CHUNK, GROUPS, RETRIEVAL_DIM // GROUPS, requires_grad=True)

    def call():
        if path == "hsa":
            return hsa(q, k, v, q_r, landmarks, chunk_size=CHUNK, top_k=TOP_K)
        heads_first = [t.transpose(1, 2) for t in (q, k, v)]
        if path == "dense_eager":
            return attention(*heads_first, causal=True, backend="ref")
        if path == "sdpa_causal":
            return attention(*heads_first, causal=True, backend="sdpa")
        raise ValueError(path)

    base = rss_mb()
    t0 = time.perf_counter()
    out = call()
    t1 = time.perf_counter()
    out.backward(torch.ones_like(out))
    t2 = time.perf_counter()
    return {"path": path, "seq_len": seq_len, "fwd_s": t1 - t0, "bwd_s": t2 - t1, "total_s": t2 - t0,
            "peak_mb": peak_rss_mb() - base}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--lengths", default="4096,16384,65536")
    p.add_argument("--paths", default=",".join(PATHS))
    p.add_argument("--timeout", type=int, default=1200, help="seconds per point")
    p.add_argument("--json", default=None)
    p.add_argument("--point", default=None, help=argparse.SUPPRESS)  # internal: run one point and print JSON
    args = p.parse_args()
    if args.point:
        path, n = args.point.split(":")
        cap_memory()
        print(json.dumps(measure(path, int(n))))
        return
    lengths = [int(x) for x in args.lengths.split(",")]
    paths = args.paths.split(",")
    rows = run_grid(__file__, lengths, paths, [], args.timeout)
    print(f"\nfp32, fwd+bwd, {HEADS} heads × {HEAD_DIM} over {GROUPS} KV group, chunk {CHUNK}, top-{TOP_K}; "
          f"memory cap {MEMORY_CAP_GB} GB\n")
    print_table(rows, lengths, paths, "hsa", "sdpa_causal")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
