"""Shared by the benchmarks that measure peak memory: each (path, seq_len) point runs in a fresh process, so that one
point's peak RSS is not another's, under an address-space cap, so that a point that needs too much fails cleanly."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

MEMORY_CAP_GB = 18


def rss_mb() -> float:
    """Current resident set size of this process, MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP_GB * 2**30, resource.RLIM_INFINITY))


def run_point(script: str, path: str, seq_len: int, extra: list[str], timeout: int) -> dict:
    """Run ``script --point path:seq_len *extra`` in a subprocess; its last stdout line is the row (JSON)."""
    cmd = [sys.executable, script, "--point", f"{path}:{seq_len}", *extra]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"path": path, "seq_len": seq_len, "error": f"timeout > {timeout}s"}
    if res.returncode == 0:
        return json.loads(res.stdout.strip().splitlines()[-1])
    last = (res.stderr.strip().splitlines() or ["?"])[-1]
    oom = "memory" in last.lower() or res.returncode in (-9, 137)
    return {"path": path, "seq_len": seq_len, "error": f"out of memory (cap {MEMORY_CAP_GB} GB)" if oom else last[:120]}


def run_grid(script: str, lengths: list[int], paths: list[str], extra: list[str], timeout: int) -> list[dict]:
    """Every (seq_len, path) point in its own process, printed as it finishes; rows with time/peak or an error."""
    rows = []
    for n in lengths:
        for path in paths:
            row = run_point(script, path, n, extra, timeout)
            rows.append(row)
            shown = row.get("error") or f"{row['total_s']:.2f} s, {row['peak_mb']:.0f} MB"
            print(f"{n:>6} {path:<16} {shown}", flush=True)
    return rows


def print_table(rows: list[dict], lengths: list[int], paths: list[str], numerator: str, denominator: str) -> None:
    """Markdown table: time / peak per path and length, plus the time ratio numerator ÷ denominator."""
    print("| seq_len | " + " | ".join(f"{p} time / peak" for p in paths) + f" | {numerator} ÷ {denominator} time |")
    print("|---" * (len(paths) + 2) + "|")
    for n in lengths:
        by = {r["path"]: r for r in rows if r["seq_len"] == n}
        cells = [by[p].get("error") or f"{by[p]['total_s']:.2f} s / {by[p]['peak_mb']:.0f} MB" for p in paths]
        a, b = by.get(numerator, {}), by.get(denominator, {})
        ratio = f"{a['total_s'] / b['total_s']:.2f}×" if "total_s" in a and "total_s" in b else "–"
        print(f"| {n} | " + " | ".join(cells) + f" | {ratio} |")
