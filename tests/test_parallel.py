"""graphspec/parallel.py (issue #16 part 2): the blocks come from the IR; activation
checkpointing, compile, FSDP2 and DDP apply to the generated module in torchtitan's order, and
the checkpointed or sharded model computes what the plain one does."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch

import graphspec
from graphspec.parallel import ParallelConfig, ParallelError, block_paths, parallelize

sys.path.insert(0, str(Path(__file__).parent))
from specs_small import FLAT  # noqa: E402

LLAMA = ["vocab=256", "d=32", "L=3", "h=4", "d_ff=64", "seq_len=16"]  # untied head: norm + lm_head group


@pytest.mark.parametrize("spec, sets, expected", [
    ("gpt2", [], [f"blocks.{i}" for i in range(12)]),
    # Swin-T's depths (2, 2, 6, 2): the blocks inside the stages, not the stages
    ("swin_t", [], [f"layers.{s}.blocks.{i}" for s, n in enumerate((2, 2, 6, 2)) for i in range(n)]),
    # ResNet-50's bottlenecks (3, 4, 6, 3), inside nn.Sequential stages (He et al. Table 1)
    ("resnet50", [], [f"layer{s + 1}.{i}" for s, n in enumerate((3, 4, 6, 3)) for i in range(n)]),
    ("llama2_7b", LLAMA, ["layers.0", "layers.1", "layers.2"]),  # names: hf (LlamaModel's layers)
])
def test_blocks_from_the_ir(spec, sets, expected):
    assert block_paths(graphspec.load(spec, overrides=sets).graph) == expected


def test_one_block_is_no_repeated_structure(tmp_path):
    (tmp_path / "flat.yaml").write_text(FLAT)
    m = graphspec.load(tmp_path / "flat.yaml")
    assert list(m.graph.modules) == ["", "patch_embed", "blocks.0", "blocks.0.attn", "blocks.0.mlp"]
    assert block_paths(m.graph) == []
    with pytest.raises(ParallelError, match="no repeated blocks"):
        parallelize(m.to_torch(), m.graph, ParallelConfig(checkpoint="block"))


def test_bad_config():
    with pytest.raises(ParallelError, match="use none, fsdp or ddp"):
        ParallelConfig(mode="zero3")
    with pytest.raises(ParallelError, match="positive k"):
        ParallelConfig(checkpoint=0)


def llama():
    m = graphspec.load("llama2_7b", overrides=LLAMA)
    torch.manual_seed(0)
    return m, m.to_torch(), torch.randint(256, (2, 16))


@pytest.mark.parametrize("every, wrapped", [("block", 3), (2, 2)])  # blocks 0 and 2 of 3
def test_activation_checkpointing_keeps_values_grads_and_names(every, wrapped):
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointWrapper

    m, model, ids = llama()
    ref = copy.deepcopy(model)
    out = parallelize(model, m.graph, ParallelConfig(checkpoint=every))
    assert out is model
    assert sum(isinstance(b, CheckpointWrapper) for b in model.layers) == wrapped
    assert model.state_dict().keys() == ref.state_dict().keys()  # checkpoints load either way
    y, y_ref = model(ids), ref(ids)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=0)
    y.square().mean().backward()
    y_ref.square().mean().backward()
    grads = {k: p.grad for k, p in ref.named_parameters()}
    for k, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[k.replace("._checkpoint_wrapped_module", "")], rtol=1e-6, atol=1e-9)


def test_compile_marks_each_block():
    m, model, _ = llama()
    parallelize(model, m.graph, ParallelConfig(compile=True))
    assert all(b._compiled_call_impl is not None for b in model.layers)  # compiled lazily, at the first call
    assert model._compiled_call_impl is None  # the root is not


@pytest.fixture
def group(tmp_path):
    """A one-process gloo group (FSDP2 and DDP need one), torn down after the test."""
    import torch.distributed as dist

    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_fsdp_shards_each_block_then_norm_and_head_then_the_root(group):
    from torch.distributed.fsdp import FSDPModule
    from torch.distributed.tensor import DTensor

    m, model, ids = llama()
    ref = copy.deepcopy(model)
    parallelize(model, m.graph, ParallelConfig(mode="fsdp"))
    assert all(isinstance(b, FSDPModule) for b in model.layers) and isinstance(model, FSDPModule)
    assert all(isinstance(p, DTensor) for p in model.parameters())
    groups = {id(mod._get_fsdp_state()._fsdp_param_group) for mod in (model.norm, model.lm_head)}
    assert len(groups) == 1 and not isinstance(model.embed_tokens, FSDPModule)  # norm + head: one group
    torch.testing.assert_close(model(ids), ref(ids), rtol=1e-6, atol=1e-6)


def test_fsdp_bf16_parameters(group):
    m, model, ids = llama()
    ref = copy.deepcopy(model)
    parallelize(model, m.graph, ParallelConfig(mode="fsdp", param_dtype=torch.bfloat16))
    y = model(ids)
    assert y.dtype == torch.bfloat16 and next(model.parameters()).dtype == torch.float32  # fp32 master weights
    torch.testing.assert_close(y.float(), ref(ids), rtol=0.05, atol=0.05)


def test_ddp(group):
    from torch.nn.parallel import DistributedDataParallel

    m, model, ids = llama()
    ref = copy.deepcopy(model)
    net = parallelize(model, m.graph, ParallelConfig(mode="ddp"))
    assert isinstance(net, DistributedDataParallel) and net.module is model
    torch.testing.assert_close(net(ids), ref(ids), rtol=0, atol=0)
