"""Scale-out switches shared by every modality: activation checkpointing per block, FSDP (PyTorch's ``fully_shard``)
over all ranks of a data × sequence-parallel mesh, and the Lightning pieces that turn them on from a config.

- ``set_activation_checkpointing(model)``: every outermost :class:`zoo.block.Block` keeps only its input and
  recomputes its activations in backward. From a YAML: ``trainer.callbacks: [{class_path:
  zoo.parallel.ActivationCheckpointing}]``.
- ``apply_fsdp(model, mesh)``: each outermost block is one FSDP unit, and so is every other module that owns
  parameters (see ``fsdp_units``), then the root. Parameters, gradients and optimizer states are sharded over *all*
  ranks of ``mesh`` — sequence-parallel ranks hold the same weights, so they shard them
  too (as torchtitan does with data × context parallel). Gradients are averaged over all ranks; a sequence-parallel
  loss is therefore scaled by the SP size (LongVILA's module does), so that the average is the full-batch gradient.
- ``FSDPStrategy``: Lightning's ModelParallelStrategy (FSDP2 over a DeviceMesh, CPU/gloo or CUDA/NCCL) that applies
  ``apply_fsdp`` itself, so any zoo LightningModule trains with ``--trainer.strategy zoo.parallel.FSDPStrategy``,
  and saves one full ``.ckpt`` that ``zoo.load_pretrained`` reads.
- ``sequence_parallel_mesh(kind, sp_size, hybrid_mesh)``: the (data, ring, Ulysses) DeviceMesh of a
  sequence-parallel run and its process groups, for the modules that shard sequences themselves (LongVILA's MM-SP).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import ModelParallelStrategy
from torch import nn

from .block import Block

PARAM_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
SP_KINDS = ("ring", "ulysses", "hybrid")


def mesh_device_type() -> str:
    """The DeviceMesh device of this process group: ``cuda`` under NCCL, else ``cpu`` (gloo)."""
    import torch.distributed as dist

    return "cuda" if torch.cuda.is_available() and dist.get_backend() == "nccl" else "cpu"


def sequence_parallel_shape(world: int, kind: str, sp_size: int | None = None,
                            hybrid_mesh: list[int] | None = None) -> tuple[int, int, int]:
    """(data-parallel, ring, Ulysses) sizes of ``world`` ranks: SP groups of ``sp_size`` (default: all ranks), each
    a ring of Ulysses groups for ``hybrid`` (``hybrid_mesh = [ring, ulysses]``), else one ring or one Ulysses group
    (the ring dimension holds it)."""
    if kind not in SP_KINDS:
        raise ValueError(f"sequence_parallel must be one of {', '.join(SP_KINDS)} (or null: none), got {kind!r}")
    sp = sp_size or world
    if world % sp:
        raise ValueError(f"sp_size {sp} does not divide the {world} processes")
    if kind != "hybrid":
        return world // sp, sp, 1
    if not hybrid_mesh or len(hybrid_mesh) != 2:
        raise ValueError("sequence_parallel: hybrid needs hybrid_mesh: [ring_size, ulysses_size]")
    ring, uly = hybrid_mesh
    if ring * uly != sp:
        raise ValueError(f"hybrid_mesh {ring}×{uly} does not multiply to sp_size {sp}")
    return world // sp, ring, uly


@dataclass
class SequenceParallelMesh:
    """A run's ``("dp", "ring", "ulysses")`` DeviceMesh, ranks in row-major order (the ranks of one SP group are
    consecutive, Ulysses innermost, so a 2-D run keeps its all-to-alls inside a node), and this rank's groups:
    ``group`` spans its whole SP group; ``ring_group`` / ``ulysses_group`` are set for ``hybrid`` only."""

    kind: str
    mesh: object  # torch.distributed.device_mesh.DeviceMesh
    group: object
    ring_group: object | None
    ulysses_group: object | None

    @property
    def sp_size(self) -> int:
        return self.mesh["ring"].size() * self.mesh["ulysses"].size()


def sequence_parallel_mesh(kind: str, sp_size: int | None = None,
                           hybrid_mesh: list[int] | None = None) -> SequenceParallelMesh:
    """Build the mesh of :func:`sequence_parallel_shape` over the initialised default process group (every rank
    calls this, as DeviceMesh requires)."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    if not dist.is_initialized():
        raise RuntimeError(f"sequence_parallel={kind!r} needs several processes: run with --trainer.devices N "
                           "(and --trainer.strategy ddp), or set sequence_parallel: null")
    shape = sequence_parallel_shape(dist.get_world_size(), kind, sp_size, hybrid_mesh)
    mesh = init_device_mesh(mesh_device_type(), shape, mesh_dim_names=("dp", "ring", "ulysses"))
    group = mesh["ring", "ulysses"]._flatten("sp").get_group()
    if kind != "hybrid":
        return SequenceParallelMesh(kind, mesh, group, None, None)
    return SequenceParallelMesh(kind, mesh, group, mesh["ring"].get_group(), mesh["ulysses"].get_group())


def _is_block(module: nn.Module) -> bool:
    # zoo Blocks, and modality blocks with the same checkpointing switch (Caduceus' RCPSBlock)
    return isinstance(module, Block) or isinstance(getattr(module, "checkpointing", None), bool)


def outer_blocks(model: nn.Module) -> list[nn.Module]:
    """The blocks of ``model`` that are not inside another block (HSA's chunk encoder has inner ones)."""
    found: list[nn.Module] = []

    def visit(module: nn.Module) -> None:
        for child in module.children():
            if _is_block(child):
                found.append(child)
            else:
                visit(child)

    visit(model)
    return found


def set_activation_checkpointing(model: nn.Module, enabled: bool = True) -> int:
    """Turn per-block activation checkpointing on or off; returns how many blocks it covers (raises if none)."""
    blocks = outer_blocks(model)
    if not blocks:
        raise ValueError(f"{type(model).__name__} has no zoo Block to checkpoint")
    for block in blocks:
        block.checkpointing = enabled
    return len(blocks)


def fsdp_units(model: nn.Module) -> list[nn.Module]:
    """The modules that become FSDP units, innermost first: every outermost block, then every other module that owns
    parameters directly (embeddings, heads, norms, a vision tower's layers). Multimodal models call their parts
    (``lm.embed``, the vision tower) outside the root's forward, and a unit's weights are gathered only when that
    unit itself is called. A parameter shared by several modules (tied embeddings) goes to their nearest common
    ancestor instead. A model whose forward reads a child's weight directly (Caduceus' head reads ``embed.weight``)
    names that child in ``fsdp_in_parent``: it stays in the enclosing unit, gathered for the whole forward."""
    blocks = outer_blocks(model)
    in_block = {id(m) for b in blocks for m in b.modules()}
    kept = [f"{name}.{child}" if name else child for name, module in model.named_modules()
            for child in getattr(module, "fsdp_in_parent", ())]
    owners: dict[int, list[str]] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        if id(module) in in_block:
            continue
        for keep in kept:  # credit the parameters to the module that declared the child
            if name == keep or name.startswith(keep + "."):
                name = keep.rpartition(".")[0]
                break
        for p in module.parameters(recurse=False):
            owners.setdefault(id(p), []).append(name)
    names = {name for paths in owners.values() if len(paths) == 1 for name in paths}
    for paths in owners.values():
        if len(paths) > 1:
            parts = [path.split(".") if path else [] for path in paths]
            common = []
            for level in zip(*parts):
                if len(set(level)) > 1:
                    break
                common.append(level[0])
            names.add(".".join(common))
    modules = dict(model.named_modules())
    # innermost first, so that each unit holds only the parameters its descendants' units do not
    return blocks + [modules[name] for name in sorted(names, key=lambda n: -n.count(".")) if name]


def apply_fsdp(model: nn.Module, mesh=None, param_dtype: str | None = None, reduce_dtype: str | None = None,
               reshard_after_forward: bool = True) -> nn.Module:
    """Shard ``model`` in place with FSDP2: the units of :func:`fsdp_units`, then the root.

    ``mesh``: a 1-D DeviceMesh over the ranks that share the weights (default: all ranks). ``param_dtype`` /
    ``reduce_dtype`` ("bfloat16", …): FSDP mixed precision — compute in that dtype, keep fp32 master weights.
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    if mesh is None:
        import torch.distributed as dist
        from torch.distributed.device_mesh import init_device_mesh

        mesh = init_device_mesh(mesh_device_type(), (dist.get_world_size(),))
    for name, value in (("param_dtype", param_dtype), ("reduce_dtype", reduce_dtype)):
        if value is not None and value not in PARAM_DTYPES:
            raise ValueError(f"{name} must be one of {sorted(PARAM_DTYPES)}, got {value!r}")
    mp = MixedPrecisionPolicy(param_dtype=PARAM_DTYPES.get(param_dtype), reduce_dtype=PARAM_DTYPES.get(reduce_dtype))
    for unit in fsdp_units(model):
        if unit is not model:
            fully_shard(unit, mesh=mesh, mp_policy=mp, reshard_after_forward=reshard_after_forward)
    # the root stays unsharded between forward and backward: its backward hooks are found by walking the forward's
    # output tensors, which zoo models return inside dataclasses (LMOutput) that FSDP does not look into
    fully_shard(model, mesh=mesh, mp_policy=mp, reshard_after_forward=False)
    return model


class ActivationCheckpointing(Callback):
    """``trainer.callbacks: [{class_path: zoo.parallel.ActivationCheckpointing}]``: checkpoint every block."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    def setup(self, trainer, pl_module, stage: str) -> None:
        set_activation_checkpointing(pl_module, self.enabled)


class FSDPStrategy(ModelParallelStrategy):
    """FSDP2 for any zoo LightningModule: ``--trainer.strategy zoo.parallel.FSDPStrategy``.

    The device mesh is Lightning's (data_parallel × "tensor_parallel"); here the inner dimension is the
    sequence-parallel group (``sp_size``, matching the module's ``sp_size``), so the distributed sampler splits
    batches over data-parallel groups only and the ranks of one SP group see the same batch. Weights are sharded over
    the whole mesh. ``param_dtype: bfloat16`` is FSDP mixed precision (fp32 master weights); Lightning's
    ``precision`` flag still selects autocast. Checkpoints are saved whole (one ``.ckpt``), not distributed.
    """

    def __init__(self, sp_size: int = 1, param_dtype: str | None = None, reduce_dtype: str | None = None,
                 reshard_after_forward: bool = True, save_distributed_checkpoint: bool = False,
                 process_group_backend: str | None = None, timeout=None):
        from lightning.fabric.plugins.collectives.torch_collective import default_pg_timeout

        super().__init__(data_parallel_size="auto", tensor_parallel_size=sp_size,
                         save_distributed_checkpoint=save_distributed_checkpoint,
                         process_group_backend=process_group_backend, timeout=timeout or default_pg_timeout)
        self.sp_size = sp_size
        self.fsdp_kwargs = dict(param_dtype=param_dtype, reduce_dtype=reduce_dtype,
                                reshard_after_forward=reshard_after_forward)

    def setup_environment(self) -> None:
        if self.num_processes * self.num_nodes % self.sp_size:
            raise ValueError(f"FSDPStrategy sp_size {self.sp_size} does not divide the "
                             f"{self.num_processes * self.num_nodes} processes")
        self._data_parallel_size = self.num_processes * self.num_nodes // self.sp_size
        super().setup_environment()

    def setup(self, trainer) -> None:
        # ModelParallelStrategy asks the module to parallelize itself in configure_model(); zoo modules do not need
        # to: the blocks are the FSDP units for every modality
        module = self.lightning_module
        if not getattr(module, "_zoo_fsdp_applied", False):
            net = module.model if isinstance(getattr(module, "model", None), nn.Module) else module
            apply_fsdp(net, self.device_mesh._flatten("fsdp"), **self.fsdp_kwargs)
            module._zoo_fsdp_applied = True
        module.configure_model = lambda: None  # satisfies ModelParallelStrategy's check; sharding is done above
        super().setup(trainer)


def _register_strategy() -> None:
    # `--trainer.strategy zoo_fsdp` (a bare class path given as the only strategy flag is read as a strategy *name*
    # by Lightning's str | Strategy argument; with init args, e.g. --trainer.strategy.sp_size 4, the class path works)
    from lightning.pytorch.strategies import StrategyRegistry

    if "zoo_fsdp" not in StrategyRegistry:
        StrategyRegistry.register("zoo_fsdp", FSDPStrategy, description="zoo FSDP2 over the data × SP mesh")


_register_strategy()
