"""``python -m zoo.plan --config configs/NAME.yaml --params`` and per-device memory plans.

    python -m zoo.plan --config configs/longva_7b.yaml --params
    python -m zoo.plan --config configs/longva_7b.yaml --seq-len 131072 --devices 8 --sp ulysses=2,ring=2
    python -m zoo.plan --config configs/lm_passkey.yaml --seq-len 4096 --measure     # compare with a real CPU step

How the estimate is made: one training step (forward, backward, AdamW step) of the config's network is *simulated*
with fake tensors (``FakeTensorMode``: shapes and dtypes, no memory), on the tokens one device holds
(``seq_len / (ulysses·ring)``), and PyTorch's MemTracker records the peak of what it would allocate, by kind:
parameters, gradients, optimizer states, activations saved for backward, and the working set (temporaries: attention
tiles, logits, backward buffers). It runs the code training runs, so every mixer and backend is covered; kernels'
internal scratch buffers (the fused attention's tiles) are invisible to it. Then, per device:

- FSDP (``--strategy fsdp``, the default with ``--devices`` > 1) shards parameters, gradients and optimizer states
  over all devices (data × sequence parallel); DDP keeps full copies.
- Sequence parallelism divides the tokens, hence activations and the working set; the attention of the local
  tokens stands for ring / Ulysses attention (same saved tensors; ring adds one key/value block in flight).

``--measure`` runs the same step for real on this CPU in a fresh process and reports its peak resident memory (the
kernel's high-water mark, VmHWM) above the process's baseline, next to the estimate. glibc is told to return freed
memory, so the peak is the tensors' peak, not the allocator's cache.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .arguments import positive_int
from .configs import build_module, count_parameters, network, resolve_config

GIB = 2**30
KINDS = ("parameters", "gradients", "optimizer", "activations", "working_set")


@dataclass
class Plan:
    config: str
    parameters: int
    seq_len: int
    batch_size: int
    devices: int
    ulysses: int
    ring: int
    strategy: str
    checkpointing: bool
    precision: str
    tokens_per_device: int
    bytes: dict  # kind → bytes per device (with the chosen checkpointing)
    activations_without_checkpointing: int
    activations_with_checkpointing: int

    @property
    def total(self) -> int:
        return sum(self.bytes.values())


def parse_sp(text: str | None) -> tuple[int, int]:
    """``"ulysses=2,ring=4"`` → (2, 4); missing parts are 1."""
    sizes = {"ulysses": 1, "ring": 1}
    for part in (text or "").replace(" ", "").split(","):
        if not part:
            continue
        key, _, value = part.partition("=")
        if key not in sizes or not value.isdigit() or int(value) < 1:
            raise ValueError(f"--sp {text!r}: expected entries like ulysses=2,ring=4 (positive integers), got {part!r}")
        sizes[key] = int(value)
    return sizes["ulysses"], sizes["ring"]


def _language_model(net: nn.Module) -> nn.Module:
    # LongVA and Qwen2-Audio: at long context the language model over the interleaved sequence is what grows; the
    # encoders' activations are per frame / window and are not in this plan
    return getattr(net, "lm", net)


def _step_inputs(net: nn.Module, tokens: int, batch: int):
    """A training batch of ``tokens`` per row for this network, and how to get its loss."""
    from .lm import CausalLM

    name = type(net).__name__
    if isinstance(net, CausalLM) or name == "Caduceus":
        ids = torch.zeros(batch, tokens, dtype=torch.long)
        return lambda: net(ids, labels=ids).loss
    if name == "TimerXL":
        series = torch.zeros(batch, tokens * net.config.patch_len, 1)
        return lambda: net(series).float().pow(2).mean()
    raise TypeError(f"zoo.plan has no training batch for {name}")


def simulate_step(net_factory, tokens: int, batch: int, checkpointing: bool, precision: str) -> dict[str, int]:
    """Peak bytes of one steady-state training step by kind, simulated with fake tensors (nothing allocated)."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed._tools.mem_tracker import MemTracker

    from .parallel import set_activation_checkpointing

    with FakeTensorMode():
        net = _language_model(net_factory())
        if precision == "bf16-true":
            net = net.to(torch.bfloat16)
        net.train()
        if checkpointing:
            set_activation_checkpointing(net)
        loss_fn = _step_inputs(net, tokens, batch)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed")

        def step():
            with autocast:
                loss = loss_fn()
            loss.backward()
            opt.step()
            opt.zero_grad()

        step()  # the first step creates the optimizer states; the plan is for the steps after it
        tracker = MemTracker()
        tracker.track_external(net, opt)
        with tracker:
            step()
        peak = next(iter(tracker.get_tracker_snapshot("peak").values()))
    by_kind = {str(k).split(".")[-1]: v for k, v in peak.items()}
    return {"parameters": by_kind["PARAM"] + by_kind["BUFFER"], "gradients": by_kind["GRAD"],
            "optimizer": by_kind["OPT"], "activations": by_kind["ACT"], "working_set": by_kind["TEMP"] + by_kind["OTH"]}


def make_plan(config: str, seq_len: int, batch_size: int = 1, devices: int = 1, sp: str | None = None,
              strategy: str | None = None, checkpointing: bool = False, precision: str | None = None,
              overrides: list[str] = ()) -> Plan:
    ulysses, ring = parse_sp(sp)
    sp_size = ulysses * ring
    if devices % sp_size:
        raise ValueError(f"--devices {devices} is not a multiple of the sequence-parallel size {sp_size}")
    if seq_len % sp_size:
        raise ValueError(f"--seq-len {seq_len} does not split over {sp_size} sequence-parallel ranks")
    strategy = strategy or ("fsdp" if devices > 1 else "single")
    if strategy not in ("single", "ddp", "fsdp"):
        raise ValueError(f"--strategy must be single, ddp or fsdp, got {strategy!r}")
    module, trainer = build_module(config, overrides, device="meta")
    precision = str(precision or trainer.get("precision") or "32-true")
    if precision not in ("32-true", "32", "bf16-mixed", "bf16-true"):
        raise ValueError(f"precision {precision!r}: the plan knows 32-true, bf16-mixed and bf16-true")
    tokens = seq_len // sp_size

    def factory():
        return network(build_module(config, overrides, device="cpu")[0])

    runs = {flag: simulate_step(factory, tokens, batch_size, flag, precision) for flag in (False, True)}
    chosen = dict(runs[checkpointing])
    if strategy == "fsdp":
        for kind in ("parameters", "gradients", "optimizer"):
            chosen[kind] = -(-chosen[kind] // devices)
    return Plan(str(config), count_parameters(network(module)), seq_len, batch_size, devices, ulysses, ring, strategy,
                checkpointing, precision, tokens, chosen, runs[False]["activations"], runs[True]["activations"])


def measure_step(config: str, seq_len: int, batch_size: int, checkpointing: bool, overrides: list[str]) -> int:
    """Peak resident bytes of one real steady-state training step on this CPU, above the process baseline."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    cmd = [sys.executable, "-m", "zoo.plan", "--config", str(config), "--seq-len", str(seq_len), "--batch-size",
           str(batch_size), "--_measure-child", *(["--checkpointing"] if checkpointing else []), *overrides]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"the measured step failed:\n{res.stderr[-3000:]}")
    return int(json.loads(res.stdout.strip().splitlines()[-1])["peak_bytes"])


def _measure_child(config: str, seq_len: int, batch_size: int, checkpointing: bool, overrides: list[str]) -> None:
    from .parallel import set_activation_checkpointing

    def status_kib(field: str) -> int:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

    def rss() -> int:
        return status_kib("VmRSS") * 1024

    module, _ = build_module(config, overrides, device="cpu")
    del module  # built once so that lazy imports and caches are in the baseline, not in the peak
    base = rss()
    try:  # restart the kernel's resident high-water mark here (getrusage's maxrss would include the parent's, from
        # before exec, when the parent was large)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    net = _language_model(network(build_module(config, overrides, device="cpu")[0])).train()
    if checkpointing:
        set_activation_checkpointing(net)
    loss_fn = _step_inputs(net, seq_len, batch_size)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    for _ in range(2):
        loss_fn().backward()
        opt.step()
        opt.zero_grad()
    print(json.dumps({"peak_bytes": status_kib("VmHWM") * 1024 - base}))


def format_plan(plan: Plan, measured: int | None = None) -> str:
    g = lambda b: f"{b / GIB:9.3f}"  # noqa: E731
    sp = plan.ulysses * plan.ring
    lines = [
        f"config: {plan.config}",
        f"parameters: {plan.parameters}",
        f"devices {plan.devices} = data {plan.devices // sp} × sequence {sp} (ulysses {plan.ulysses} × ring "
        f"{plan.ring}); {plan.strategy}{' shards weights, gradients and optimizer over all devices' if plan.strategy == 'fsdp' else ''}",
        f"seq_len {plan.seq_len:,} → {plan.tokens_per_device:,} tokens per device, batch {plan.batch_size}, precision "
        f"{plan.precision}, activation checkpointing {'on' if plan.checkpointing else 'off'}",
        "",
        "                                   GiB per device",
        f"  parameters                      {g(plan.bytes['parameters'])}",
        f"  gradients                       {g(plan.bytes['gradients'])}",
        f"  optimizer states (AdamW)        {g(plan.bytes['optimizer'])}",
        f"  activations                     {g(plan.bytes['activations'])}   (checkpointing off "
        f"{plan.activations_without_checkpointing / GIB:.3f}, on {plan.activations_with_checkpointing / GIB:.3f})",
        f"  working set (attention, logits) {g(plan.bytes['working_set'])}",
        f"  total (peak)                    {g(plan.total)}",
    ]
    if measured is not None:
        lines.append(f"  measured peak (this CPU)        {g(measured)}   estimate / measured = {plan.total / measured:.3f}")
    return "\n".join(lines)


OVERRIDE_PREFIXES = ("--model.", "--trainer.", "--data.", "--seed_everything")


def main(argv: list[str] | None = None) -> Plan | int:
    parser = argparse.ArgumentParser(prog="python -m zoo.plan", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    parser.add_argument("--config", required=True, help="a fit YAML (path, or a name in configs/)")
    parser.add_argument("--params", action="store_true", help="print `parameters: N` (nothing allocated) and stop")
    parser.add_argument("--seq-len", type=positive_int, help="tokens per sequence")
    parser.add_argument("--batch-size", type=positive_int, default=1, help="sequences per data-parallel group")
    parser.add_argument("--devices", type=positive_int, default=1)
    parser.add_argument("--sp", default=None, help="sequence-parallel sizes, e.g. ulysses=2,ring=4")
    parser.add_argument("--strategy", choices=("single", "ddp", "fsdp"), default=None)
    parser.add_argument("--checkpointing", action="store_true", help="activation checkpointing per block")
    parser.add_argument("--precision", default=None, help="32-true, bf16-mixed or bf16-true (default: the YAML's)")
    parser.add_argument("--measure", action="store_true", help="also run the step on this CPU and compare")
    parser.add_argument("--json", default=None, help="write the plan (and measurement) here")
    parser.add_argument("--_measure-child", action="store_true", help=argparse.SUPPRESS)
    args, overrides = parser.parse_known_args(argv)
    stray = [a for a in overrides if a.startswith("-") and not a.startswith(OVERRIDE_PREFIXES)]
    if stray:  # only the YAML's own keys pass through to jsonargparse; a typo of an option above is an error
        parser.error(f"unrecognized arguments: {' '.join(stray)} (config overrides start with "
                     f"{', '.join(OVERRIDE_PREFIXES)})")
    config = resolve_config(args.config)
    if args._measure_child:
        _measure_child(config, args.seq_len, args.batch_size, args.checkpointing, overrides)
        return 0
    if args.params:
        module, _ = build_module(config, overrides, device="meta")
        print(f"parameters: {count_parameters(network(module))}")
        return 0
    if not args.seq_len:
        parser.error("give --params, or --seq-len N for a memory plan")
    plan = make_plan(config, args.seq_len, args.batch_size, args.devices, args.sp, args.strategy, args.checkpointing,
                     args.precision, overrides)
    measured = None
    if args.measure:
        if args.devices != 1 or plan.precision not in ("32-true", "32"):
            parser.error("--measure runs one fp32 process on this CPU: use --devices 1 --precision 32-true")
        measured = measure_step(config, args.seq_len, args.batch_size, args.checkpointing, overrides)
    print(format_plan(plan, measured))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**asdict(plan), "total": plan.total, "measured_peak": measured}, f, indent=2)
    return plan


if __name__ == "__main__":
    main()
