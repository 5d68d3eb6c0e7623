"""`graphspec specs | inspect | flops` through click's CliRunner (and one real subprocess)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner
from graphspec.cli.main import main

import graphspec
from graphspec.ir import Graph

BUNDLED = sorted(p.stem for p in graphspec.SPECS_DIR.glob("*.yaml"))


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_specs_lists_every_bundled_spec():
    r = run("specs")
    assert r.exit_code == 0, r.output
    for name in BUNDLED:
        assert name in r.output
    assert "28,288,354" in r.output  # swin_t params
    assert "4.491" in r.output  # swin_t GMACs, torchvision's _ops


def test_inspect_table_has_nodes_shapes_and_summary():
    r = run("inspect", "swin_t", "--depth", "1")
    assert r.exit_code == 0, r.output
    assert "%layers.0.blocks.0.attn.scores" in r.output
    assert "f32[64,3,49,49]" in r.output  # nW*B, heads, M², M²
    assert "14,751,744" in r.output  # QKᵀ of one stage-1 block: 64·3·49·49·32
    assert "layers.3" in r.output and "Stage" in r.output
    assert "total: 28,288,354 params" in r.output


def test_inspect_json_round_trips():
    r = run("inspect", "gpt2", "--format", "json")
    assert r.exit_code == 0, r.output
    g = Graph.from_json(r.output)
    assert str(g) == str(graphspec.load("gpt2").graph)


def test_inspect_dot():
    r = run("inspect", "vit_b16", "--format", "dot")
    assert r.exit_code == 0
    assert r.output.startswith('digraph "vit_b16" {')
    assert '"blocks.0.attn.scores" -> "blocks.0.attn.scaled";' in r.output


def test_inspect_symbolic():
    r = run("inspect", "gpt2", "--symbolic", "--depth", "1")
    assert r.exit_code == 0, r.output
    assert "f32[B,N,768]" in r.output
    assert "1536*B*N**2 + 7077888*B*N" in r.output  # one block: 2·768·N² + 12·768²·N


@pytest.mark.parametrize("name", BUNDLED)
def test_flops_check_passes_for_every_bundled_spec(name):
    r = run("flops", name, "--check")
    assert r.exit_code == 0, r.output
    assert "all figures match" in r.output


def test_flops_check_prints_the_swin_quirk():
    r = run("flops", "swin_t", "--check")
    # 768·(56·56//2⁴ − 56·56//4³) = 768·(196 − 49) = 112,896
    assert "768*(56*56//2**4 - 56*56//4**3) = 768*(196 - 49) = 112,896" in r.output
    assert "official_flops   expected      4,494,405,120  got      4,494,405,120  ok" in r.output


def test_flops_check_mismatch_exits_1_with_expected_and_got():
    r = run("flops", "swin_b", "--set", "img_size=384", "--set", "M=12", "--check")
    assert r.exit_code == 1, r.output
    assert "MISMATCH" in r.output
    assert "expected         87,768,224  got         87,903,584  MISMATCH (+135,360)" in r.output


def test_flops_conventions():
    outs = {c: run("flops", "vit_b16", "--convention", c, "--depth", "0").output
            for c in ("macs", "swin", "all", "flops", "swin-paper")}
    assert "17,563,828,224 MACs" in outs["macs"]
    assert "35,127,656,448 FLOPs" in outs["flops"]  # 2 × 17,563,828,224
    assert "17,470,881,792 MACs" in outs["swin-paper"]
    assert "17,567,610,624 MACs" in outs["swin"]  # + 25 LayerNorms × 197 × 768 = 3,782,400


def test_flops_symbolic_polynomials():
    r = run("flops", "gpt2", "--symbolic", "--depth", "0")
    assert r.exit_code == 0, r.output
    # 12 blocks × (2·768·N² + 12·768²·N) + lm head 768·50257·N
    assert "18432*B*N**2 + 123532032*B*N MACs" in r.output
    r = run("flops", "vit_b16", "--symbolic", "--depth", "0")
    assert "*H**4" in r.output and "B*H**2" in r.output


@pytest.mark.parametrize("args, message", [
    (["flops", "no_such_spec"], "cannot read spec"),
    (["flops", "gpt2", "--set", "vocb=3"], "did you mean 'vocab'?"),
    (["flops", "gpt2", "--set", "novalue"], "is not of the form key=value"),
    (["flops", "gpt2", "--check", "--symbolic"], "drop --symbolic"),
    (["flops", "swin_t", "--set", "M=12"], "window 12 does not divide the 56×56 map of stage 1"),
    (["inspect", "vit_b16", "--set", "img_size=225"], "not divisible by the patch size 16"),
])
def test_user_errors_exit_2_without_traceback(args, message):
    r = run(*args)
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert "Traceback" not in r.output


def test_check_without_expect_is_a_user_error(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text("name: tiny\ninput: tokens(8)\nembed: tokens(10, dim=8)\nencoder×1: {dim: 8, heads: 2}\n")
    r = run("flops", str(spec), "--check")
    assert r.exit_code == 2
    assert "no `expect:` block" in r.output


def test_real_subprocess():
    exe = shutil.which("graphspec")
    cmd = [exe] if exe else [sys.executable, "-m", "graphspec.cli.main"]
    ok = subprocess.run([*cmd, "flops", "swin_t", "--check"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([*cmd, "flops", "swin_t", "--set", "M=12"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2
    assert "swin_t.yaml:" in bad.stderr and "error: window 12" in bad.stderr
    assert "Traceback" not in bad.stderr + bad.stdout


def test_json_is_valid_json():
    r = run("inspect", "swin_t", "--format", "json", "--symbolic")
    data = json.loads(r.output)
    assert data["name"] == "swin_t"


@pytest.mark.parametrize("name", ["swin_t", "vit_b16", "gpt2"])
def test_flops_with_passes_keeps_the_figures(name):
    """Fusion rewrites the IR but never a count: --check still passes after the default pipeline."""
    pytest.importorskip("graphspec.passes")
    r = run("flops", name, "--passes", "default", "--check")
    assert r.exit_code == 0, r.output
    assert "# pass: fuse_attention" in r.output
    assert "all figures match" in r.output
