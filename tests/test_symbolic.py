"""Symbolic counts: Swin Eq. (1) and (2) as sympy identities on the real lowering path, and
whole models as polynomials in batch B, sequence N (target T) and image size H."""

from __future__ import annotations

import pytest
import sympy

import graphspec
from graphspec import analysis
from graphspec.lower import SYMBOLS, lower_attention_block
from graphspec.ops import MAC

h, w, C, M, heads = sympy.symbols("h w C M heads", positive=True, integer=True)
B, N, T, H = SYMBOLS["B"], SYMBOLS["N"], SYMBOLS["T"], SYMBOLS["H"]

OMEGA_MSA = 4 * h * w * C**2 + 2 * (h * w) ** 2 * C  # Swin Eq. (1)
OMEGA_WMSA = 4 * h * w * C**2 + 2 * M**2 * h * w * C  # Swin Eq. (2)


def attention_macs(g) -> sympy.Expr:
    """MACs of the attention: projections (q, k, v, proj) + QKᵀ + ·V. NB: softmax not counted."""
    ops = {n.op for n in g if analysis.node_cost(g, n)}
    assert ops == {"linear", "matmul"}, ops
    return analysis.macs(g)


def test_msa_is_eq1():
    g = lower_attention_block(C, heads, (h, w))
    assert sympy.simplify(attention_macs(g) - OMEGA_MSA) == 0


@pytest.mark.parametrize("shift", [0, M // 2])
def test_wmsa_is_eq2(shift):
    g = lower_attention_block(C, heads, (h, w), window=M, shift=shift)
    assert sympy.simplify(attention_macs(g) - OMEGA_WMSA) == 0


def test_windowed_minus_global_and_the_limit():
    diff = sympy.factor(OMEGA_MSA - OMEGA_WMSA)
    assert sympy.simplify(diff - 2 * h * w * C * (h * w - M**2)) == 0
    assert sympy.simplify(OMEGA_WMSA.subs(M**2, h * w) - OMEGA_MSA) == 0  # one window = global


def test_per_term_identities():
    g = lower_attention_block(C, heads, (h, w), window=M)
    terms = {n.local: analysis.node_cost(g, n) for n in g if analysis.node_cost(g, n)}
    assert sympy.simplify(terms["q"] + terms["k"] + terms["v"] - 3 * h * w * C**2) == 0  # qkv 3hwC²
    assert sympy.simplify(terms["proj"] - h * w * C**2) == 0
    assert sympy.simplify(terms["scores"] - M**2 * h * w * C) == 0  # (hw/M²) windows × M⁴·C
    assert sympy.simplify(terms["context"] - M**2 * h * w * C) == 0


def test_stage1_numbers():
    # h = w = 56, C = 96, M = 7: Ω(MSA) = 2,003,828,736, Ω(W-MSA) = 145,108,992
    values = {h: 56, w: 56, C: 96, M: 7}
    assert OMEGA_MSA.subs(values) == 2_003_828_736
    assert OMEGA_WMSA.subs(values) == 145_108_992
    assert analysis.macs(lower_attention_block(96, 3, (56, 56), window=7, shift=3)) == 145_108_992
    assert analysis.macs(lower_attention_block(96, 3, (56, 56))) == 2_003_828_736


def test_full_official_block():
    # W-MSA + MLP 8hwC² + 2 LayerNorms: 12hwC² + 2M²hwC + 2hwC = 376,922,112 at stage 1
    g = graphspec.load("swin_t").graph
    rows = analysis.by_module(g, analysis.Convention.named("swin"), depth=2)
    block = 12 * h * w * C**2 + 2 * M**2 * h * w * C + 2 * h * w * C
    assert rows["layers.0.blocks.0"]["macs"] == block.subs({h: 56, w: 56, C: 96, M: 7}) == 376_922_112


# -- whole models --------------------------------------------------------------------------
def _poly_vars(expr) -> set:
    return {s.name for s in sympy.sympify(expr).free_symbols}


@pytest.mark.parametrize("name, free", [
    ("gpt2", {"B", "N"}), ("bert_base", {"B", "N"}), ("transformer_base", {"B", "N", "T"}),
    ("vit_b16", {"B", "H"}), ("swin_t", {"B", "H"}),
])
def test_models_are_polynomials(name, free):
    m = graphspec.load(name, symbolic=True)
    macs = m.macs()
    assert _poly_vars(macs) == free
    assert macs.is_polynomial(*macs.free_symbols)


def test_gpt2_polynomial_matches_numeric_lowering():
    macs = graphspec.load("gpt2", symbolic=True).macs()
    # 12·(2·768·N² + 12·768²·N)·B + 768·50257·N·B
    assert sympy.expand(macs - (18432 * B * N**2 + 123_532_032 * B * N)) == 0
    assert macs.subs({B: 1, N: 128}) == graphspec.load("gpt2").macs() == 16_114_089_984
    assert macs.subs({B: 4, N: 1024}) == graphspec.load("gpt2", ["batch=4", "seq_len=1024"]).macs()


def test_transformer_polynomial_in_source_and_target_lengths():
    macs = graphspec.load("transformer_base", symbolic=True).macs()
    numeric = graphspec.load("transformer_base", ["seq_len=64"]).macs()  # tgt_len defaults to seq_len
    assert macs.subs({B: 1, N: 64, T: 64}) == numeric


@pytest.mark.parametrize("name, size, extra", [
    ("vit_b16", 224, []), ("vit_b16", 384, []), ("swin_t", 224, []), ("swin_t", 384, ["M=12"]),
])
def test_vision_polynomial_in_image_size(name, size, extra):
    sym = graphspec.load(name, extra, symbolic=True)
    num = graphspec.load(name, [f"img_size={size}", *extra])
    assert sym.macs().subs({B: 1, H: size}) == num.macs()
    assert sympy.sympify(sym.params()).subs({H: size}) == num.params()  # ViT's pos_embed grows with H


def test_vit_polynomial_is_quartic_in_h():
    # N = (H/16)² patches + 1 class token: attention's N² term makes it quartic in H.
    macs = graphspec.load("vit_b16", symbolic=True).macs()
    assert sympy.degree(macs, H) == 4
    swin = graphspec.load("swin_t", symbolic=True).macs()
    assert sympy.degree(swin, H) == 2  # windows make Swin linear in the number of tokens


def test_swin_symbolic_quirk():
    m = graphspec.load("swin_t", symbolic=True)
    quirk = analysis.swin_flops_quirk(m.spec, m.graph)
    # 768·((H/4)²/16 − (H/4)²/64) = 9H²/4; at H = 224: 112,896
    assert sympy.simplify(quirk - sympy.Rational(9, 4) * H**2) == 0
    assert quirk.subs(H, 224) == 112_896


def test_every_mac_op_has_a_symbolic_formula():
    g = graphspec.load("swin_t", symbolic=True).graph
    for n in g:
        if graphspec.ops.get(n.op).has(MAC):
            assert analysis.node_cost(g, n) != 0, n.name
