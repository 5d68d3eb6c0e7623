"""The spec vocabulary (graphspec/vocab): every construct has its rules, its example loads, the
registry refuses duplicates, and unknown words get suggestions of their own kind only."""

from __future__ import annotations

import pytest

import graphspec
from graphspec import vocab
from graphspec.spec import SpecError
from graphspec.vocab.registry import KINDS, construct

ALL = [(k, n) for k, table in sorted(KINDS.items()) for n in sorted(table)]

TOKENS = """\
name: ex
input: tokens(16)
embed: tokens(100, dim=32)
encoder×2:
  dim: 32
  heads: 4
  EXTRA
head: lm(tied=true)
"""
IMAGE = """\
name: ex
input: image(64)
embed: patches(4, dim=16)
encoder:
  dim: 16
  depths: [2, 2]
  heads: [2, 4]
  EXTRA
head: classifier(10, pool=mean)
"""


def spec_text(example: str) -> str:
    """A small spec around a construct's example (a stack field, an embedding or a position)."""
    key, _, value = example.partition(": ")
    if key == "embed":
        return TOKENS.replace("\n  EXTRA", "").replace("embed: tokens(100, dim=32)", example.replace("32000, dim=4096", "100, dim=32").replace("dim=64", "dim=32"))
    if key == "pos" and value == "conditional":  # needs a token map
        return IMAGE.replace("\n  EXTRA", "").replace("dim=16)", f"dim=16, pos={value})", 1)
    if key == "pos":
        return TOKENS.replace("\n  EXTRA", "").replace("dim=32)", f"dim=32, pos={value})", 1)
    if key == "head":  # a head replaces the spec's own
        return TOKENS.replace("\n  EXTRA", "").replace("head: lm(tied=true)", example)
    if key == "downsample":
        return IMAGE.replace("EXTRA", f"attention: windowed(4)\n  {example}")
    if value.startswith(("windowed", "shifted_windows", "spatial_reduction")):
        return IMAGE.replace("EXTRA", example.replace("(7)", "(4)"))
    return TOKENS.replace("EXTRA", example)


@pytest.mark.parametrize("kind,name", ALL, ids=[f"{k}:{n}" for k, n in ALL])
def test_every_construct_has_its_rules(kind, name):
    c = KINDS[kind][name]
    assert c.doc, f"{kind} {name}: no docstring"
    assert callable(c.lower)
    assert c.example, f"{kind} {name}: no example"
    assert all(a.doc or a.kind for a in c.args), f"{kind} {name}: an argument without a doc"


@pytest.mark.parametrize("kind,name", ALL, ids=[f"{k}:{n}" for k, n in ALL])
def test_every_example_loads(tmp_path, kind, name):
    example = KINDS[kind][name].example
    if example.startswith("spec: "):
        m = graphspec.load(example.removeprefix("spec: "))
    else:
        p = tmp_path / "ex.yaml"
        p.write_text(spec_text(example), encoding="utf-8")
        m = graphspec.load(p)
    assert m.params() > 0 and m.macs() > 0


def test_registering_twice_is_an_error():
    with pytest.raises(ValueError, match="registered twice"):
        construct("norm", "rms_norm")(lambda b, use, ctx, x: x)


def load_with(tmp_path, extra: str, text: str = TOKENS):
    p = tmp_path / "s.yaml"
    p.write_text(text.replace("EXTRA", extra.replace("; ", "\n  ")), encoding="utf-8")
    return graphspec.load(p)


def error(tmp_path, extra: str, text: str = TOKENS) -> str:
    with pytest.raises(SpecError) as e:
        load_with(tmp_path, extra, text)
    return str(e.value)


def test_swiglu_is_not_suggested_as_gelu(tmp_path):
    msg = error(tmp_path, "act: swiglu")
    assert "did you mean" not in msg
    assert "mlp: glu(d_ff, silu)" in msg
    assert msg.startswith(str(tmp_path / "s.yaml") + ":7:")


def test_suggestions_stay_within_a_kind(tmp_path):
    assert "did you mean 'rms_norm'?" in error(tmp_path, "norm: rms_nrom(1e-6)")
    assert "did you mean 'sliding'?" in error(tmp_path, "attention: slidng(8)")
    msg = error(tmp_path, "act: glu")  # an MLP kind, not an activation: no "did you mean 'gelu'?"
    assert "did you mean" not in msg and "mlp: glu(d_ff, act)" in msg


def test_arguments_are_validated(tmp_path):
    assert "sliding() argument `window` must be > 0, got 0" in error(tmp_path, "attention: sliding(0)")
    assert "top_k 3 exceeds the 2 experts" in error(tmp_path, "mlp: moe(2, 3, expert=glu(64, silu))")
    assert "rms_norm() has no argument 'epsilon'" in error(tmp_path, "norm: rms_norm(epsilon=1e-6)")
    assert "mlp: glu(d_ff, silu)" in error(tmp_path, "mlp: glu(64, swiglu)")


def test_sugar_equals_the_long_form(tmp_path):
    short = load_with(tmp_path, "d_ff: 64; act: gelu_tanh; norm: post; eps: 1e-6")
    long = load_with(tmp_path, "mlp: mlp(64, gelu_tanh); norm: layer_norm(1e-6); placement: post")
    free = load_with(tmp_path, "mlp: mlp(64, gelu_tanh); norm: layer_norm(1e-6); block: [[attn], norm, [mlp], norm]")
    assert nodes(short) == nodes(long) == nodes(free)
    assert short.graph.modules["blocks.0"].a["norm"] == "post" and free.graph.modules["blocks.0"].a["norm"] == "custom"


def nodes(m):
    return [(n.name, n.op, n.inputs, n.attrs, n.shape) for n in m.graph]


def test_use_reads_defaults():
    u = vocab.use("pos", "rope")
    assert u["theta"] == 10000.0 and u["fraction"] == 1.0 and u["interleaved"] is False
    assert str(vocab.use("mask", "sliding", window=4096)) == "sliding(window=4096)"


def test_layer_norm_without_bias(tmp_path):
    """layer_norm(bias=false) drops β from the count, the generated module and the interpreter."""
    import torch
    from graphspec.codegen import emit, load

    from graphspec.interpret import init_params, run

    m = load_with(tmp_path, "norm: layer_norm(1e-5, bias=false); final_norm: true")
    with_bias = load_with(tmp_path, "norm: layer_norm(1e-5); final_norm: true")
    assert with_bias.params() - m.params() == 2 * (2 * 32) + 32  # 2 blocks × 2 norms + the final norm
    gen = emit(m.graph, m.spec)
    net = getattr(load(gen.source), gen.class_name)().eval()
    params = init_params(m.graph)
    net.load_state_dict(params, strict=True)
    ids = torch.randint(0, 100, (1, 16))
    with torch.no_grad():
        assert torch.allclose(next(iter(run(m.graph, {m.graph.inputs[0].name: ids}, params).values())), net(ids),
                              atol=1e-5)
