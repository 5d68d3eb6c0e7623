"""ONNX (onnxruntime) and TVM (llvm, untuned) agree with PyTorch eager (the generated module) on
small LLMs: Llama (RMSNorm, rotary, SwiGLU), Mistral (GQA, sliding window), Mixtral (a mixture
of experts) and Phi-2 (parallel block, partial rotary), unfused and after the default passes.
Tolerance 1e-4 absolute and relative (fp32)."""

from __future__ import annotations

import numpy as np
import pytest
from graphspec.backends import weights
from graphspec.backends.torch import run_eager

import graphspec

pytest.importorskip("onnxruntime")
TOL = 1e-4
SMALL = {
    "llama": ("llama2_7b", ["vocab=100", "d=64", "d_ff=96", "L=2", "h=4", "seq_len=12"]),
    "mistral": ("mistral_7b", ["vocab=100", "d=64", "d_ff=96", "L=2", "h=8", "kv=2", "window=5", "seq_len=12"]),
    "mixtral": ("mixtral_8x7b", ["vocab=100", "d=64", "d_ff=96", "L=2", "h=8", "kv=2", "experts=4", "top_k=2",
                                 "seq_len=12"]),
    "phi2": ("phi2", ["vocab=100", "d=80", "d_ff=160", "L=2", "h=4", "seq_len=12"]),
}


def small(name: str, passes: str, batch: int = 2):
    from graphspec.passes import run_pipeline

    spec, sets = SMALL[name]
    m = graphspec.load(spec, [*sets, f"batch={batch}"])
    g, _ = run_pipeline(m.graph, passes, echo=lambda s: None)
    params, x = weights.random_params(g, seed=0), weights.random_inputs(g, seed=1)
    return m, g, params, x, run_eager(g, params, x, spec=m.spec)


def close(got, ref, tol=TOL):
    assert len(got) == len(ref)
    for a, b in zip(got, ref, strict=True):
        err = float(np.abs(a - b).max())
        assert err <= tol and err / float(np.abs(b).max()) <= tol, f"max abs {err:.2e}"


@pytest.mark.parametrize("passes", ["none", "default"])
@pytest.mark.parametrize("name", sorted(SMALL))
def test_onnx_matches_eager(name, passes):
    from graphspec.backends import onnx as gx

    _, g, params, x, ref = small(name, passes)
    close(gx.run(gx.export(g, params), x), ref)


@pytest.mark.parametrize("name", ["llama", "mixtral"])
def test_tvm_llvm_matches_eager(name):
    from graphspec.backends import tvm as gt

    _, g, params, x, ref = small(name, "default")
    low = gt.lower(g)
    ex, _ = gt.build(low, "llvm")
    close(gt.Runner(ex, low.params, params)(*(x[n] for n in low.inputs)), ref)
