"""ONNX (onnxruntime) and TVM (llvm) match PyTorch eager (the generated module) on small PVT, T5 and
PEG models, unfused and after the default passes: spatial reduction (to_map, stride-R conv),
patch embeddings with class token, T5's bucket bias (a constant index into the table) with the
causal mask, and the depthwise conv of CPVT's PEG. Tolerance 1e-4, absolute and relative (fp32)."""

from __future__ import annotations

import numpy as np
import pytest
from graphspec.backends import weights
from graphspec.backends.torch import run_eager

import graphspec
from graphspec.ops import get

pytest.importorskip("onnxruntime")

TOL = 1e-4
SMALL = {
    # four stages at 64²: maps 16, 8, 4, 2; R = 4, 2, 2, 1; the class token in the last stage
    "pvt": ("pvt_small", ["img_size=64", "classes=10", "embed.dim=8", "encoder.dim=[8, 16, 24, 32]",
                          "encoder.depths=[2, 1, 2, 1]", "encoder.heads=[1, 2, 3, 4]", "encoder.mlp_ratio=[4, 4, 2, 2]",
                          "encoder.attention=spatial_reduction(R=[4, 2, 2, 1])"]),
    # 20 source tokens (past max_distance 16), 13 target tokens
    "t5": ("t5_base", ["d_model=32", "heads=4", "d_ff=64", "L=2", "vocab=100", "buckets=8", "max_distance=16",
                       "seq_len=20", "tgt_len=13"]),
}
# the bucket bias and the causal mask through the backends whatever the norm's emitters
SMALL["t5_layer_norm"] = (SMALL["t5"][0], [*SMALL["t5"][1], "encoder.norm=layer_norm(1e-6)",
                                           "decoder.norm=layer_norm(1e-6)"])
PEG = """\
name: peg_small
input: image(32)
embed: patches(4, dim=16, norm=true, pos=conditional)
encoder:
  dim: [16, 32]
  depths: [2, 2]  # any depths work (tests/test_vocab_peg.py: 1, 2 or 3 blocks per stage in one Stage class)
  heads: [1, 2]
  downsample: patch_embed(2, stride=2)
head: classifier(10, pool=mean)
"""


def model(name: str, tmp_path):
    if name == "peg":
        p = tmp_path / "peg.yaml"
        p.write_text(PEG, encoding="utf-8")
        return graphspec.load(p)
    spec, sets = SMALL[name]
    return graphspec.load(spec, sets)


def close(got, ref):
    assert len(got) == len(ref)
    for a, b in zip(got, ref, strict=True):
        err = float(np.abs(a - b).max())
        rel = err / max(float(np.abs(b).max()), 1e-12)
        assert err <= TOL and rel <= TOL, f"max abs {err:.2e}, rel {rel:.2e} > {TOL}"


@pytest.mark.parametrize("passes", ["none", "default"])
@pytest.mark.parametrize("name", ["pvt", "t5", "t5_layer_norm", "peg"])
def test_onnx_and_tvm_match_eager(name, passes, tmp_path):
    from graphspec.backends import onnx as gx

    from graphspec.passes import run_pipeline

    m = model(name, tmp_path)
    missing = sorted({n.op for n in m.graph if get(n.op).onnx is None or get(n.op).relax is None})
    if missing:  # NB: T5's rms_norm (graphspec/ops/llm.py) may not have its emitters yet
        pytest.skip(f"op kinds without ONNX/Relax emitters: {missing}")
    g = m.graph if passes == "none" else run_pipeline(m.graph, passes, echo=lambda s: None)[0]
    params, x = weights.random_params(g, seed=0), weights.random_inputs(g, seed=1)
    ref = run_eager(g, params, x, spec=m.spec)
    close(gx.run(gx.export(g, params), x), ref)
    if passes == "default":  # TVM once per model: the graph graphspec build compiles
        pytest.importorskip("tvm")
        from graphspec.backends import tvm as gt

        low = gt.lower(g)
        ex, _ = gt.build(low, "llvm")
        close(gt.Runner(ex, low.params, params)(*(x[n] for n in low.inputs)), ref)


def test_peg_is_x_plus_a_depthwise_conv_after_the_first_block(tmp_path):
    """CPVT §3.2 / Twins: PEG sits after block 0 of each stage, x + DWConv3×3(x), 9C + C
    parameters; computed by hand from the generated module's own weights."""
    import torch

    m = model("peg", tmp_path)
    g = m.graph
    order = [n.name for n in g]
    assert order.index("layers.0.pos_block.residual") > order.index("layers.0.blocks.0.residual_1")
    assert order.index("layers.0.pos_block.residual") < order.index("layers.0.blocks.1.norm1")
    pe = {k: v for k, v in graphspec.analysis.parameters(g).items() if ".pos_block." in k}
    assert pe == {"layers.0.pos_block.proj.weight": (16, 1, 3, 3), "layers.0.pos_block.proj.bias": (16,),
                  "layers.1.pos_block.proj.weight": (32, 1, 3, 3), "layers.1.pos_block.proj.bias": (32,)}
    net = m.to_torch().eval()
    peg = net.layers[0].pos_block
    x = torch.randn(2, 64, 16)  # the 8×8 map of stage 1
    with torch.no_grad():
        fmap = x.transpose(1, 2).reshape(2, 16, 8, 8)
        want = x + torch.nn.functional.conv2d(fmap, peg.proj.weight, peg.proj.bias, padding=1,
                                              groups=16).flatten(2).transpose(1, 2)
        assert torch.allclose(peg(x), want, atol=1e-6)
