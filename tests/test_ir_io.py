"""The IR's text, JSON and DOT forms: JSON round-trips exactly (numeric and symbolic shapes)."""

from __future__ import annotations

import json
import re

import pytest

import graphspec
from graphspec import analysis
from graphspec.ir import Graph
from graphspec.lower import lower_attention_block

BUNDLED = sorted(p.stem for p in graphspec.SPECS_DIR.glob("*.yaml"))
SMALL = ["swin_t", "gpt2", "transformer_base", "vit_b16", "bert_base"]


@pytest.mark.parametrize("name", BUNDLED)
def test_json_round_trip(name):
    g = graphspec.load(name).graph
    back = Graph.from_json(g.to_json())
    assert str(back) == str(g)
    assert back.to_json() == g.to_json()
    assert back.outputs == g.outputs
    assert back.modules == g.modules
    assert analysis.param_count(back) == analysis.param_count(g)
    assert analysis.macs(back) == analysis.macs(g)


@pytest.mark.parametrize("name", SMALL)
def test_json_round_trip_symbolic(name):
    g = graphspec.load(name, symbolic=True).graph
    back = Graph.from_json(g.to_json())
    assert str(back) == str(g)
    assert back.to_json() == g.to_json()
    assert analysis.macs(back) - analysis.macs(g) == 0  # sympy polynomials survive the trip


def test_json_round_trip_symbolic_window():
    import sympy

    h, w, C, M, heads = sympy.symbols("h w C M heads", positive=True, integer=True)
    g = lower_attention_block(C, heads, (h, w), window=M, shift=M // 2)
    back = Graph.from_json(g.to_json())
    assert str(back) == str(g)
    assert sympy.simplify(analysis.macs(back) - analysis.macs(g)) == 0


def test_str_is_one_line_per_node_with_shape_and_location():
    g = graphspec.load("swin_t").graph
    text = str(g)
    lines = text.splitlines()
    assert lines[0] == "graph swin_t(%image: f32[1,3,224,224]):"
    assert lines[-1] == "  return %head"
    assert len(lines) == len(g) - len(g.inputs) + 2
    line = next(x for x in lines if x.startswith("  %layers.0.blocks.1.attn.scores ="))
    assert re.fullmatch(r"  %layers\.0\.blocks\.1\.attn\.scores = matmul\(%layers\.0\.blocks\.1\.attn\.q_heads, "
                        r"%layers\.0\.blocks\.1\.attn\.k_t\) : f32\[64,3,49,49\]  # \S*swin_t\.yaml:\d+:\d+", line), line


def test_json_is_plain_json():
    data = json.loads(graphspec.load("gpt2", symbolic=True).graph.to_json())
    assert data["name"] == "gpt2"
    node = next(n for n in data["nodes"] if n["name"] == "blocks.0.attn.scores")
    assert node["shape"] == ["B", "12", "N", "N"]  # dims as text, read back by the safe evaluator
    assert node["op"] == "matmul"


def test_dot_export():
    g = graphspec.load("vit_b16").graph
    dot = g.to_dot()
    assert dot.startswith('digraph "vit_b16" {') and dot.rstrip().endswith("}")
    nodes = re.findall(r'^  "([^"]+)" \[label=', dot, re.M)
    edges = re.findall(r'^  "([^"]+)" -> "([^"]+)";', dot, re.M)
    assert len(nodes) == len(g)
    assert len(edges) == sum(len(set(n.inputs)) for n in g)
    assert ("blocks.0.attn.q_heads", "blocks.0.attn.scores") in edges
    assert '"head" [label="head\\nlinear f32[1,1000]"];' in dot


@pytest.mark.parametrize("name", ["swin_t", "detr_r50", "t5_base", "deepseek_v2_lite", "twins_pcpvt_s"])
def test_iteration_is_networkx_topological_order(name):
    """Graph iterates in insertion order; that is networkx's lexicographical topological sort
    keyed by insertion (its contract, and what it was computed with), before and after passes."""
    import networkx as nx

    from graphspec.passes import run_pipeline

    m = graphspec.load(name)
    for g in (m.graph, run_pipeline(m.graph, "all")[0]):
        index = {n: i for i, n in enumerate(g._g.nodes)}
        want = list(nx.lexicographical_topological_sort(g._g, key=index.__getitem__))
        assert [n.name for n in g] == want
        seen: set[str] = set()
        for n in g:  # every input before its user
            assert set(n.inputs) <= seen, n.name
            seen.add(n.name)


def test_fresh_is_the_first_free_suffix():
    """`fresh(base)`: base, else base_k for the least free k ≥ 1 (it remembers where it got to, which
    must not change the answer: nodes are never removed)."""
    from graphspec.ir import Node

    g = Graph("g")
    g.add(Node("x", "input", (), (("kind", "image"),), (1, 4)))
    assert g.fresh("a") == "a"
    for want in ("a", "a_1", "a_2"):
        assert g.fresh("a") == want and g.fresh("a") == want  # asking twice adds nothing
        g.add(Node(want, "relu", ("x",), (), (1, 4)))
    g.add(Node("a_4", "relu", ("x",), (), (1, 4)))  # added by name, not through fresh
    assert g.fresh("a") == "a_3"
    g.add(Node("a_3", "relu", ("x",), (), (1, 4)))
    assert g.fresh("a") == "a_5"
