"""Swin-T itself (224², batch 1) through onnxruntime, TVM llvm (untuned) and a cuda build.

Node budget: timm's torch.onnx export of swin_tiny_patch4_window7_224 has 3,477 nodes;
graphspec's is held to a quarter of that (869) and is about 460 (static batch).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from graphspec.backends import weights
from graphspec.backends.torch import run_eager

import graphspec

TIMM_SWIN_T_ONNX_NODES = 3477
TOL = 1e-4


@pytest.fixture(scope="module")
def swin_t():
    from graphspec.passes import run_pipeline

    m = graphspec.load("swin_t")
    g, _ = run_pipeline(m.graph, "default", echo=lambda s: None)
    params = weights.random_params(g, seed=0)
    x = weights.random_inputs(g, seed=1)
    return m, g, params, x


@pytest.fixture(scope="module")
def swin_t_eager(swin_t):
    m, g, params, x = swin_t
    return run_eager(g, params, x, spec=m.spec)


def _close(got, ref):
    err = float(np.abs(got[0] - ref[0]).max())
    rel = err / float(np.abs(ref[0]).max())
    assert got[0].shape == ref[0].shape == (1, 1000)
    assert err <= TOL and rel <= TOL, (err, rel)


@pytest.mark.slow
def test_swin_t_onnx_is_small_and_matches_eager(swin_t, swin_t_eager):
    import onnx
    from graphspec.backends import onnx as gx

    m, g, params, x = swin_t
    model = gx.export(g, params)
    n = len(model.graph.node)
    assert n <= TIMM_SWIN_T_ONNX_NODES // 4, n  # 869
    ops = {nd.op_type for nd in model.graph.node}
    assert "Attention" in ops and not ops & {"Softmax", "Where", "ScatterND", "Range"}
    assert sum(nd.op_type == "Attention" for nd in model.graph.node) == 12  # one per block
    onnx.checker.check_model(model, full_check=True)
    _close(gx.run(model, x), swin_t_eager)
    dyn = gx.export(g, params, dynamic_batch=True)
    assert len(dyn.graph.node) <= n + 10  # one Shape, one Concat, a Tile per shifted block


@pytest.mark.slow
def test_swin_t_tvm_llvm_untuned_matches_eager(swin_t, swin_t_eager):
    from graphspec.backends import tvm as gt

    m, g, params, x = swin_t
    low = gt.lower(g)
    ex, _ = gt.build(low, "llvm")
    _close(gt.Runner(ex, low.params, params)(x["image"]), swin_t_eager)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc (the CUDA toolkit)")
def test_swin_t_cuda_build_has_cuda_kernels(swin_t, tmp_path):
    from graphspec.backends import tvm as gt

    _, g, params, _ = swin_t
    low = gt.lower(g)
    ex, info = gt.build(low, "cuda")
    kernels = gt.cuda_kernels(ex)
    assert info["cuda_kernels"] == len(kernels) >= 30
    src = gt.cuda_source(ex)
    assert '__global__ void' in src and "blockIdx.x" in src and "threadIdx.x" in src
    lib = gt.export_library(ex, tmp_path / "model.so")
    assert lib.stat().st_size > 100_000


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("graphspec.backends.tvm", fromlist=["x"]).has_cuda_device(),
                    reason="needs a CUDA GPU (tvm.cuda().exist)")
def test_swin_t_cuda_runs_and_matches_eager(swin_t, swin_t_eager):
    from graphspec.backends import tvm as gt

    m, g, params, x = swin_t
    low = gt.lower(g)
    ex, _ = gt.build(low, "cuda")
    _close(gt.Runner(ex, low.params, params, device="cuda")(x["image"]), swin_t_eager)


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU (torch)")
def test_generated_module_on_cuda(swin_t, swin_t_eager):
    import torch
    from graphspec.backends.torch import generate

    m, g, params, x = swin_t
    net = generate(g, m.spec, params).net.cuda()
    with torch.no_grad():
        out = net(torch.from_numpy(x["image"]).cuda()).cpu().numpy()
    _close([out], swin_t_eager)
