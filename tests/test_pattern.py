"""The shared matcher and the pass manager: printed IR before/after, captures that unify, the
single-user constraint, optional and commutative nodes, declines that change nothing, pipelines
as text, and the verifier run after every pass."""

import pytest

import graphspec
from graphspec.passes import PASSES, PipelineError, parse_pipeline, run_pipeline
from graphspec.passes.fuse_attention import attention_pattern
from graphspec.passes.manager import register
from graphspec.passes.pattern import Any, Op, Rule, rewrite_graph
from graphspec.verify import VerifyError

VIT = ["img_size=32", "patch=8", "D=32", "L=1", "h=2", "classes=5"]


def lines(g, prefix):
    return [ln.split("  #")[0].strip() for ln in str(g).splitlines() if ln.strip().startswith(f"%{prefix}")]


def test_fuse_attention_printed_ir_before_and_after():
    g = graphspec.load("vit_b16", VIT).graph
    assert lines(g, "blocks.0.attn.")[6:11] == [
        "%blocks.0.attn.k_t = transpose(%blocks.0.attn.k_heads, dims=(-2, -1)) : f32[1,2,16,17]",
        "%blocks.0.attn.scores = matmul(%blocks.0.attn.q_heads, %blocks.0.attn.k_t) : f32[1,2,17,17]",
        "%blocks.0.attn.scaled = scale(%blocks.0.attn.scores, k=0.25) : f32[1,2,17,17]",
        "%blocks.0.attn.probs = softmax(%blocks.0.attn.scaled, dim=-1) : f32[1,2,17,17]",
        "%blocks.0.attn.context = matmul(%blocks.0.attn.probs, %blocks.0.attn.v_heads) : f32[1,2,17,16]",
    ]
    out, _ = run_pipeline(g, "fuse_attention,fuse_qkv")
    assert lines(out, "blocks.0.attn.") == [
        "%blocks.0.attn.qkv = linear(%blocks.0.norm1, out_features=96, bias=True, in_features=32) : f32[1,17,96]",
        "%blocks.0.attn.q = chunk(%blocks.0.attn.qkv, parts=3, index=0) : f32[1,17,32]",
        "%blocks.0.attn.k = chunk(%blocks.0.attn.qkv, parts=3, index=1) : f32[1,17,32]",
        "%blocks.0.attn.v = chunk(%blocks.0.attn.qkv, parts=3, index=2) : f32[1,17,32]",
        "%blocks.0.attn.q_heads = split_heads(%blocks.0.attn.q, heads=2) : f32[1,2,17,16]",
        "%blocks.0.attn.k_heads = split_heads(%blocks.0.attn.k, heads=2) : f32[1,2,17,16]",
        "%blocks.0.attn.v_heads = split_heads(%blocks.0.attn.v, heads=2) : f32[1,2,17,16]",
        "%blocks.0.attn.attention = attention(%blocks.0.attn.q_heads, %blocks.0.attn.k_heads, "
        "%blocks.0.attn.v_heads, scale=0.25, causal=False, has_bias=False, has_mask=False, windows=1, "
        "dropout=0) : f32[1,2,17,16]",
        "%blocks.0.attn.merged = merge_heads(%blocks.0.attn.attention) : f32[1,17,32]",
        "%blocks.0.attn.proj = linear(%blocks.0.attn.merged, out_features=32, bias=True, in_features=32) : f32[1,17,32]",
    ]


def test_captures_unify():
    g = graphspec.load("transformer_base", ["N=1", "d_model=32", "h=2", "d_ff=64", "vocab=50", "seq_len=8"]).graph
    heads = lambda t: Op("split_heads", Op("linear", Any("x")), name=t)  # noqa: E731
    same_input = attention_pattern(heads("q"), heads("k"), heads("v"))
    assert same_input.match(g, g["decoder.blocks.0.attn.context"]) is not None
    why = same_input.explain(g, g["decoder.blocks.0.cross_attn.context"])
    assert why == "x would be both %decoder.blocks.0.norm1 and %encoder.blocks.0.norm2"
    m = attention_pattern().match(g, g["decoder.blocks.0.attn.context"])
    assert sorted(m.captures) == ["causal", "context", "k", "k_t", "probs", "q", "scaled", "scores", "v"]


def test_single_user_constraint_is_reported():
    g = graphspec.load("vit_b16", VIT).graph
    spy = g["blocks.0.attn.probs"].evolve(name="spy", op="relu", attrs={}, inputs=("blocks.0.attn.probs",))
    g2 = g.copy_with([*g, spy], outputs=(*g.outputs, "spy"))
    out, (r,) = run_pipeline(g2, "fuse_attention")
    assert r.applied == 0
    assert r.declined == [("blocks.0.attn.probs", "no match through %blocks.0.attn.probs: "
                           "%blocks.0.attn.probs has 2 users; fusing it would compute it twice")]


def test_optional_and_commutative_nodes():
    g = graphspec.load("swin_t", ["img_size=64", "C=48", "M=4"]).graph
    swap = {n.name: n.evolve(inputs=n.inputs[::-1]) for n in g if n.local == "biased"}  # bias + scores
    g2 = g.copy_with([swap.get(n.name, n) for n in g])
    out, (r,) = run_pipeline(g2, "fuse_attention")
    assert r.applied == 12 and not r.declined
    a = out["layers.0.blocks.1.attn.attention"]  # bias and mask present
    assert (a.a["has_bias"], a.a["has_mask"], a.a["windows"]) == (True, True, 16)
    assert out["layers.0.blocks.0.attn.attention"].a["has_mask"] is False


def test_a_declining_rewrite_changes_nothing():
    g = graphspec.load("vit_b16", VIT).graph
    res = rewrite_graph(g, [Rule(attention_pattern(), lambda m: m.decline("not today"))])
    assert (res.matched, res.applied) == (1, 0)
    assert res.declined == [("blocks.0.attn.context", "not today")]
    assert str(res.graph) == str(g)


def test_pipelines_as_text():
    assert parse_pipeline("fuse_attention, partition_windows(M=7, shift=true)") == [
        ("fuse_attention", {}), ("partition_windows", {"M": 7, "shift": True})]
    assert [n for n, _ in parse_pipeline("default")] == ["fuse_attention", "fuse_qkv", "cse", "dce"]
    assert parse_pipeline("none") == []
    with pytest.raises(PipelineError, match="unknown pass 'fuse_atention'; did you mean 'fuse_attention'"):
        parse_pipeline("fuse_atention")
    with pytest.raises(PipelineError, match=r"partition_windows: .*it takes \(M: 'int', shift: 'bool' = False\)"):
        parse_pipeline("partition_windows(N=7)")
    with pytest.raises(PipelineError, match="missing a required argument: 'M'"):
        parse_pipeline("partition_windows")


def test_disable_and_print_after():
    g = graphspec.load("vit_b16", VIT).graph
    printed = []
    out, report = run_pipeline(g, "default", disable=["fuse_qkv"], print_after=["cse"], echo=printed.append)
    assert [r.name for r in report] == ["fuse_attention", "cse", "dce"]
    assert len(printed) == 1 and printed[0].startswith("// IR after cse:\ngraph vit_b16(")
    text = str(report)
    assert text.splitlines()[0].split() == ["pass", "nodes", "matched", "rewritten", "declined", "MACs",
                                            "before", "->", "after", "params", "Δ", "ms"]
    with pytest.raises(PipelineError, match="unknown pass 'fuse_qvk'"):
        run_pipeline(g, "default", disable=["fuse_qvk"])


def test_the_manager_verifies_after_each_pass():
    @register("break_shapes")
    def break_shapes(g):
        return g.copy_with([n.evolve(shape=(1, 2, 3)) if n.name == "pool" else n for n in g])

    try:
        g = graphspec.load("vit_b16", VIT).graph
        with pytest.raises(VerifyError) as e:
            run_pipeline(g, "fuse_attention,break_shapes")
        msg = str(e.value)
        assert msg.startswith("%pool: after pass break_shapes: recorded shape (1, 2, 3) but the rule of select "
                              "gives (1, 32)")
        assert "--> %pool = select(%norm, index=0) : f32[1,2,3]" in msg
        assert isinstance(e.value.__cause__, VerifyError)
    finally:
        del PASSES["break_shapes"]
