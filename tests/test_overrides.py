"""`--set` overrides and `extends`: variants of a spec reproduce the figures of the spec written out."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from graphspec.cli.main import main

import graphspec
from graphspec import analysis
from graphspec.spec import SpecError


def figures(m: graphspec.Model) -> tuple:
    return m.params(), m.macs(), m.macs("swin")


def test_swin_b_at_384_equals_swin_b_384():
    via_set = graphspec.load("swin_b", ["img_size=384", "M=12"])
    written = graphspec.load("swin_b_384")
    assert figures(via_set) == figures(written)
    assert via_set.params() == 87_903_584  # 87,768,224 + (23² − 13²)·376 bias-table rows
    assert str(via_set.graph).replace("swin_b_384", "swin_b") == str(written.graph).replace("swin_b_384", "swin_b")


def test_cli_set_matches_written_spec():
    a = CliRunner().invoke(main, ["flops", "swin_b", "--set", "img_size=384", "--set", "M=12", "--depth", "0"])
    b = CliRunner().invoke(main, ["flops", "swin_b_384", "--depth", "0"])
    assert a.exit_code == b.exit_code == 0
    assert a.output.splitlines()[-1] == b.output.splitlines()[-1]  # the totals line


@pytest.mark.parametrize("child, base, overrides", [
    ("vit_b16_384", "vit_b16", ["img_size=384"]),
    ("bert_large", "bert_base", ["H=1024", "L=24", "A=16"]),
    ("transformer_big", "transformer_base", ["d_model=1024", "h=16", "d_ff=4096", "p=0.3"]),
    ("swin_s", "swin_t", ["encoder.depths=[2, 2, 18, 2]", "drop_path=0.3"]),
])
def test_extends_equals_base_with_overrides(child, base, overrides):
    assert figures(graphspec.load(child)) == figures(graphspec.load(base, overrides))


def test_deit_b_is_vit_b16_with_drop_path():
    deit, vit = graphspec.load("deit_b"), graphspec.load("vit_b16")
    assert figures(deit) == figures(vit)
    assert any(n.op == "drop_path" for n in deit.graph) and not any(n.op == "drop_path" for n in vit.graph)


def test_extends_inherits_but_expect_is_not_inherited(tmp_path):
    (tmp_path / "base.yaml").write_text((graphspec.SPECS_DIR / "gpt2.yaml").read_text())
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nname: gpt2_wide\nvars: d=1024, h=16\n")
    child = graphspec.load(tmp_path / "child.yaml")
    assert child.spec.name == "gpt2_wide"
    assert child.spec.expect == {}  # a variant's figures are its own
    assert child.spec.vars["vocab"] == 50257 and child.spec.vars["d"] == 1024
    assert child.params() == graphspec.load("gpt2", ["d=1024", "h=16"]).params()


def test_extends_chain_and_section_merge(tmp_path):
    (tmp_path / "a.yaml").write_text((graphspec.SPECS_DIR / "swin_t.yaml").read_text())
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nname: b\nencoder: {depths: [2, 2, 18, 2]}\n")
    (tmp_path / "c.yaml").write_text("extends: b.yaml\nname: c\nvars: C=128\nencoder: {heads: [4, 8, 16, 32]}\n")
    c = graphspec.load(tmp_path / "c.yaml")
    assert c.params() == graphspec.load("swin_b").params() == 87_768_224
    assert c.spec.raw.files[-1].endswith("a.yaml") and len(c.spec.raw.files) == 3


@pytest.mark.parametrize("overrides, check", [
    (["head=none"], lambda m: not any(n.name == "head" for n in m.graph)),
    (["encoder.attention=global"], lambda m: not any(n.op == "window_partition" for n in m.graph)),
    (["classes=21841"], lambda m: m.params() == 109_130_249),  # Swin-B with the 22K head
])
def test_field_overrides(overrides, check):
    assert check(graphspec.load("swin_b" if "classes=21841" in overrides else "vit_b16", overrides))


@pytest.mark.parametrize("name", ["vit_b16", "vit_b16_384", "deit_s", "vit_h14"])
def test_swin_paper_convention_is_the_spec_without_cls_token_and_head(name):
    """`--set embed.cls_token=false --set head=none` (an argument of a call form) re-lowers the
    spec exactly as the named convention "swin-paper" does."""
    via_set = graphspec.load(name, ["embed.cls_token=false", "head=none"])
    assert via_set.macs() == graphspec.load(name).macs("swin-paper")


def test_call_form_argument_overrides():
    assert graphspec.load("swin_b", ["head.classes=21841"]).params() == 109_130_249
    # no position table: 86,567,656 − 197·768 = 86,416,360
    assert graphspec.load("vit_b16", ["embed.pos=none"]).params() == 86_567_656 - 197 * 768
    # the error points at the --set that added the argument, not at the spec's `embed:` line
    with pytest.raises(SpecError, match=r"--set embed\.bogus=1:1:1: error: patches\(\) has no argument 'bogus'"):
        graphspec.load("vit_b16", ["embed.bogus=1"])


def test_swin_with_global_attention_is_eq1():
    """The same spec with `encoder.attention=global`: stage 1 costs Ω(MSA) instead of Ω(W-MSA)."""
    g = graphspec.load("swin_t", ["encoder.attention=global"]).graph
    rows = analysis.by_module(g, depth=3)
    attn = rows["layers.0.blocks.0.attn"]["macs"]
    assert attn == 4 * 3136 * 96**2 + 2 * 3136**2 * 96 == 2_003_828_736


def test_override_of_unknown_name_suggests():
    with pytest.raises(SpecError, match=r"did you mean 'img_size'\?"):
        graphspec.load("vit_b16", ["img_sz=384"])
    with pytest.raises(SpecError, match=r"--set encoder\.nope=1:1:1: error: unknown key 'nope'|names no variable"):
        graphspec.load("vit_b16", ["encoder.nope=1"])


def test_set_names_switches_the_naming_scheme_and_keeps_the_counts():
    hf = graphspec.load("llama2_7b", ["L=1"])
    ours = graphspec.load("llama2_7b", ["L=1", "names=graphspec"])
    assert hf.params() == ours.params() and hf.macs() == ours.macs()
    assert "layers.0.self_attn.q_proj.weight" in analysis.parameters(hf.graph)
    assert "layers.0.self_attn.q_proj.weight" not in analysis.parameters(ours.graph)


def test_an_unsettable_top_level_key_is_not_suggested_as_itself():
    r = CliRunner().invoke(main, ["flops", "gpt2", "--set", "expect=1"])
    assert r.exit_code == 2
    assert "names no variable or spec field" in r.output and "did you mean 'expect'" not in r.output
