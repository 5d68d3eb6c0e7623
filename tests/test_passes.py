"""Passes on every bundled spec: the verifier holds after each, parameters are unchanged but for
declared additions, attention fusion fires on every attention, QKV fusion keeps MACs and
parameters, and window partitioning changes the MACs exactly as Swin Eq. 1-2 say."""

import re
from functools import cache
from pathlib import Path
from types import SimpleNamespace

import pytest
import sympy

import graphspec
from graphspec import analysis
from graphspec.lower import Builder, _attention
from graphspec.ops import numel
from graphspec.passes import PassError, run_pipeline

SPECS = sorted(p.stem for p in Path(graphspec.SPECS_DIR).glob("*.yaml"))
EVERY_PASS = ["fuse_attention", "fuse_qkv", "cse", "dce", "fold_constants", "partition_windows(M=7)"]
GLOBAL_SWIN = ["encoder.attention=global"]
VIT_NO_CLS = ["embed=patches(patch, dim=D, cls_token=false, pos=learned)"]


@cache
def lowered(spec: str, overrides: tuple[str, ...] = ()):
    return graphspec.load(spec, list(overrides)).graph


def attention_modules(g) -> int:
    return sum(1 for m in g.modules.values() if m.cls.endswith("Attention"))


def shared_projections(g) -> int:
    """Attention modules where two or three of the q, k, v projections read one tensor (also
    HF-named q_proj/k_proj/v_proj, which fuse into qkv_proj; MLA's LatentAttention has q_proj only)."""
    n = 0
    for path, m in g.modules.items():
        for s in ("", "_proj"):
            if m.cls.endswith("Attention") and all(f"{path}.{t}{s}" in g for t in "qkv"):
                n += len({g[f"{path}.{t}{s}"].inputs for t in "qkv"}) < 3
    return n


@pytest.mark.parametrize("pipeline", EVERY_PASS)
@pytest.mark.parametrize("spec", SPECS)
def test_every_pass_on_every_spec_verifies_and_keeps_parameters(spec, pipeline):
    g = lowered(spec)
    text = str(g)
    try:
        out, report = run_pipeline(g, pipeline)  # the manager verifies after the pass
    except PassError as e:  # M = 7 does not tile SigLIP So400m's 27×27 map: the error names the M that do
        M = re.fullmatch(r".*does not divide the (\d+)×\1 map of .*; use M in \[(\d+), .*", str(e))
        assert pipeline.startswith("partition_windows") and M and int(M[1]) % 7, str(e)
        out, report = run_pipeline(g, f"partition_windows(M={M[2]})")
    (r,) = report
    added = sum((numel(s) for k, s in analysis.parameters(out).items() if k in r.added), 0)
    removed = sum((numel(s) for k, s in analysis.parameters(g).items() if k in r.removed), 0)
    assert analysis.param_count(out) == analysis.param_count(g) + added - removed
    assert removed == 0  # no bundled spec has dead parameters
    assert str(g) == text, "a pass modified its input"


@pytest.mark.parametrize("spec", SPECS)
def test_attention_fusion_fires_on_every_attention(spec):
    g = lowered(spec)
    out, (r,) = run_pipeline(g, "fuse_attention")
    n = attention_modules(g)  # self, causal, cross, windowed and shifted-window attention
    if any(x.op == "softcap" for x in g):  # Gemma 2: SDPA has no logit soft-cap, so it stays unfused
        assert r.applied == 0 and len(r.declined) == n and all("soft-cap" in why for _, why in r.declined)
        return
    if any(x.op == "sink_softmax" for x in g):  # gpt-oss: fused with its sinks, the parameters kept by name
        assert all(x.a.get("has_sinks") for x in out if x.op == "attention") and "sink_softmax" not in {x.op for x in out}
        assert analysis.parameters(out) == analysis.parameters(g)
    assert r.applied == n and r.declined == []
    assert sum(1 for x in out if x.op == "attention") == n
    assert not any(x.op == "softmax" for x in out)
    assert analysis.macs(out) == analysis.macs(g)


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("order", ["fuse_qkv", "fuse_attention,fuse_qkv"])
def test_qkv_fusion_keeps_macs_and_parameters(spec, order):
    g = lowered(spec)
    out, report = run_pipeline(g, order)
    r = report[-1]
    assert r.applied == shared_projections(g)
    assert analysis.macs(out) == analysis.macs(g)
    assert analysis.param_count(out) == analysis.param_count(g)
    fused = [x.name for x in out if x.op == "linear" and x.local in ("qkv", "kv", "qk", "qkv_proj")]
    assert len(fused) == r.applied
    assert all(f"{name}.weight" in r.renames for name in fused)


def test_qkv_and_kv_names_in_the_transformer():
    out, _ = run_pipeline(lowered("transformer_base"), "fuse_qkv")
    q = out["encoder.blocks.0.attn.qkv"]
    assert (q.op, q.shape, q.a["out_features"]) == ("linear", (1, 128, 1536), 1536)  # 3 · 512
    kv = out["decoder.blocks.0.cross_attn.kv"]  # k and v of the encoder's memory
    assert kv.inputs == ("encoder.blocks.5.norm2",) and kv.a["out_features"] == 1024  # 2 · 512
    assert out["decoder.blocks.0.cross_attn.q"].op == "linear"  # the query stays alone
    assert [out[f"decoder.blocks.0.cross_attn.{t}"].a["index"] for t in "kv"] == [0, 1]


# -- window partitioning: Swin Eq. 1-2 ------------------------------------------------------------
def test_window_partitioning_turns_msa_into_w_msa_symbolically():
    """One block, symbolic h, w, C, M and heads n, built with graphspec.lower's own helpers."""
    h, w, C, M, n = sympy.symbols("h w C M n", positive=True, integer=True)
    b = Builder("block")
    x = b.emit("input", (), "x", shape=(1, h * w, C), kind="image")
    s = SimpleNamespace(qkv_bias=True, bias=True, attn_dropout=0.0)
    with b.module("blocks.0", "Block", dim=C, heads=n, window=None, shift=None, grid=(h, w)):
        y = _attention(b, s, x, x, C, n, None, None, None, False, "attn")
    b.g.outputs = (y,)
    msa = analysis.macs(b.g)
    assert sympy.expand(msa - (4 * h * w * C**2 + 2 * (h * w) ** 2 * C)) == 0  # Ω(MSA), Eq. 1
    out, (r,) = run_pipeline(b.g, [("partition_windows", {"M": M})])
    assert r.applied == 1
    assert sympy.expand(analysis.macs(out) - (4 * h * w * C**2 + 2 * M**2 * h * w * C)) == 0  # Ω(W-MSA), Eq. 2
    assert analysis.parameters(out)["blocks.0.attn.relative_position_bias_table"] == ((2 * M - 1) ** 2, n)


def test_swin_t_global_minus_windowed_macs_is_the_sum_over_blocks():
    g = lowered("swin_t", tuple(GLOBAL_SWIN))
    out, (r,) = run_pipeline(g, "partition_windows(M=7, shift=true)")
    M = 7
    # per stage: tokens hw, width C, depth; each block saves 2(hw)²C - 2M²hwC
    stages = [(56 * 56, 96, 2), (28 * 28, 192, 2), (14 * 14, 384, 6), (7 * 7, 768, 2)]
    saved = [d * (2 * hw**2 * C - 2 * M**2 * hw * C) for hw, C, d in stages]
    # 2·(2·3136²·96 − 2·49·3136·96) = 3,717,439,488; 2·(2·784²·192 − 2·49·784·192) = 442,552,320;
    # 6·(2·196²·384 − 2·49·196·384) = 132,765,696; stage 4 is a single 7×7 window: 0
    assert saved == [3_717_439_488, 442_552_320, 132_765_696, 0]
    assert analysis.macs(g) - analysis.macs(out) == sum(saved) == 4_292_757_504
    assert analysis.macs(out) == analysis.macs(lowered("swin_t")) == 4_490_566_656
    # new parameters: one (2M-1)² × heads table per block: 169 · (2·3 + 2·6 + 6·12 + 2·24) = 23,322
    assert analysis.param_count(out) - analysis.param_count(g) == 169 * (2 * 3 + 2 * 6 + 6 * 12 + 2 * 24) == 23_322
    assert len(r.added) == 12


@pytest.mark.parametrize("overrides,M", [((), 7), (("img_size=64", "C=48", "M=4"), 4)])
@pytest.mark.parametrize("before", ["", "fuse_attention,fuse_qkv,"])
def test_partitioning_global_swin_gives_the_lowered_windowed_swin(overrides, M, before):
    """Printed IR, byte for byte: the pass builds what lowering builds for shifted_windows(M)
    (at 64 px, stage 4's 2×2 map is one 2×2 window, as in the official code)."""
    g = lowered("swin_t", tuple(GLOBAL_SWIN) + overrides)
    out, _ = run_pipeline(g, f"{before}partition_windows(M={M}, shift=true)")
    want, _ = run_pipeline(lowered("swin_t", overrides), before.rstrip(",") or "none")
    assert str(out) == str(want)
    assert out.modules == want.modules


def test_vit_with_a_class_token_declines_with_the_reason():
    out, (r,) = run_pipeline(lowered("vit_b16"), "partition_windows(M=7)")
    assert r.applied == 0 and len(r.declined) == 12
    assert {why for _, why in r.declined} == {
        "197 tokens are not the 14×14 grid (a class token? windows need patch tokens only)"}
    assert str(out) == str(lowered("vit_b16"))


def test_vit_without_class_token_is_windowed():
    g = lowered("vit_b16", tuple(VIT_NO_CLS))
    out, (r,) = run_pipeline(g, "partition_windows(M=7, shift=true)")
    assert r.applied == 12
    assert analysis.param_count(out) - analysis.param_count(g) == 12 * 13**2 * 12  # 24,336
    # 12 blocks: 2(196)²·768 − 2·49·196·768 saved per block = 44,255,232 (14×14 map, M=7)
    assert analysis.macs(g) - analysis.macs(out) == 12 * (2 * 196**2 * 768 - 2 * 49 * 196 * 768)
    assert out["blocks.1.shifted"].a["shift"] == -3 and "blocks.0.shifted" not in out


@pytest.mark.parametrize("spec", ["gpt2", "bert_base", "transformer_base", "detr_r50"])
def test_models_without_a_plain_token_grid_decline_windows(spec):
    _, (r,) = run_pipeline(lowered(spec), "partition_windows(M=7)")
    assert r.applied == 0 and r.declined
    assert all(any(k in why for k in ("causal", "no H×W token grid", "not one token map"))
               for _, why in r.declined)


def test_window_that_does_not_divide_the_map_is_refused():
    g = lowered("swin_t", tuple(GLOBAL_SWIN))
    with pytest.raises(PassError, match=r"window 12 does not divide the 56×56 map of stage 1 "
                                        r"\(layers.0.blocks.0\); use M in \[2, 4, 7, 8, 14, 28, 56\]"):
        run_pipeline(g, "partition_windows(M=12)")
    g = lowered("swin_t", tuple(GLOBAL_SWIN) + ("img_size=160",))  # maps 40, 20, 10, 5
    with pytest.raises(PassError, match="window 8 does not divide the 20×20 map of stage 2"):
        run_pipeline(g, "partition_windows(M=8)")


def test_refusal_is_a_user_error_in_the_cli():
    from click.testing import CliRunner
    from graphspec.cli.main import main

    res = CliRunner().invoke(main, ["flops", "swin_t", "--set", "encoder.attention=global",
                                    "--passes", "partition_windows(M=12)"])
    assert res.exit_code == 2
    assert "window 12 does not divide the 56×56 map of stage 1" in res.output
    assert "Traceback" not in res.output


# -- cse, dce, fold_constants -----------------------------------------------------------------------
def test_cse_merges_equal_constants_only():
    out, (r,) = run_pipeline(lowered("transformer_base"), "cse")
    assert r.applied == 1 and "embed.pos_encoding_1" not in out  # one sinusoid for both stacks
    out, (r,) = run_pipeline(lowered("swin_s"), "cse")  # 9 shifted blocks in stage 3 share a mask
    assert r.applied == 8 + 0  # stages 1, 2: one shifted block each; stage 4: no shift
    assert sum(1 for n in out if n.op == "shift_mask") == 3


def test_cse_never_merges_impure_nodes_or_distinct_weights():
    g = lowered("vit_b16", ("img_size=32", "patch=8", "D=32", "L=1", "h=2", "classes=5"))
    x = g["norm"]
    extra = [x.evolve(name=f"drop{i}", op="dropout", inputs=("norm",), attrs={"p": 0.1}) for i in (1, 2)]
    extra += [g["head"].evolve(name=f"lin{i}", inputs=("norm",), shape=(1, 17, 5)) for i in (1, 2)]
    g2 = g.copy_with([*g, *extra], outputs=("head", "drop1", "drop2", "lin1", "lin2"))
    out, (r,) = run_pipeline(g2, "cse")
    assert r.applied == 0 and all(n in out for n in ("drop1", "drop2", "lin1", "lin2"))
    tied = [g["head"].evolve(name=f"tied{i}", inputs=("pool",), attrs={**g["head"].a, "weights": "head"})
            for i in (1, 2)]
    out, (r,) = run_pipeline(g.copy_with([*g, *tied], outputs=("head", "tied1", "tied2")), "cse")
    assert r.applied == 1 and out.outputs == ("head", "tied1", "tied1")  # same weights, same input


def test_dce_drops_dead_nodes_and_declares_their_parameters():
    g = lowered("bert_base")
    g2 = g.copy_with(list(g), outputs=(g.outputs[0],))  # drop the pooler output
    out, (r,) = run_pipeline(g2, "dce")
    assert r.applied == 3 and sorted(r.removed) == ["pooler.dense.bias", "pooler.dense.weight"]
    assert analysis.param_count(g2) - analysis.param_count(out) == 768 * 768 + 768


def test_fold_constants_turns_build_time_values_into_recipes():
    out, (r,) = run_pipeline(lowered("swin_t"), "fold_constants")
    assert r.applied == 5 and not any(n.op == "shift_mask" for n in out)
    c = out["layers.0.blocks.1.attn.shift_mask"]
    assert c.op == "constant" and c.a["recipe"][0] == "shift_mask" and c.shape == (64, 49, 49)
    out, (r,) = run_pipeline(lowered("gpt2"), "fold_constants")
    assert out["embed.position_ids"].op == "constant" and out["embed.position_ids"].dtype == "i64"
