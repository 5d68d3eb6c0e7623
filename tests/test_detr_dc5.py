"""DETR-DC5 and DETR-R101 (Carion et al. 2020, Table 1) against Hugging Face's DETR.

DC5 is DETR with torchvision's `resnet50(replace_stride_with_dilation=[False, False, True])`
(facebookresearch/detr models/backbone.py): the last stage's first block strides 1 at dilation 1
and its other blocks' 3×3 convs dilate by 2, so the map is stride 16. transformers' own ResNet
has no dilation (DetrConfig.dilation is timm-only, and timm does not import here), so the
reference is HF's DetrForObjectDetection with that ResNet, its stage 4 changed as torchvision's
`_make_layer(dilate=True)` changes it (`dilate_last_stage`: six attribute assignments on HF's
convs, nothing of graphspec's). graphspec's random weights go in by weights.from_graphspec; the
interpreter, the generated module and ONNX compute HF's logits and boxes, and the undilated HF
model does not. Counts: parameters equal HF's on the meta device (R50 and R101, "41M" and
"60M"), MACs equal torch's FlopCounterMode / 2 on the dilated HF model (eager attention), and
at 800×1066 / 800×1199 bracket the published COCO averages (187 and 253 GFLOPs)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import graphspec
from graphspec import analysis
from graphspec.interpret import init_params, run
from graphspec.weights import from_graphspec, to_graphspec

transformers = pytest.importorskip("transformers")

L = 2
SMALL = ["height=128", "width=160", f"L={L}", "decoder.aux=false", "batch=2"]  # 8×10 maps at stride 16
TOL = {"atol": 1e-4, "rtol": 1e-4}


def hf_detr(depths=(3, 4, 6, 3), meta=False, **kw):
    cfg = transformers.DetrConfig(use_timm_backbone=False, use_pretrained_backbone=False, backbone=None,
                                  backbone_config=transformers.ResNetConfig(depths=list(depths),
                                                                            out_features=["stage4"]),
                                  num_labels=91, attn_implementation="eager", **kw)
    if meta:
        with torch.device("meta"):
            return transformers.DetrForObjectDetection(cfg)
    return transformers.DetrForObjectDetection(cfg).eval()


def dilate_last_stage(hf) -> None:
    """torchvision ResNet._make_layer(dilate=True) on HF's last stage: the stride becomes 1 (the
    first block's 3×3 conv and its shortcut), and the other blocks' 3×3 convs dilate by 2,
    padding 2 (torchvision's conv3x3 pads by its dilation). The first block keeps dilation 1."""
    stage = hf.model.backbone.model.encoder.stages[-1]
    first = stage.layers[0]
    first.shortcut.convolution.stride = (1, 1)
    first.layer[1].convolution.stride = (1, 1)
    for block in stage.layers[1:]:
        conv = block.layer[1].convolution
        conv.dilation, conv.padding = (2, 2), (2, 2)


@pytest.fixture(scope="module")
def small():
    return graphspec.load("detr_dc5_r50", SMALL)


@pytest.fixture(scope="module")
def hf(small):
    model = hf_detr(encoder_layers=L, decoder_layers=L)
    model.load_state_dict(from_graphspec(init_params(small.graph, seed=0), small.graph, "detr",
                                         like=model.state_dict()), strict=True)
    dilate_last_stage(model)
    return model


@pytest.fixture(scope="module")
def image():
    return torch.randn(2, 3, 128, 160, generator=torch.Generator().manual_seed(1))


def hf_out(model, image):
    B, _, H, W = image.shape
    with torch.no_grad():
        o = model(pixel_values=image, pixel_mask=torch.ones(B, H, W, dtype=torch.long))
    return [o.logits, o.pred_boxes]


def close(ours, ref):
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, **TOL)


def test_the_map_is_stride_16(small, hf, image):
    assert small.graph["input_proj"].shape == (2, 256, 8, 10)
    with torch.no_grad():
        maps = hf.model.backbone.model(image).feature_maps
    assert maps[-1].shape == (2, 2048, 8, 10)


def test_interpreter_and_generated_module_compute_hf_outputs(small, hf, image):
    ref = hf_out(hf, image)
    state = to_graphspec(hf, small.graph)
    close(run(small.graph, {"image": image}, state).values(), ref)
    net = small.to_torch().eval()
    net.load_state_dict(state, strict=True)
    with torch.no_grad():
        close(net(image), ref)


def test_undilated_hf_differs(small, hf, image):
    """The dilation matters: HF's undilated DETR with the same weights gives another map size and
    other outputs (so the comparisons above could fail)."""
    plain = hf_detr(encoder_layers=L, decoder_layers=L)
    plain.load_state_dict(hf.state_dict(), strict=True)
    a, b = hf_out(plain, image), hf_out(hf, image)
    assert (a[0] - b[0]).abs().max() > 1e-2


def test_onnx_computes_hf_outputs(small, hf, image):
    pytest.importorskip("onnxruntime")
    from graphspec.backends import onnx as gx

    state = {k: v.numpy() for k, v in to_graphspec(hf, small.graph).items()}
    model = gx.export(small.graph, state)
    dil = [list(a.ints) for n in model.graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "dilations"]
    assert dil.count([2, 2]) == 2  # the 3×3 convs of layer4.1 and layer4.2
    got = gx.run(model, {"image": image.numpy()})
    close([torch.from_numpy(x) for x in got], hf_out(hf, image))


@pytest.mark.parametrize("name, depths, published", [("detr_dc5_r50", (3, 4, 6, 3), 41),
                                                     ("detr_r101", (3, 4, 23, 3), 60),
                                                     ("detr_dc5_r101", (3, 4, 23, 3), 60)])
def test_params_equal_hugging_face_on_meta(name, depths, published):
    m = graphspec.load(name)
    hf = hf_detr(depths, meta=True)
    assert m.params() == sum(p.numel() for p in hf.parameters()) == m.spec.expect["params"]
    trainable = analysis.param_count(m.graph, trainable=True)
    assert trainable == m.spec.expect["trainable_params"] and round(trainable / 1e6) == published  # Table 1


def test_macs_equal_flop_counter_on_dilated_hf(small, hf, image):
    """FlopCounterMode counts HF's convs, linears and eager attention matmuls at 2 FLOPs a MAC:
    at the stride-16 map, the same count to the unit."""
    with FlopCounterMode(display=False) as fc:
        hf_out(hf, image)
    assert small.macs() == fc.get_total_flops() // 2


@pytest.mark.parametrize("name, published", [("detr_dc5_r50", 187), ("detr_r101", 152), ("detr_dc5_r101", 253)])
def test_macs_bracket_the_published_coco_average(name, published):
    """Table 1's GFLOPs are fvcore counts (a MAC each) averaged over COCO val images, which DETR
    resizes to a shorter side of 800 and a longer side of at most 1333 (mostly 1066 to 1199)."""
    lo, hi = (graphspec.load(name, [f"width={w}"]).macs() / 1e9 for w in (1066, 1199))
    assert lo < published < hi


@pytest.mark.parametrize("value", ["[true, 1]", "[false, true]", "2", "last"])
def test_bad_dilation_is_a_located_exit_2(tmp_path, value):
    from click.testing import CliRunner
    from graphspec.cli.main import main

    p = tmp_path / "bad.yaml"
    p.write_text(f"name: bad\ninput: image(224)\nbackbone: {{kind: resnet, dilation: {value}}}\n"
                 "head: classifier(10, pool=mean)\n", encoding="utf-8")
    r = CliRunner().invoke(main, ["flops", str(p)])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert "bad.yaml:3:" in r.output and "resnet dilation must be true, false or a list of 3 bools" in r.output


def test_a_bad_expression_in_dilation_is_reported_once(tmp_path):
    from click.testing import CliRunner
    from graphspec.cli.main import main

    p = tmp_path / "bad.yaml"
    p.write_text("name: bad\ninput: image(224)\nbackbone: {kind: resnet, dilation: foo + 1}\n"
                 "head: classifier(10, pool=mean)\n", encoding="utf-8")
    r = CliRunner().invoke(main, ["flops", str(p)])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert r.output.count("error:") == 1 and "'foo' is not a number" in r.output, r.output


def test_resnet_dilation_keeps_the_resolution_and_the_parameters():
    """torchvision's replace_stride_with_dilation=[False, True, True]: stride 8, 28×28 at 224²."""
    plain = graphspec.load("resnet50")
    dil = graphspec.load("resnet50", ["backbone.dilation=[false, true, true]"])
    last = [n for n in dil.graph if n.op == "conv2d"][-1]
    assert last.shape == (1, 2048, 28, 28) and dil.params() == plain.params() == 25_557_032
    assert {n.a["dilation"] for n in dil.graph if n.name.endswith("conv2") and "layer4" in n.name} == {2, 4}


def test_export_to_hugging_face_refuses_a_dilated_backbone(tmp_path):
    from click.testing import CliRunner
    from graphspec.cli.main import main

    out = tmp_path / "hf"
    r = CliRunner().invoke(main, ["export", "detr_dc5_r50", "--set", "decoder.aux=false", "--format", "hf",
                                  "-o", str(out)])
    assert r.exit_code == 2 and "dilation is timm-only" in r.output and "Traceback" not in r.output, r.output
    assert not out.exists()


def test_dc5_macs_symbolic_in_height_and_width():
    """At H = 16h, W = 16w (an h×w map at stride 16) the count collapses to a polynomial whose
    (hw)² term is the 6 encoder layers' QKᵀ and ·V, 2·6·256 = 3072, and whose constant (decoder
    and heads, which see 100 queries whatever the image) is DETR-R50's."""
    import sympy

    macs = graphspec.load("detr_dc5_r50", symbolic=True).macs()
    B, H, W = (next(s for s in macs.free_symbols if s.name == n) for n in "BHW")
    h, w = sympy.symbols("h w", positive=True, integer=True)
    poly = sympy.Poly(sympy.expand(macs.subs({H: 16 * h, W: 16 * w})), B, h, w)
    assert poly.coeff_monomial(B * h**2 * w**2) == 2 * 6 * 256
    r50 = sympy.Poly(sympy.expand(graphspec.load("detr_r50", symbolic=True).macs().subs({H: 32 * h, W: 32 * w})),
                     B, h, w)
    assert poly.coeff_monomial(B) == r50.coeff_monomial(B) == 989_184_000
    for hw in ((800, 1066), (640, 480), (123, 77)):
        assert macs.subs({B: 1, H: hw[0], W: hw[1]}) == \
            graphspec.load("detr_dc5_r50", [f"height={hw[0]}", f"width={hw[1]}"]).macs()
