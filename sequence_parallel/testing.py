"""Running a function on P CPU processes (gloo), for tests and examples: ``run_distributed(fn, world, *args)``.

Every process gets a ``timeout`` on its process group, so a rank that fails makes the others fail with an error
instead of hanging; an exception on any rank is raised in the caller.
"""

from __future__ import annotations

import datetime
import os
import tempfile

import torch.distributed as dist
import torch.multiprocessing as mp


def _entry(rank: int, world: int, store: str, timeout_s: float, fn, args) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)  # P processes share this machine's cores
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=timeout_s))
    try:
        fn(rank, world, *args)
        # no rank tears its group down while another still talks to it: gloo aborts the process ("terminate called
        # without an active exception") when a peer's connection closes under a pending operation
        try:
            dist.barrier()
        except RuntimeError:
            pass  # a peer failed or stalled (what a test may be checking): its own error is what the caller sees
    finally:
        dist.destroy_process_group()


def run_distributed(fn, world: int, *args, timeout_s: float = 60.0) -> None:
    """Call ``fn(rank, world, *args)`` in ``world`` spawned processes joined in a gloo group; re-raise failures."""
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_entry, args=(world, os.path.join(tmp, "store"), timeout_s, fn, args), nprocs=world, join=True)
