"""A parallelize plan derived from the spec (issue #16 part 2), applied in torchtitan's order:

    model = parallelize(model, graph, ParallelConfig(mode="fsdp", checkpoint="block"))

1. activation checkpointing of every block, or of every k-th (`checkpoint_wrapper`, non-reentrant);
2. `torch.compile` of each block (optional);
3. FSDP2: `fully_shard` of each block, then of the final norm and head as one group (when they
   own their parameters: a head tied to the embedding stays with the root), then of the root —
   with `MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32)` on request; or DDP.

The blocks are the IR's repeated modules — the elements of the generated module's ModuleLists
(`blocks.3`, Swin's `layers.1.blocks.0`, ResNet's `layer2.1`), innermost level — found from the
graph, not written per family. Needs an initialised process group for FSDP and DDP.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from graphspec.ir import Graph


class ParallelError(ValueError):
    """A plan that cannot apply to this model (the CLI reports it with exit code 2)."""


@dataclass(frozen=True)
class ParallelConfig:
    mode: str = "none"  # "none" | "fsdp" | "ddp"
    checkpoint: str | int = "none"  # "none" | "block" (every block) | k: every k-th block
    compile: bool = False  # torch.compile each block
    param_dtype: torch.dtype | None = None  # FSDP: e.g. torch.bfloat16 (MixedPrecisionPolicy)
    reduce_dtype: torch.dtype = torch.float32  # FSDP: gradients reduced in this dtype
    reshard_after_forward: bool = True  # FSDP: free the unsharded block after its forward

    def __post_init__(self):
        if self.mode not in ("none", "fsdp", "ddp"):
            raise ParallelError(f"parallel mode {self.mode!r}: use none, fsdp or ddp")
        k = self.checkpoint
        if not (k in ("none", "block") or (isinstance(k, int) and not isinstance(k, bool) and k >= 1)):
            raise ParallelError(f"activation checkpointing {k!r}: use none, block, or a positive k (every k-th block)")


def block_paths(graph: Graph) -> list[str]:
    """The module paths of the repeated blocks, in order: modules whose path ends in a list index
    (`blocks.3`) and that hold no such list themselves (Swin: its blocks, not its stages), at a
    level with two or more of them.
    nn.Sequential containers are not blocks; their elements are (ResNet's `layer2.1`)."""
    listed = [p for p, info in graph.modules.items()
              if re.search(r"(^|\.)\d+$", p) and info.cls != "Sequential"]
    leaves = [p for p in listed if not any(q.startswith(p + ".") for q in listed)]
    pattern = lambda p: re.sub(r"(^|\.)\d+(?=\.|$)", r"\1*", p)  # noqa: E731  layers.*.blocks.*
    count: dict[str, int] = {}
    for p in leaves:
        count[pattern(p)] = count.get(pattern(p), 0) + 1
    return [p for p in leaves if count[pattern(p)] > 1]  # one block alone is not a repeated structure


def _graph(spec_or_graph) -> Graph:
    if isinstance(spec_or_graph, Graph):
        return spec_or_graph
    if hasattr(spec_or_graph, "graph"):  # graphspec.Model
        return spec_or_graph.graph
    import graphspec

    return graphspec.load(spec_or_graph).graph


def _replace(model: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, leaf = path.rpartition(".")
    model.get_submodule(parent)._modules[leaf] = new  # ModuleList and Sequential elements by index


def _tail(model: nn.Module, blocks: list[nn.Module]) -> list[nn.Module]:
    """The root's children after its last block container (the final norm, the head), if none
    of their parameters is shared with the rest (a tied head stays with the root)."""
    children = list(model.named_children())
    holding = [i for i, (_, m) in enumerate(children) if any(b is m or _contains(m, b) for b in blocks)]
    if not holding:
        return []
    tail = [m for _, m in children[holding[-1] + 1:] if any(True for _ in m.parameters())]
    mine = {id(p) for m in tail for p in m.parameters()}
    rest = {id(p) for _, m in children[:holding[-1] + 1] for p in m.parameters()}
    return tail if tail and not (mine & rest) else []


def _contains(m: nn.Module, b: nn.Module) -> bool:
    return any(x is b for x in m.modules())


def parallelize(model: nn.Module, spec_or_graph, config: ParallelConfig = ParallelConfig()) -> nn.Module:
    """Apply `config` to a generated module (of the same spec) and return the module to train:
    the model itself (sharded in place by FSDP), or its DDP wrapper."""
    graph = _graph(spec_or_graph)
    paths = block_paths(graph)
    if not paths and (config.mode == "fsdp" or config.checkpoint != "none" or config.compile):
        what = "FSDP" if config.mode == "fsdp" else "activation checkpointing" if config.checkpoint != "none" else "compile"
        raise ParallelError(f"{graph.name}: {what} works per block, and the spec has no repeated blocks "
                            f"(no list of layers); use --ddp or a single process")
    try:
        blocks = [model.get_submodule(p) for p in paths]
    except AttributeError as e:
        raise ParallelError(f"the module does not have the spec's blocks ({e}): was it generated from {graph.name}?") from e
    if config.checkpoint != "none":
        from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
            CheckpointImpl,
            checkpoint_wrapper,
        )

        every = 1 if config.checkpoint == "block" else int(config.checkpoint)
        for i, (p, b) in enumerate(zip(paths, blocks, strict=True)):
            if i % every == 0:
                blocks[i] = checkpoint_wrapper(b, checkpoint_impl=CheckpointImpl.NO_REENTRANT)
                _replace(model, p, blocks[i])
    if config.compile:
        for b in blocks:
            b.compile()
    if config.mode == "fsdp":
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mp = MixedPrecisionPolicy(param_dtype=config.param_dtype, reduce_dtype=config.reduce_dtype)
        kw = {"mp_policy": mp}
        for b in blocks:
            fully_shard(b, reshard_after_forward=config.reshard_after_forward, **kw)
        tail = _tail(model, blocks)
        if tail:  # the final norm and the head: one group, gathered once for the last computation
            fully_shard(tail, reshard_after_forward=False, **kw)
        fully_shard(model, reshard_after_forward=config.reshard_after_forward, **kw)
        return model
    if config.mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        device = next(model.parameters()).device
        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return model
