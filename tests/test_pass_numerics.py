"""Passes preserve what the model computes: the interpreter's output before and after each pass
agrees within 1e-5 (fp32) on small variants of the bundled specs. Window partitioning changes
the model on purpose; it is checked against the lowered windowed model instead."""

import pytest
import torch

import graphspec
from graphspec import analysis
from graphspec.interpret import init_params, random_inputs, rename_params, run
from graphspec.passes import run_pipeline

SMALL = {
    "swin_t": ("img_size=64", "C=48", "M=4", "classes=10", "encoder.depths=[2, 2, 2, 2]"),
    "vit_b16": ("img_size=32", "patch=8", "D=64", "L=2", "h=4", "classes=10"),
    "gpt2": ("L=2", "d=64", "h=4", "vocab=100", "n_ctx=32", "seq_len=16"),
    "transformer_base": ("N=2", "d_model=64", "h=4", "d_ff=128", "vocab=100", "seq_len=16"),
    "bert_base": ("L=2", "H=64", "A=4", "vocab=100", "max_len=32", "seq_len=16"),
}
PIPELINES = ["fuse_attention", "fuse_qkv", "cse", "dce", "fold_constants", "fuse_attention,fuse_qkv", "default",
             "all"]


def close(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-5, msg=lambda m, k=k: f"output {k}: {m}")


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("spec", sorted(SMALL))
def test_pass_keeps_the_numbers(spec, pipeline):
    g = graphspec.load(spec, list(SMALL[spec])).graph
    params, x = init_params(g, seed=0), random_inputs(g, seed=1)
    ref = run(g, x, params)
    out, report = run_pipeline(g, pipeline)
    for r in report:  # the passes' declared renames (fuse_qkv: q, k, v -> qkv)
        params = rename_params(params, r.renames)
        assert not r.added
    assert set(params) == set(analysis.parameters(out))
    close(run(out, x, params), ref)


@pytest.mark.parametrize("before", ["", "fuse_attention,fuse_qkv,"])
def test_windowed_global_swin_computes_the_windowed_swin(before):
    """Global-attention Swin + partition_windows(M=4, shift=true) computes exactly what the
    Swin lowered with shifted windows computes, with the same weights (64 px: maps 16, 8, 4, 2)."""
    glob = graphspec.load("swin_t", [*SMALL["swin_t"], "encoder.attention=global"]).graph
    win = graphspec.load("swin_t", list(SMALL["swin_t"])).graph
    out, _ = run_pipeline(glob, f"{before}partition_windows(M=4, shift=true)")
    params, x = init_params(win, seed=0), random_inputs(win, seed=1)
    want = run(win, x, params)
    if before:
        _, report = run_pipeline(win, before.rstrip(","))
        params = rename_params(params, report[-1].renames)
    close(run(out, x, params), want)


def test_one_window_with_a_zero_bias_is_global_attention():
    """ViT without class token on a 4×4 grid: partition_windows(M=4) makes one window per image;
    with the new bias tables at zero the model computes what it computed before."""
    g = graphspec.load("vit_b16", [*SMALL["vit_b16"], "embed=patches(patch, dim=D, cls_token=false, pos=learned)"]).graph
    params, x = init_params(g, seed=0), random_inputs(g, seed=1)
    out, (r,) = run_pipeline(g, "partition_windows(M=4)")
    assert r.applied == 2 and len(r.added) == 2
    shapes = analysis.parameters(out)
    zeros = {k: torch.zeros(shapes[k]) for k in r.added}  # (2·4-1)² × 4 heads = 49 × 4
    assert all(s == (49, 4) for s in map(tuple, (shapes[k] for k in r.added)))
    close(run(out, x, {**params, **zeros}), run(g, x, params))
