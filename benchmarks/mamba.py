"""Mamba LM on CPU: the zoo against transformers' MambaForCausalLM (its PyTorch path), same weights, side by side.

    python benchmarks/mamba.py [--widths 512,1536] [--lengths 1024,4096,16384] [--modes fwd,train] [--timeout 300]

d_inner 512 is d_model 256, d_inner 1536 is d_model 768 (expand 2); state 16, 2 layers, batch 1, fp32, one thread.
``fwd`` is a no-grad forward, ``train`` one forward + backward of the LM loss. Every (model, mode, width, length)
point runs in its own process (peak RSS is that point's own) after one warm-up pass on 128 tokens, zoo and transformers interleaved, and both models get
the weights of one random MambaForCausalLM (the zoo loads them with zoo.load_pretrained and its logits are checked
against transformers' before timing). A point past --timeout seconds is reported as such.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _points import MEMORY_CAP_GB, cap_memory, peak_rss_mb


WARMUP_TOKENS = 128


def build_checkpoint(width: int, root: Path) -> Path:
    import torch
    from transformers import MambaConfig, MambaForCausalLM

    path = root / f"mamba-{width}"
    if not path.exists():
        torch.manual_seed(0)
        cfg = MambaConfig(vocab_size=256, hidden_size=width // 2, intermediate_size=width, state_size=16,
                          num_hidden_layers=2, expand=2, use_mambapy=False)
        MambaForCausalLM(cfg).save_pretrained(path)
    return path


def point(impl: str, mode: str, ckpt: str, length: int) -> dict:
    import torch

    cap_memory()
    torch.set_num_threads(1)
    torch.manual_seed(1)
    ids = torch.randint(0, 256, (1, length))
    if impl == "transformers":
        from transformers import MambaForCausalLM

        model = MambaForCausalLM.from_pretrained(ckpt)

        def logits_of(x):
            return model(x, use_cache=False).logits
    else:
        import zoo

        model = zoo.load_pretrained(ckpt)

        def logits_of(x):
            return model(x).logits
    model.train(mode == "train")

    def run(x):
        if mode == "train":
            logits = logits_of(x)
            torch.nn.functional.cross_entropy(logits[0, :-1], x[0, 1:]).backward()
        else:
            with torch.no_grad():
                logits_of(x)

    run(ids[:, :WARMUP_TOKENS])  # first-call costs (lazy imports, oneDNN primitives) are not the model's speed
    t0 = time.perf_counter()
    run(ids)
    seconds = time.perf_counter() - t0
    return {"impl": impl, "mode": mode, "seq_len": length, "total_s": seconds, "tokens_per_s": length / seconds,
            "peak_mb": peak_rss_mb()}


def check_equal(ckpt: str) -> float:
    import torch
    from transformers import MambaForCausalLM

    import zoo

    ids = torch.randint(0, 256, (1, 300))
    with torch.no_grad():
        ref = MambaForCausalLM.from_pretrained(ckpt)(ids, use_cache=False).logits
        out = zoo.load_pretrained(ckpt)(ids).logits
    return (ref - out).abs().max().item()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--widths", default="512,1536")
    p.add_argument("--lengths", default="1024,4096,16384")
    p.add_argument("--modes", default="fwd,train")
    p.add_argument("--timeout", type=int, default=300)
    p.add_argument("--point", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.point:  # impl:mode:ckpt:length, run in a fresh process by the parent
        impl, mode, ckpt, length = args.point.split(":")
        print(json.dumps(point(impl, mode, ckpt, int(length))))
        return
    root = Path(tempfile.mkdtemp(prefix="zoo-bench-mamba-"))
    rows = []
    for width in [int(w) for w in args.widths.split(",")]:
        ckpt = build_checkpoint(width, root)
        print(f"d_inner {width}: max |zoo - transformers| logits = {check_equal(str(ckpt)):.1e}", flush=True)
        for mode in args.modes.split(","):
            for length in [int(n) for n in args.lengths.split(",")]:
                for impl in ("zoo", "transformers"):
                    cmd = [sys.executable, __file__, "--point", f"{impl}:{mode}:{ckpt}:{length}"]
                    try:
                        res = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
                        last = (res.stderr.strip().splitlines() or ["?"])[-1]
                        row = (json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else
                               {"error": f"out of memory ({MEMORY_CAP_GB} GB cap)" if "alloc" in last or
                                "MemoryError" in last else last[:100]})
                    except subprocess.TimeoutExpired:
                        row = {"error": f"> {args.timeout} s"}
                    row.update(impl=impl, mode=mode, seq_len=length, width=width)
                    rows.append(row)
                    shown = row.get("error") or f"{row['total_s']:.2f} s, {row['peak_mb']:.0f} MB"
                    print(f"  {mode:<5} {length:>6} {impl:<12} {shown}", flush=True)
    print(f"\none thread, fp32, batch 1, memory cap {MEMORY_CAP_GB} GB per point\n")
    print("| d_inner | mode | seq_len | zoo tokens/s / peak | transformers tokens/s / peak | zoo ÷ transformers tokens/s |")
    print("|---|---|---|---|---|---|")
    for r in rows[::2]:
        z, t = r, next(x for x in rows if x["impl"] == "transformers" and all(
            x[k] == r[k] for k in ("mode", "seq_len", "width")))

        def cell(x):
            return x.get("error") or f"{x['tokens_per_s']:.0f} / {x['peak_mb']:.0f} MB"
        if "error" in z:
            ratio = "–"
        elif "error" in t:
            ratio = (f"> {z['tokens_per_s'] * args.timeout / z['seq_len']:.0f}×" if t["error"].startswith(">") else
                     "only the zoo fits" if t["error"].startswith("out of memory") else "–")
        else:
            ratio = f"{z['tokens_per_s'] / t['tokens_per_s']:.2f}×"
        print(f"| {r['width']} | {r['mode']} | {r['seq_len']} | {cell(z)} | {cell(t)} | {ratio} |")


if __name__ == "__main__":
    main()
