"""Passes on the open vocabulary's attention forms (issue 13 §3): fuse_attention absorbs GQA's
repeat_kv (attribute kv_heads, so that codegen calls F.scaled_dot_product_attention with
enable_gqa) and the sliding-window mask (attribute sliding=W), keeps RoPE before the fused core,
and fuses T5's unscaled, bucket-biased scores and PVT's spatially reduced keys (S ≠ N);
fuse_qkv packs GQA's unequal q/k/v widths into one linear split by `split`. The verifier runs
after every pass (the manager), MACs and parameters stay, and the numbers stay (≤ 1e-5)."""

from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch

import graphspec
from graphspec import analysis
from graphspec.interpret import init_params, random_inputs, rename_params, run
from graphspec.ir import fmt_node
from graphspec.lower import Builder
from graphspec.passes import run_pipeline
from graphspec.verify import verify

NEW = [s for s in ("llama2_7b", "mistral_7b", "mixtral_8x7b", "phi2", "t5_base", "pvt_small", "pvt_tiny")
       if (Path(graphspec.SPECS_DIR) / f"{s}.yaml").exists()]
EVERY_PASS = ["fuse_attention", "fuse_qkv", "cse", "dce", "fold_constants", "default"]
SMALL = {
    "llama2_7b": ["vocab=120", "d=64", "d_ff=96", "L=2", "h=8", "seq_len=12"],
    "mistral_7b": ["vocab=120", "d=64", "d_ff=96", "L=2", "h=8", "kv=2", "window=5", "seq_len=12"],
    "mixtral_8x7b": ["vocab=120", "d=64", "d_ff=96", "L=2", "h=8", "kv=2", "experts=4", "top_k=2", "seq_len=12"],
    "phi2": ["vocab=120", "d=80", "d_ff=160", "L=2", "h=4", "rotary=0.4", "seq_len=12"],
    "t5_base": ["d_model=32", "heads=4", "d_ff=64", "L=2", "vocab=100", "buckets=8", "max_distance=16",
                "seq_len=20", "tgt_len=13"],
    "pvt_small": ["img_size=64", "classes=10", "embed.dim=8", "encoder.dim=[8, 16, 24, 32]",
                  "encoder.depths=[2, 1, 2, 1]", "encoder.heads=[1, 2, 3, 4]", "encoder.mlp_ratio=[4, 4, 2, 2]",
                  "encoder.attention=spatial_reduction(R=[4, 2, 2, 1])"],
}
GQA_SPEC = """\
name: gqa_small
vars: vocab=120, d=64, L=2, h=8, kv=2, d_ff=96, window=5, seq_len=12, batch=2
input: tokens(seq_len)
embed: tokens(vocab, dim=d, pos=rope(10000))
decoder×L:
  dim: d
  heads: h
  kv_heads: kv
  attention: sliding(window)
  norm: rms_norm(1e-5)
  mlp: glu(d_ff, silu)
  bias: false
  final_norm: true
head: lm(tied=false)
"""


@cache
def lowered(spec: str, small: bool = False):
    return graphspec.load(spec, SMALL[spec] if small else []).graph


def attention_modules(g) -> int:
    return sum(1 for m in g.modules.values() if m.cls.endswith("Attention"))


def close(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-5)


# -- IR before / after ------------------------------------------------------------------------
def test_mistral_gqa_and_sliding_window_fuse_into_one_attention():
    g = lowered("mistral_7b", True)
    a = "layers.0.self_attn"
    assert [g[f"{a}.{n}"].op for n in ("k_rep", "v_rep", "masked")] == ["repeat_kv", "repeat_kv", "sliding_mask"]
    out, (r,) = run_pipeline(g, "fuse_attention")
    assert r.applied == 2 and r.declined == []
    assert fmt_node(out[f"{a}.attention"]) == (
        f"%{a}.attention = attention(%{a}.q_rot, %{a}.k_rot, %{a}.v_heads, scale=0.353553, causal=False, "
        "has_bias=False, has_mask=False, windows=1, dropout=0, kv_heads=2, sliding=5) : f32[1,8,12,8]  # specs/mistral_7b.yaml:12:1")
    # RoPE stays before the core (it is not part of QKᵀ); k/v keep their 2 heads
    assert out[f"{a}.q_rot"].op == "rotary" and out[f"{a}.k_rot"].shape == (1, 2, 12, 8)
    assert not any(n.op in ("repeat_kv", "sliding_mask", "softmax") for n in out)
    assert analysis.macs(out) == analysis.macs(g)


def test_llama_causal_rope_and_phi_partial_rotary_fuse():
    for spec, kv, d in (("llama2_7b", None, 8), ("phi2", None, 20)):
        out, (r,) = run_pipeline(lowered(spec, True), "fuse_attention")
        n = out["layers.0.self_attn.attention"]
        assert r.applied == 2 and n.a["causal"] is True and n.a.get("kv_heads") == kv and "sliding" not in n.a
        assert n.shape[-1] == d and out[n.inputs[0]].op == "rotary"


def test_t5_unscaled_scores_with_the_bucket_bias_fuse():
    g = lowered("t5_base", True)
    out, (r,) = run_pipeline(g, "fuse_attention")
    assert r.applied == attention_modules(g) == 6 and r.declined == []
    n = out["encoder.blocks.0.attn.attention"]
    assert n.a["scale"] == 1.0 and n.a["has_bias"] is True and n.a["causal"] is False  # T5 §2.1: no 1/√d
    assert out["decoder.blocks.0.attn.attention"].a["causal"] is True
    assert out["decoder.blocks.0.cross_attn.attention"].a["has_bias"] is False


def test_pvt_spatial_reduction_keys_are_the_reduced_sequence():
    g = lowered("pvt_small", True)
    out, (r,) = run_pipeline(g, "fuse_attention")
    assert r.applied == attention_modules(g) == 6 and r.declined == []
    n = out["layers.0.blocks.0.attn.attention"]
    q, k = out[n.inputs[0]].shape, out[n.inputs[1]].shape
    assert (q[-2], k[-2]) == (16 * 16, 4 * 4)  # N = 256 tokens of the 16×16 map, S = (16/4)²
    assert analysis.macs(out) == analysis.macs(g)


def test_softcap_declines_with_its_reason():
    g = graphspec.load("mistral_7b", [*SMALL["mistral_7b"], "decoder.softcap=50.0"]).graph
    assert any(n.op == "softcap" for n in g)
    out, (r,) = run_pipeline(g, "fuse_attention")
    assert r.applied == 0 and len(r.declined) == 2
    assert all("soft-cap stays unfused" in why for _, why in r.declined)


# -- every bundled new spec at its published size ---------------------------------------------
@pytest.mark.parametrize("spec", NEW)
def test_fusion_fires_on_every_attention_and_keeps_macs(spec):
    g = graphspec.load(spec).graph
    out, report = run_pipeline(g, "default")
    assert report[0].applied == attention_modules(g) and report[0].declined == []
    assert not any(n.op in ("softmax", "repeat_kv", "sliding_mask") for n in out)
    assert analysis.macs(out) == analysis.macs(g)
    assert analysis.param_count(out) == analysis.param_count(g)


@pytest.mark.parametrize("pipeline", EVERY_PASS)
@pytest.mark.parametrize("spec", sorted(SMALL))
def test_every_pass_verifies_keeps_counts_and_numbers(spec, pipeline):
    g = lowered(spec, True)
    params, x = init_params(g, seed=0), random_inputs(g, seed=1)
    ref = run(g, x, params)
    out, report = run_pipeline(g, pipeline)  # the manager verifies after each pass
    verify(out)
    assert analysis.macs(out) == analysis.macs(g)
    assert analysis.param_count(out) == analysis.param_count(g)
    for r in report:
        params = rename_params(params, r.renames)
        assert not r.added and not r.removed
    close(run(out, x, params), ref)


# -- fuse_qkv with GQA's unequal widths ------------------------------------------------------
def test_gqa_qkv_is_one_linear_split_unevenly(tmp_path):
    from graphspec.codegen import emit, load

    path = tmp_path / "gqa_small.yaml"
    path.write_text(GQA_SPEC)
    m = graphspec.load(str(path))
    g = m.graph
    out, report = run_pipeline(g, "default")
    assert report[1].name == "fuse_qkv" and report[1].applied == 2
    a = "blocks.0.attn"
    assert fmt_node(out[f"{a}.qkv"]).startswith(
        f"%{a}.qkv = linear(%blocks.0.norm1, out_features=96, bias=False, in_features=64) : f32[2,12,96]")
    assert fmt_node(out[f"{a}.k"]).startswith(f"%{a}.k = split(%{a}.qkv, sizes=(64, 16, 16), index=1) : f32[2,12,16]")
    assert report[1].renames[f"{a}.qkv.weight"] == (f"{a}.q.weight", f"{a}.k.weight", f"{a}.v.weight")
    assert analysis.macs(out) == analysis.macs(g) and analysis.param_count(out) == analysis.param_count(g)
    params, x = init_params(g, seed=0), random_inputs(g, seed=1)
    ref = run(g, x, params)
    for r in report:
        params = rename_params(params, r.renames)
    close(run(out, x, params), ref)
    gen = emit(out, m.spec)
    assert "enable_gqa=True" in gen.source and "q, k, v = self.qkv(x).split([64, 16, 16], dim=-1)" in gen.source
    net = getattr(load(gen.source), gen.class_name)().eval()
    net.load_state_dict(params, strict=True)
    with torch.no_grad():
        got = net(*x.values())
    torch.testing.assert_close(got, ref["lm_head"], atol=1e-5, rtol=1e-5)


def test_hf_named_projections_fuse_into_qkv_proj():
    """names: hf (q_proj, k_proj, v_proj) fuse into Phi-3's `qkv_proj`, split (64, 16, 16) on
    Mistral's GQA; graphspec.weights cuts the tensor at those widths (tests/test_llm_numerics.py
    maps HF's state dict in and out through it)."""
    g = lowered("mistral_7b", True)
    out, (r,) = run_pipeline(g, "fuse_qkv")
    assert r.applied == 2 and r.declined == []
    a = "layers.0.self_attn"
    assert fmt_node(out[f"{a}.v_proj"]).startswith(f"%{a}.v_proj = split(%{a}.qkv_proj, sizes=(64, 16, 16), index=2)")
    assert r.renames[f"{a}.qkv_proj.weight"] == (f"{a}.q_proj.weight", f"{a}.k_proj.weight", f"{a}.v_proj.weight")


# -- the fused op's facets against an independent reference ----------------------------------
def _core(kv: int, sliding: int | None, causal: bool):
    b = Builder("gqa_core")
    b.g.set_module("", "Net")
    q = b.emit("input", (), "q", shape=(2, 8, 12, 8), kind="image")
    k = b.emit("input", (), "k", shape=(2, kv, 12, 8), kind="image")
    v = b.emit("input", (), "v", shape=(2, kv, 12, 8), kind="image")
    extra = {"kv_heads": kv} if kv != 8 else {}
    if sliding:
        extra["sliding"] = sliding
    o = b.emit("attention", (q, k, v), "attention", scale=0.35, causal=causal, **extra)
    qkv = b.emit("input", (), "qkv", shape=(2, 12, 96), kind="image")
    parts = [b.emit("split", (qkv,), f"part{i}", sizes=(64, 16, 16), index=i) for i in range(3)]
    b.g.outputs = (o, *parts)
    return b.g


@pytest.mark.parametrize("kv, sliding, causal", [(2, 5, False), (2, None, True), (8, 5, False)])
def test_attention_facets_match_sdpa_with_repeated_heads(kv, sliding, causal):
    g = _core(kv, sliding, causal)
    rng = np.random.default_rng(0)
    x = {n: rng.standard_normal(g[n].shape).astype(np.float32) for n in ("q", "k", "v", "qkv")}
    t = {n: torch.from_numpy(a) for n, a in x.items()}
    got = run(g, t, {})
    kk, vv = (t[n].repeat_interleave(8 // kv, 1) for n in "kv")  # HF's repeat_kv
    i, j = torch.arange(12)[:, None], torch.arange(12)[None]
    keep = (j <= i) & (j > i - sliding) if sliding else (j <= i)
    want = torch.nn.functional.scaled_dot_product_attention(t["q"], kk, vv, attn_mask=keep, scale=0.35)
    torch.testing.assert_close(got["attention"], want, atol=1e-6, rtol=1e-5)
    refs = [got[o].numpy() for o in g.outputs]
    assert [r.shape[-1] for r in refs[1:]] == [64, 16, 16]
    pytest.importorskip("onnxruntime")
    from graphspec.backends import onnx as gx

    for a, b in zip(gx.run(gx.export(g, {}), x), refs, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)
    pytest.importorskip("tvm")
    from graphspec.backends import tvm as gt

    for how in ("op", "matmul"):
        low = gt.lower(g, attention=how)
        ex, _ = gt.build(low, "llvm")
        for a, b in zip(gt.Runner(ex, low.params, {})(*(x[n] for n in low.inputs)), refs, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("spec, overrides", [("mistral_7b", ("window=48",)), ("llama2_7b", ()), ("t5_base", ())])
def test_unmasked_convention_reads_the_fused_masks(spec, overrides):
    """The `unmasked` convention counts the pairs the causal / sliding mask keeps, unfused (from
    the mask node) and fused (from the attribute): the same figure, below the dense one."""
    g = graphspec.load(spec, list(overrides)).graph
    out, _ = run_pipeline(g, "default")
    unmasked = analysis.CONVENTIONS["unmasked"]
    assert analysis.macs(out, unmasked) == analysis.macs(g, unmasked) < analysis.macs(g)
    if spec == "mistral_7b":  # N = 128, W = 48: Σᵢ min(i+1, 48) = 48·49/2 + 80·48 = 5,016 pairs of 128²
        saved = 32 * 2 * 4096 * (128 * 128 - 5016)
        assert analysis.macs(g) - analysis.macs(out, unmasked) == saved
