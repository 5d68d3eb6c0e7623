"""The verifier: every bundled spec lowers to a valid graph, and each invariant, when broken,
raises a VerifyError that names the node, chains the cause and prints the graph."""

from pathlib import Path

import pytest

import graphspec
from graphspec.ops import ShapeError
from graphspec.verify import VerifyError, verify

SPECS = sorted(p.stem for p in Path(graphspec.SPECS_DIR).glob("*.yaml"))
TINY = ["img_size=32", "patch=8", "D=32", "L=2", "h=2", "classes=5"]


@pytest.fixture(scope="module")
def vit():
    return graphspec.load("vit_b16", TINY).graph


@pytest.mark.parametrize("spec", SPECS)
def test_bundled_specs_verify(spec):
    g = graphspec.load(spec).graph
    assert verify(g, before=g) == []  # no bundled spec has dead nodes


def test_symbolic_graph_verifies():
    assert verify(graphspec.load("swin_t", symbolic=True).graph) == []


def _swap(g, name, **changes):
    return g.copy_with([n.evolve(**changes) if n.name == name else n for n in g])


def test_wrong_recorded_shape_names_the_node_and_prints_the_graph(vit):
    bad = _swap(vit, "blocks.0.attn.scores", shape=(1, 2, 17, 16))
    with pytest.raises(VerifyError) as e:
        verify(bad)
    assert e.value.node == "blocks.0.attn.scores"
    msg = str(e.value)
    assert "recorded shape (1, 2, 17, 16) but the rule of matmul gives (1, 2, 17, 17)" in msg
    assert "--> %blocks.0.attn.scores = matmul(" in msg  # the graph, the node marked
    assert "graph vit_b16:" in msg


def test_rejected_operands_chain_the_shape_error(vit):
    bad = _swap(vit, "blocks.0.attn.scores", inputs=("blocks.0.attn.q_heads", "blocks.0.attn.k_heads"))
    with pytest.raises(VerifyError, match="shape rule of matmul rejects") as e:
        verify(bad)
    assert isinstance(e.value.__cause__, ShapeError)


def test_unknown_op_chains_the_lookup_error(vit):
    with pytest.raises(VerifyError, match="op kind 'flash' is not registered") as e:
        verify(_swap(vit, "blocks.0.attn.probs", op="flash"))
    assert isinstance(e.value.__cause__, KeyError)


def test_unknown_module_path(vit):
    with pytest.raises(VerifyError, match="module path 'blocks.0.nowhere' is not in the module tree"):
        verify(_swap(vit, "blocks.0.attn.probs", module="blocks.0.nowhere"))


def test_missing_output(vit):
    bad = vit.copy_with(list(vit), outputs=("logits",))
    with pytest.raises(VerifyError, match="output %logits does not exist"):
        verify(bad)


def test_dead_nodes_are_reported_not_raised(vit):
    bad = vit.copy_with(list(vit), outputs=("norm",))  # the classifier head is now dead
    warnings = verify(bad)
    assert warnings == ["%pool (select) reaches no output", "%head (linear) reaches no output"]


def test_inconsistent_shared_parameter(vit):
    bad = _swap(vit, "blocks.1.mlp.fc1", attrs={**vit["blocks.1.mlp.fc1"].a, "weights": "blocks.0.mlp.fc2"})
    with pytest.raises(VerifyError, match="parameter blocks.0.mlp.fc2.weight has shapes") as e:
        verify(bad)
    assert isinstance(e.value.__cause__, ValueError)


def test_lost_and_duplicated_parameters_are_caught(vit):
    # a "pass" that drops the head and one that copies the head under a second name
    lost = vit.copy_with([n for n in vit if n.name != "head"], outputs=("pool",))
    with pytest.raises(VerifyError, match=r"lost \['head.bias', 'head.weight'\]"):
        verify(lost, before=vit)
    assert verify(lost, before=vit, removed=["head.weight", "head.bias"]) == []
    copy = vit["head"].evolve(name="head_copy")
    dup = vit.copy_with([*vit, copy], outputs=("head", "head_copy"))
    with pytest.raises(VerifyError, match=r"new \['head_copy.bias', 'head_copy.weight'\]"):
        verify(dup, before=vit)


def test_declared_renames_must_keep_the_scalars(vit):
    nodes = [n.evolve(name="head2") if n.name == "head" else n for n in vit]
    renamed = vit.copy_with(nodes, outputs=("head2",))
    ok = {"head2.weight": ("head.weight",), "head2.bias": ("head.bias",)}
    assert verify(renamed, before=vit, renames=ok) == []
    with pytest.raises(VerifyError, match="does not hold the"):
        verify(renamed, before=vit, renames={"head2.weight": ("head.weight", "norm.weight"),
                                             "head2.bias": ("head.bias",)})
