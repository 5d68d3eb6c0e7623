"""SETR's three decoders (Zheng et al. 2021, §3.3) on ViT-L/16 at 512×512, ADE20K's 150 classes:
output shapes and MAC formulas, written out by hand."""

import pytest

import graphspec
from graphspec import analysis

HW = 32 * 32  # 512 / 16 = 32 tokens a side


def decoder(name):
    m = graphspec.load(f"setr_{name}")
    return m, analysis.by_module(m.graph, depth=1)["decode_head"]


@pytest.mark.parametrize("name", ["naive", "pup", "mla"])
def test_logits_at_image_resolution(name):
    m, _ = decoder(name)
    assert m.graph[m.graph.outputs[0]].shape == (1, 150, 512, 512)


def test_naive_macs():
    _, d = decoder("naive")
    # 1×1 conv 1024 -> 256 and 1×1 conv 256 -> 150 on the 32×32 map; bilinear ×16 not counted
    assert d["macs"] == HW * 1024 * 256 + HW * 256 * 150 == 307_757_056
    assert d["params"] == 1024 * 256 + 2 * 256 + 256 * 150 + 150  # conv, BN affine, classifier


def test_pup_macs():
    _, d = decoder("pup")
    # four 3×3 convs at 32², 64², 128², 256² (1024 -> 256, then 256 -> 256), then 1×1 to 150 at 512²
    convs = 9 * 256 * (HW * 1024 + 64**2 * 256 + 128**2 * 256 + 256**2 * 256)
    assert d["macs"] == convs + 512**2 * 256 * 150 == 63_216_549_888


def test_mla_macs_and_taps():
    m, d = decoder("mla")
    # per stream at 32²: 1×1 1024 -> 512, 3×3 512 -> 512, 3×3 512 -> 256; four streams;
    # the concatenation (4·256 = 1024 channels) -> 150 by a 1×1 conv at 128²
    stream = HW * (1024 * 512 + 9 * 512 * 512 + 9 * 512 * 256)
    assert d["macs"] == 4 * stream + 128**2 * 1024 * 150 == 19_159_580_672
    g = m.graph
    taps = sorted(g[n.inputs[0]].module for n in g if n.op == "to_map")
    assert taps == sorted(f"blocks.{i}" for i in (5, 11, 17, 23))  # layers 6, 12, 18, 24


@pytest.mark.parametrize("name", ["naive", "pup", "mla"])
def test_macs_symbolic_in_image_size(name):
    # `graphspec flops setr_* --symbolic`: a polynomial in the token grid (H = 16t) that equals
    # the numeric count at 512 and at another size
    import sympy

    from graphspec.lower import SYMBOLS

    B, H = SYMBOLS["B"], SYMBOLS["H"]
    macs = graphspec.load(f"setr_{name}", symbolic=True).macs()
    assert {s.name for s in macs.free_symbols} == {"B", "H"}
    assert macs.subs({B: 1, H: 512}) == graphspec.load(f"setr_{name}").macs()
    assert macs.subs({B: 1, H: 256}) == graphspec.load(f"setr_{name}", ["img_size=256"]).macs()
    t = sympy.Symbol("t", positive=True, integer=True)
    assert sympy.expand(macs.subs({H: 16 * t})).is_polynomial(B, t)
