"""ONNX (onnxruntime) and TVM (llvm, untuned) agree with PyTorch eager (the generated module) on
small LLMs: Llama (RMSNorm, rotary, SwiGLU), Mistral (GQA, sliding window), Mixtral (a mixture
of experts), Phi-2 (parallel block, partial rotary), Llama 3.2 (rescaled rotary) and Gemma 3
(per-layer rotary bases, QK-norm), unfused and after the default passes.
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
    # rescaled rope (llama3 rule), per-layer rope bases with QK-norm (Gemma 3)
    "llama3": ("llama3_2_1b", ["vocab=100", "d=64", "d_ff=96", "L=2", "h=4", "kv=2", "hd=16", "seq_len=12"]),
    "gemma3": ("gemma3_1b", ["vocab=100", "d=64", "d_ff=96", "L=3", "h=4", "kv=2", "hd=16", "window=4", "seq_len=12",
                             "decoder.attention=pattern(sliding(window, pos=rope(10000)) * 2, causal)",
                             "embed=tokens(vocab, dim=d, pos=rope(1000000, scaling=linear(8)), scale=true)"]),
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


@pytest.mark.parametrize("name", ["llama", "mixtral", "llama3"])
def test_tvm_llvm_matches_eager(name):
    from graphspec.backends import tvm as gt

    _, g, params, x, ref = small(name, "default")
    low = gt.lower(g)
    ex, _ = gt.build(low, "llvm")
    close(gt.Runner(ex, low.params, params)(*(x[n] for n in low.inputs)), ref)


EXOTIC = """\
name: exotic
names: hf
input: tokens(10, batch=2)
embed: tokens(100, dim=48, pos=POS, scale=true)
decoder×4:
  dim: 48
  heads: 6
  kv_heads: 3
  attention: MASK
  softcap: 20
  qk_norm: true
  norm: rms_norm(1e-6, offset=1)
  placement: sandwich
  mlp: glu(64, gelu_tanh)
  bias: false
  final_norm: true
head: lm(tied=true)
"""


@pytest.mark.parametrize("pos", ["alibi", "rope(10000, fraction=0.5, interleaved=true)"])
def test_rarer_constructs_agree_across_interpreter_eager_and_onnx(tmp_path, pos):
    """Constructs no bundled spec uses (Gemma-2-like: sandwich norms with (1 + w), GeGLU, logit
    soft-capping, a sliding window, embedding scale √d; ALiBi or interleaved
    partial rotary): the IR interpreter (eval rules), the generated module (torch templates and
    helpers) and onnxruntime (ONNX emitters) are three implementations and must agree."""
    import torch
    from graphspec.backends import onnx as gx

    from graphspec.interpret import run

    (tmp_path / "x.yaml").write_text(EXOTIC.replace("POS", pos).replace("MASK", "sliding(4)"))
    m = graphspec.load(tmp_path / "x.yaml")
    assert sum(n.op == "rms_norm" for n in m.graph) == 4 * (4 + 2) + 1  # sandwich 4 + q/k norms 2, per block
    g = m.graph
    params, x = weights.random_params(g, seed=0), weights.random_inputs(g, seed=1)
    ref = run_eager(g, params, x, spec=m.spec)
    interp = run(g, {k: torch.from_numpy(v) for k, v in x.items()}, {k: torch.from_numpy(v) for k, v in params.items()})
    close([t.numpy() for t in interp.values()], ref)
    close(gx.run(gx.export(g, params), x), ref)


def test_per_layer_mask_pattern_in_interpreter_and_onnx(tmp_path):
    """pattern(sliding(4), causal): blocks 0 and 2 slide, 1 and 3 are causal; the interpreter and
    onnxruntime agree, and the pattern matters (all-causal differs). The generated module (one
    block class, the window per layer) is checked against HF's Gemma2 in tests/test_gemma2.py."""
    import torch
    from graphspec.backends import onnx as gx

    from graphspec.interpret import run

    def outputs(mask):
        (tmp_path / "x.yaml").write_text(EXOTIC.replace("POS", "rope(10000)").replace("MASK", mask))
        g = graphspec.load(tmp_path / "x.yaml").graph
        params, x = weights.random_params(g, seed=0), weights.random_inputs(g, seed=1)
        interp = run(g, {k: torch.from_numpy(v) for k, v in x.items()},
                     {k: torch.from_numpy(v) for k, v in params.items()})
        return [t.numpy() for t in interp.values()], gx.run(gx.export(g, params), x), g

    ref, got, g = outputs("pattern(sliding(4), causal)")
    assert [n.op for n in g if n.op in ("sliding_mask", "causal_mask")] == ["sliding_mask", "causal_mask"] * 2
    close(got, ref)
    causal, _, _ = outputs("causal")
    assert float(np.abs(causal[0] - ref[0]).max()) > 1e-3
