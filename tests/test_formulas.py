"""`graphspec flops --formulas`: the papers' attention formulas against the IR, user-facing.

The expected numbers are the papers' formulas evaluated here by hand (arithmetic beside each),
a brute-force sum for the sliding window and FlopCounterMode on a torch GQA attention."""

from __future__ import annotations

import dataclasses

import pytest
import sympy
import torch
from click.testing import CliRunner
from graphspec.cli.main import main
from torch.utils.flop_counter import FlopCounterMode

import graphspec
from graphspec import formulas
from graphspec.analysis import Convention
from graphspec.lower import SYMBOLS

B, H, N = SYMBOLS["B"], SYMBOLS["H"], SYMBOLS["N"]
SWIN_T_STAGES = [(56, 96, 2), (28, 192, 2), (14, 384, 6), (7, 768, 2)]  # (side, C, depth), M = 7
SMALL_MISTRAL = ["L=1", "d=64", "h=4", "kv=2", "d_ff=128", "window=5", "seq_len=12", "vocab=100"]


def omega_msa(hw, c):
    return 4 * hw * c**2 + 2 * hw**2 * c  # Swin Eq. (1)


def omega_wmsa(hw, c, m):
    return 4 * hw * c**2 + 2 * m**2 * hw * c  # Swin Eq. (2)


def run(*args):
    return CliRunner().invoke(main, ["flops", *args])


def test_swin_t_cli_reports_eq1_and_eq2_and_the_global_difference():
    r = run("swin_t", "--formulas")
    assert r.exit_code == 0, r.output
    assert r.output.count("Ω(W-MSA) = 4hwC² + 2M²hwC") == 4 and "arXiv:2103.14030, §3.2, Eq. (2)" in r.output
    assert r.output.count("verdict  identity (symbolic)") == 4 and r.output.count("identity (integers)") == 4
    assert "h = H/4, w = H/4, C = 96, M = 7" in r.output  # stage 1 bound symbolically
    for side, c, depth in SWIN_T_STAGES:
        assert f"{omega_wmsa(side**2, c, 7) * depth:,}" in r.output  # 2 × 145,108,992 = 290,217,984 at stage 1
    # Σ depth·(Ω(MSA) − Ω(W-MSA)) = Σ depth·2hwC(hw − M²):
    # 2·2·3136·96·3087 + 2·2·784·192·735 + 6·2·196·384·147 + 0 = 3,717,439,488 + 442,552,320 + 132,765,696
    diff = sum(depth * (omega_msa(s * s, c) - omega_wmsa(s * s, c, 7)) for s, c, depth in SWIN_T_STAGES)
    assert diff == 4_292_757_504
    assert "global − windowed 4,292,757,504 MACs" in r.output
    assert "3,717,439,488" in r.output and "Ω(W-MSA) -> Ω(MSA)" in r.output


def test_swin_t_global_minus_windowed_from_two_irs():
    windowed = graphspec.load("swin_t").macs()
    glob = graphspec.load("swin_t", ["encoder.attention=global"])
    assert glob.macs() - windowed == 4_292_757_504
    rows = formulas.check(glob.graph, 1)  # the global model is Eq. (1) at every stage
    assert [(r.group, r.formula.name, r.ok) for r in rows] == [
        (f"layers.{i}", "Ω(MSA)", True) for i in range(4)]
    assert [r.macs for r in rows] == [omega_msa(s * s, c) * d for s, c, d in SWIN_T_STAGES]


def test_swin_symbolic_rows_are_identities_in_b_and_h():
    m = graphspec.load("swin_t", symbolic=True)
    rows = formulas.check(m.graph, B)
    assert [(r.group, r.formula.name, len(r.sites), r.ok) for r in rows] == [
        ("layers.0", "Ω(W-MSA)", 2, True), ("layers.1", "Ω(W-MSA)", 2, True),
        ("layers.2", "Ω(W-MSA)", 6, True), ("layers.3", "Ω(W-MSA)", 2, True)]
    # stage 1 per layer: B·Ω(W-MSA) at h = w = H/4, C = 96, M = 7 = 2892·B·H²
    assert sympy.expand(rows[0].sites[0].macs - B * omega_wmsa((H / 4) ** 2, 96, 7)) == 0
    assert sympy.expand(rows[0].sites[0].macs - 2892 * B * H**2) == 0


def test_a_wrong_formula_fails_loudly(monkeypatch):
    wrong = dataclasses.replace(formulas.FORMULAS[0], expr=lambda: 4 * formulas.hw * formulas.C**2
                                + 2 * formulas.M**2 * formulas.hw * formulas.C + formulas.hw * formulas.C)
    assert formulas.FORMULAS[0].name == "Ω(W-MSA)"
    monkeypatch.setattr(formulas, "FORMULAS", [wrong, *formulas.FORMULAS[1:]])
    r = run("swin_t", "--formulas")
    assert r.exit_code == 1
    # the injected +hwC per layer at stage 1: −(H/4)²·96·B = −6·B·H², at 224: −56²·96 = −301,056
    assert "DIFFERS: IR − formula = -6*B*H**2 (2 of 2 sub-layers) (symbolic)" in r.output
    assert "DIFFERS: IR − formula = -301056 (2 of 2 sub-layers) (integers)" in r.output
    assert "swin_t: 12 formula check(s) disagree with the IR" in r.output  # 4 stages × 2 + 4 global rows
    assert "all formula checks are identities" not in r.output


def test_vit_global_attention_counts_the_class_token():
    rows = formulas.check(graphspec.load("vit_b16").graph, 1)
    assert [(r.group, r.formula.name, len(r.sites), r.ok) for r in rows] == [("", "Ω(MSA)", 12, True)]
    assert rows[0].sites[0].macs == omega_msa(197, 768) == 524_391_936  # 14² patches + class token
    sym = formulas.check(graphspec.load("vit_b16", symbolic=True).graph, B)
    assert sym[0].ok and sympy.degree(sym[0].sites[0].macs, H) == 4  # (hw)² in H⁴: quadratic in tokens


def test_pvt_spatial_reduction_and_the_global_last_stage():
    rows = formulas.check(graphspec.load("pvt_small", symbolic=True).graph, B)
    assert [(r.group, r.formula.name, len(r.sites), r.ok) for r in rows] == [
        ("layers.0", "Ω(SRA)", 3, True), ("layers.1", "Ω(SRA)", 4, True),
        ("layers.2", "Ω(SRA)", 6, True), ("layers.3", "Ω(MSA)", 3, True)]
    num = formulas.check(graphspec.load("pvt_small").graph, 1)
    # stage 1 (56², C = 64, R = 8): 2·3136·64² + 2·3136·64²/64 + 2·3136²·64/64 + 3136·64² = 58,605,568
    assert num[0].sites[0].macs == 58_605_568
    assert num[3].sites[0].macs == omega_msa(50, 512)  # 7² + class token, R = 1


def sliding_brute(n, w):
    return sum(min(i + 1, w) for i in range(n))


def test_sliding_pairs_closed_form_is_the_sum():
    for n in range(1, 25):
        for w in range(1, 9):
            assert formulas.sliding_pairs(sympy.Integer(n), w) == sliding_brute(n, w), (n, w)


def _gqa_flop_counter(n, dim, heads, kv, d):
    """FlopCounterMode on a torch GQA self-attention (HF's repeat_kv, eager matmuls)."""
    x = torch.randn(1, n, dim)
    q, k, v = (torch.nn.Linear(dim, f, bias=False) for f in (heads * d, kv * d, kv * d))
    o = torch.nn.Linear(heads * d, dim, bias=False)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        qh = q(x).view(1, n, heads, d).transpose(1, 2)
        kh = k(x).view(1, n, kv, d).transpose(1, 2).repeat_interleave(heads // kv, dim=1)
        vh = v(x).view(1, n, kv, d).transpose(1, 2).repeat_interleave(heads // kv, dim=1)
        p = (qh @ kh.transpose(-2, -1)).softmax(-1)
        o((p @ vh).transpose(1, 2).reshape(1, n, heads * d))
    return fc.get_total_flops() // 2


def test_gqa_dense_and_sliding_unmasked_on_a_small_mistral():
    m = graphspec.load("mistral_7b", SMALL_MISTRAL)
    rows = formulas.check(m.graph, 1)
    assert [(r.formula.name, r.ok) for r in rows] == [("Ω(GQA)", True)]
    # dense: 2·12·64·(64 + 32) + 2·12²·64 = 147,456 + 18,432 = 165,888 = FlopCounterMode / 2
    assert rows[0].sites[0].macs == 165_888 == _gqa_flop_counter(12, 64, 4, 2, 16)
    un = formulas.check(m.graph, 1, Convention.named("unmasked"))
    assert [(r.formula.name, r.ok) for r in un] == [("Ω(SWA)", True)]
    # kept pairs Σᵢ min(i+1, 5) over 12 = 15 + 7·5 = 50: 147,456 + 2·64·50 = 153,856
    assert sliding_brute(12, 5) == 50 and un[0].sites[0].macs == 153_856
    sym = formulas.check(graphspec.load("mistral_7b", SMALL_MISTRAL, symbolic=True).graph, B,
                         Convention.named("unmasked"))
    assert sym[0].ok and isinstance(sympy.piecewise_fold(sym[0].sites[0].macs), sympy.Piecewise)


def test_sliding_cli_compares_with_full_causal():
    r = run("mistral_7b", "--formulas", "--convention", "unmasked", *sum((["--set", s] for s in SMALL_MISTRAL), []))
    assert r.exit_code == 0, r.output
    assert "Ω(SWA)" in r.output and "arXiv:2310.06825" in r.output and "--set decoder.attention=causal" in r.output
    # full causal keeps 12·13/2 = 78 pairs per head, the window 50: 2·64·(78 − 50) = 3,584 more
    assert "global − windowed 3,584 MACs" in r.output


@pytest.mark.parametrize("name, kinds", [
    ("t5_base", ["Ω(MSA)", "Ω(causal)", "Ω(cross)"]), ("gpt2", ["Ω(causal)"]), ("llama2_7b", ["Ω(causal)"]),
])
def test_token_models_under_unmasked(name, kinds):
    m = graphspec.load(name, ["L=1"] if name != "gpt2" else [], symbolic=True)
    rows = formulas.check(m.graph, B, Convention.named("unmasked"))
    assert [r.formula.name for r in rows] == kinds and all(r.ok for r in rows)


def test_formulas_refuse_a_convention_they_do_not_count():
    r = run("vit_b16", "--formulas", "--convention", "swin")
    assert r.exit_code == 2 and "use --convention macs, unmasked, flops" in r.output


@pytest.mark.parametrize("spec, extra, kind", [
    ("swin_t", [], "Ω(W-MSA)"), ("mistral_7b", sum((["--set", s] for s in SMALL_MISTRAL), []), "Ω(GQA)")])
def test_fused_attention_reads_the_same(spec, extra, kind):
    """After the default passes (one fused `attention` node, qkv fused) the formulas still hold."""
    r = run(spec, "--formulas", "--passes", "default", *extra)
    assert r.exit_code == 0, r.output
    assert kind in r.output and "DIFFERS" not in r.output


def test_swin_b_384_with_m12():
    """Swin-B at 384² with 12×12 windows: Eq. (2) at M = 12, and the last stage's 12×12 map is one
    window, so global costs the same there (Swin §3.2)."""
    r = run("swin_b_384", "--formulas")
    assert r.exit_code == 0, r.output
    assert "h = 96, w = 96, C = 128, M = 12" in r.output and r.output.count("identity (integers)") == 4
    stages = [(96, 128, 2), (48, 256, 2), (24, 512, 18), (12, 1024, 2)]
    # 2·2·9216·128·9072 + 2·2·2304·256·2160 + 18·2·576·512·432 + 0
    diff = sum(d * 2 * s * s * c * (s * s - 144) for s, c, d in stages)
    assert diff == 42_807_066_624 + 5_096_079_360 + 4_586_471_424 == 52_489_617_408
    assert f"global − windowed {diff:,} MACs" in r.output


def test_gqa_with_a_head_width_other_than_c_over_h():
    """head_dim 24 ≠ 64/4 (Qwen3, Gemma): hd = 96, gd = 48 in Ω(GQA)."""
    m = graphspec.load("mistral_7b", [*SMALL_MISTRAL, "decoder.head_dim=24"])
    rows = formulas.check(m.graph, 1)
    assert [(r.formula.name, r.ok) for r in rows] == [("Ω(GQA)", True)]
    # 2·12·64·(96 + 48) + 2·12²·96 = 221,184 + 27,648 = 248,832 = FlopCounterMode / 2
    assert rows[0].sites[0].macs == 248_832 == _gqa_flop_counter(12, 64, 4, 2, 24)
