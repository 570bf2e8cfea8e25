"""Sequence-parallel attention on 1, 2 and 4 CPU processes (gloo) at the same total length, side by side: per-rank
peak memory and forward+backward time for ring (contiguous shards), zigzag ring, Ulysses and the 2×2 hybrid.

    python benchmarks/sequence_parallel.py                  # 16K tokens
    python benchmarks/sequence_parallel.py --seq-len 4096   # quicker

1 sequence, 16 heads × 128, fp32, causal. The 1-process row is the same chunked kernel on the whole sequence. Per-rank
peak memory is the growth of each process's peak RSS over its size just before the call (inputs allocated), the
largest over ranks; time is the slowest rank's. Each point runs twice: once for time with the default allocator, and
once for memory with glibc's mmap threshold pinned at 1 MB (MALLOC_MMAP_THRESHOLD_), so that every tensor of 1 MB or
more is returned to the OS when freed and peak RSS is the peak of live tensors, not what glibc's heap kept from freed
ones (by default its threshold climbs to 32 MB, and freed per-token buffers stay resident, by different amounts for
different schemes). The pinned pass is slower, which is why time comes from the other. Every process runs one thread: on this 2-core machine 4 processes
share 2 cores, so times measure the scheme's overheads, not a speed-up; memory is what SP is for here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _points import peak_rss_mb, rss_mb  # noqa: E402

HEADS, HEAD_DIM = 16, 128  # d_model 2048: the per-token tensors, not the kernel's fixed tile workspace, dominate


def _rank(rank: int, world: int, kind: str, seq_len: int, out_dir: str) -> None:
    import torch
    import torch.distributed as dist

    from zoo.kernels.attention import attention
    from zoo.sequence_parallel import SequenceParallel, shard_indices

    mode = "contiguous" if kind == "ring" else "zigzag"
    n = seq_len // world
    g = torch.Generator().manual_seed(rank)
    q, k, v = (torch.randn(1, HEADS, n, HEAD_DIM, generator=g, requires_grad=True) for _ in range(3))
    ulysses = ring = None
    if kind == "hybrid":
        from torch.distributed.device_mesh import init_device_mesh

        mesh = init_device_mesh("cpu", (2, world // 2), mesh_dim_names=("ring", "ulysses"))
        ulysses, ring = mesh.get_group("ulysses"), mesh.get_group("ring")
    positions = shard_indices(seq_len, world, rank, mode)
    sp = SequenceParallel({"zigzag_ring": "ring", "ring": "ring"}.get(kind, kind), positions,
                          ulysses_group=ulysses, ring_group=ring) if kind != "local" else None
    dist.barrier()
    base = rss_mb()
    t0 = time.perf_counter()
    out = attention(q, k, v, causal=True, backend="chunked") if sp is None else sp.attention(q, k, v, None, True)
    out.backward(torch.ones_like(out))
    elapsed = time.perf_counter() - t0
    dist.barrier()
    Path(out_dir, f"{rank}.json").write_text(json.dumps({"time_s": elapsed, "peak_mb": peak_rss_mb() - base}))


def _measure(kind: str, world: int, seq_len: int, live_memory: bool) -> list[dict]:
    from zoo.sequence_parallel.testing import run_distributed

    saved = os.environ.get("MALLOC_MMAP_THRESHOLD_")
    if live_memory:  # read by glibc when each spawned process starts
        os.environ["MALLOC_MMAP_THRESHOLD_"] = str(2**20)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run_distributed(_rank, world, kind, seq_len, tmp, timeout_s=1800)
            return [json.loads(p.read_text()) for p in Path(tmp).glob("*.json")]
    finally:
        os.environ.pop("MALLOC_MMAP_THRESHOLD_", None)
        if saved is not None:
            os.environ["MALLOC_MMAP_THRESHOLD_"] = saved


def run(kind: str, world: int, seq_len: int) -> dict:
    timed = _measure(kind, world, seq_len, live_memory=False)
    live = _measure(kind, world, seq_len, live_memory=True)
    return {"kind": kind, "world": world, "time_s": max(r["time_s"] for r in timed),
            "peak_mb": max(r["peak_mb"] for r in live),
            "peak_rss_default_malloc_mb": max(r["peak_mb"] for r in timed)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--seq-len", type=int, default=16384)
    p.add_argument("--json", default=None)
    p.add_argument("--points", default=None, help="e.g. local:1,ring:4 (default: all)")
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    points = [("local", 1)] + [(k, w) for w in (2, 4) for k in ("ring", "zigzag_ring", "ulysses")] + [("hybrid", 4)]
    if args.points:
        points = [(x.split(":")[0], int(x.split(":")[1])) for x in args.points.split(",")]
    rows = []
    for kind, world in points:
        row = run(kind, world, args.seq_len)
        rows.append(row)
        print(f"{kind:<12} P={world}: {row['time_s']:.2f} s, {row['peak_mb']:.0f} MB per rank "
              f"({row['peak_rss_default_malloc_mb']:.0f} MB RSS with the default allocator)", flush=True)
    base = rows[0]["peak_mb"]
    print(f"\n{args.seq_len} tokens, causal, {HEADS} heads × {HEAD_DIM}, fp32, fwd+bwd; 1 thread per process\n")
    base_rss = rows[0]["peak_rss_default_malloc_mb"]
    print("| scheme | processes | time (slowest rank) | peak live memory per rank | ÷ 1 process "
          "| peak RSS, default allocator | ÷ 1 process |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        rss = r["peak_rss_default_malloc_mb"]
        print(f"| {r['kind']} | {r['world']} | {r['time_s']:.2f} s | {r['peak_mb']:.0f} MB | "
              f"{r['peak_mb'] / base:.2f}× | {rss:.0f} MB | {rss / base_rss:.2f}× |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
