"""DETR-R50 and ResNet-50: parameters and MACs against the official code's conventions and an
independent implementation (Hugging Face DETR with a transformers ResNet backbone, random
weights, no downloads)."""

import pytest

import graphspec
from graphspec import analysis


@pytest.fixture(scope="module")
def detr():
    return graphspec.load("detr_r50")


def test_detr_parameters(detr):
    # facebookresearch/detr: backbone convs 23,454,912 + transformer 17,363,456 + input_proj 524,544
    # + query_embed 25,600 + class_embed 23,644 + bbox_embed 132,612 = 41,524,768
    assert detr.params() == 23_454_912 + 17_363_456 + 524_544 + 25_600 + 23_644 + 132_612 == 41_524_768
    # main.py prints requires_grad parameters only: conv1 and layer1 are frozen (222,400)
    assert analysis.param_count(detr.graph, trainable=True) == 41_524_768 - 222_400 == 41_302_368


def test_detr_breakdown_at_800x1066(detr):
    rows = analysis.by_module(detr.graph, depth=1)
    assert rows["backbone"]["macs"] == 69_976_448_000  # 69.98G (reference breakdown)
    # encoder: 6 layers over 25·34 = 850 tokens, d = 256, FFN 2048
    assert rows["encoder"]["macs"] == 6 * (4 * 850 * 256**2 + 2 * 850**2 * 256 + 2 * 850 * 256 * 2048)
    # decoder: 100 queries; self-attn 4·100·d² + 2·100²·d; cross-attn projections (100 + 100 + 2·850)·d²
    # and 2·100·850·d; FFN 2·100·d·2048
    per_layer = (4 * 100 * 256**2 + 2 * 100**2 * 256 + (200 + 2 * 850) * 256**2 + 2 * 100 * 850 * 256
                 + 2 * 100 * 256 * 2048)
    assert rows["decoder"]["macs"] == 6 * per_layer == 1_825_382_400


@pytest.mark.parametrize("width, gmacs", [(1066, 81.25), (1199, 91.15)])
def test_detr_macs_bracket_the_published_average(width, gmacs):
    # The published 86 GFLOPs is an fvcore average over COCO val images; at 800×1066 and
    # 800×1199 the analytic count is 81.25G and 91.15G (to the rounding shown).
    m = graphspec.load("detr_r50", [f"width={width}"])
    assert round(m.macs() / 1e9, 2) == gmacs
    assert 81.25 <= 86 <= 91.15


def test_resnet50_matches_torchvision():
    m = graphspec.load("resnet50")
    assert m.params() == 25_557_032  # torchvision resnet50 num_params
    assert m.macs() == 4_087_136_256 + 2_048_000  # conv MACs (fvcore 4.09G) + fc 2048·1000


def test_detr_params_equal_hugging_face(detr):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.DetrConfig(use_timm_backbone=False, use_pretrained_backbone=False, backbone=None,
                                  backbone_config=transformers.ResNetConfig(out_features=["stage4"]),
                                  num_labels=91)
    hf = transformers.DetrForObjectDetection(cfg)
    assert sum(p.numel() for p in hf.parameters()) == detr.params()
    # FrozenBatchNorm2d statistics and affine are buffers in both
    hf_bn = sum(b.numel() for n, b in hf.named_buffers() if "backbone" in n)
    assert hf_bn == sum(4 * s[0] for s in {k.rsplit(".", 1)[0]: v for k, v in analysis.buffers(detr.graph).items()}.values())


def test_detr_macs_symbolic_in_height_and_width():
    # `graphspec flops detr_r50 --symbolic`: stride-2 convs give floor((H - 1)/2) + 1 etc.; at
    # multiples of 32 (H = 32h, W = 32w, the backbone's stride) that collapses to a polynomial in
    # the feature map h×w: 6 encoder layers' QKᵀ and ·V are the (hw)² term, 2·6·(hw)²·256.
    import sympy

    from graphspec.lower import SYMBOLS

    B, H, W = SYMBOLS["B"], SYMBOLS["H"], SYMBOLS["W"]
    macs = graphspec.load("detr_r50", symbolic=True).macs()
    assert {s.name for s in macs.free_symbols} == {"B", "H", "W"}
    assert macs.subs({B: 1, H: 800, W: 1066}) == 81_245_056_000
    assert macs.subs({B: 2, H: 800, W: 1199}) == 2 * 91_147_776_000
    assert macs.subs({B: 1, H: 640, W: 480}) == graphspec.load("detr_r50", ["height=640", "width=480"]).macs()
    h, w = sympy.symbols("h w", positive=True, integer=True)
    poly = sympy.expand(macs.subs({H: 32 * h, W: 32 * w}))
    assert sympy.expand(poly - (2 * 6 * 256 * B * (h * w) ** 2 + 92_893_184 * B * h * w + 989_184_000 * B)) == 0
