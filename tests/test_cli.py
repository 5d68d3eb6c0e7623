"""`graphspec specs | inspect | flops` through click's CliRunner (and one real subprocess)."""

from __future__ import annotations

import json
import re
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


# -- tables (issue 14) ----------------------------------------------------------------------
def _rows(output: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header cells, [(indent, cells)]) of the first table in `output`, cut at the columns of
    its dashed rule."""
    lines = output.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln and set(ln.replace(" ", "")) == {"-"})
    spans = [m.span() for m in re.finditer(r"-+", lines[i])]
    spans[-1] = (spans[-1][0], None)

    def cut(ln: str) -> list[str]:
        return [ln[a:b].strip() for a, b in spans]

    rows = []
    for ln in lines[i + 1:]:
        if not ln.strip():
            break
        rows.append((len(ln) - len(ln.lstrip()), cut(ln)))
    return cut(lines[i - 1]), rows


def _int(cell: str) -> int:
    return int(cell.replace(",", ""))


def test_unit_columns_are_named_and_every_column_has_a_header():
    """"M" was both the window size and the millions column; `specs` had a column with no header."""
    head, rows = _rows(run("specs").output)
    assert head == ["spec", "params", "Mparams", "GMACs", "paper"]
    swin = next(cells for _, cells in rows if cells[0] == "swin_t")
    assert swin[1:4] == ["28,288,354", "28.3", "4.491"]
    head, _ = _rows(run("flops", "swin_t").output)
    assert head == ["module", "class", "params", "Mparams", "MACs", "GMACs"]
    head, _ = _rows(run("flops", "vit_b16", "--convention", "flops").output)
    assert head[3:] == ["Mparams", "FLOPs", "GFLOPs"]


def test_parent_rows_sum_their_children():
    """swin_t --depth 2: patch_embed = proj 4,704 (3·96·4·4 + 96) + norm 192 (2·96); a stage =
    its blocks + patch merging (2 × 112,347 + 74,496 = 299,190 in stage 1)."""
    _, rows = _rows(run("flops", "swin_t", "--depth", "2").output)
    by = {cells[0]: (ind, _int(cells[2]), _int(cells[4])) for ind, cells in rows}
    assert by["patch_embed"][1:] == (4_704 + 192, 14_450_688)
    assert by["patch_embed.proj"] == (2, 4_704, 14_450_688)  # the conv's MACs where its weights are
    assert by["layers.0"][1] == 2 * 112_347 + 74_496 == 299_190
    for ind, cells in rows:
        if ind == 0 and cells[0].startswith("layers."):
            kids = [by[c[0]] for i, c in rows if i == 2 and c[0].startswith(cells[0] + ".")]
            assert len(kids) >= 2
            assert by[cells[0]][1:] == (sum(k[1] for k in kids), sum(k[2] for k in kids)), cells[0]


@pytest.mark.parametrize("name", ["vit_b16", "bert_base", "detr_r50", "transformer_base", "setr_mla"])
def test_module_table_partitions_the_totals(name):
    """At depth 2 the unindented rows add up to the totals, and no parent has less than its
    children (a parent also counts its own ops: Swin's bias table, a residual add under `all`)."""
    out = run("flops", name, "--depth", "2", "--convention", "all").output
    _, rows = _rows(out)
    total = re.search(r"total: ([\d,]+) params \S+ ([\d,]+) MACs", out)
    top = [(_int(c[2]), _int(c[4])) for ind, c in rows if ind == 0]
    assert (sum(p for p, _ in top), sum(m for _, m in top)) == (_int(total[1]), _int(total[2]))
    for k, (ind, cells) in enumerate(rows):
        if ind == 0:
            kids = []
            for ind2, c in rows[k + 1:]:
                if ind2 == 0:
                    break
                kids.append((_int(c[2]), _int(c[4])))
            assert sum(p for p, _ in kids) <= _int(cells[2]) and sum(m for _, m in kids) <= _int(cells[4])
    assert all(cells[1] or (cells[2], cells[4]) != ("0", "0") for _, cells in rows)  # no rows of nothing


def test_help_names_the_default_passes(monkeypatch):
    """From the pass manager's table, not a copy: inspect and flops run none by default, codegen
    the default pipeline."""
    from graphspec.cli.passes_opts import pipelines_help

    from graphspec.passes.manager import PIPELINES

    flat = lambda text: " ".join(text.split())  # noqa: E731  (click wraps help text)
    for cmd in ("inspect", "flops"):
        assert "[default: 'none' = no passes, the IR as lowered]" in flat(run(cmd, "--help").output)
    assert f"[default: 'default' = {', '.join(PIPELINES['default'])}]" in flat(run("codegen", "--help").output)
    assert f"'all' ({', '.join(PIPELINES['all'])})" in flat(run("inspect", "--help").output)
    monkeypatch.setitem(PIPELINES, "default", ("cse",))
    assert pipelines_help("default").endswith("[default: 'default' = cse]")
