"""The `parameter` op's `init` (graphspec/ops/tensor.py PARAMETER_INITS) in generated code: after
`to_empty` + `init_weights`, each free-standing learned tensor has the draw its reference model
gives it, checked against that model's own `_init_weights` (Hugging Face, built from a small
Config): BERT's masked-LM bias zeros (BertLMPredictionHead), ViT's cls token and position table
trunc_normal(std=0.02) (ViTEmbeddings), DETR's query table N(0, 0.02²) (DetrModel's
nn.Embedding under init_std), PVT's per-stage position tables and class token trunc_normal(0.02)
(PvtPatchEmbeddings). Together these cover every producer of `parameter` (vocab/heads.py mlm,
vocab/positions.py learned, lower.py cls_token, pyramid.py, lower_cnn.py queries)."""

from __future__ import annotations

import math

import pytest
import torch
from graphspec.codegen import emit, load

import graphspec
from graphspec.ops import ShapeError, get
from graphspec.ops.tensor import PARAMETER_INITS

transformers = pytest.importorskip("transformers")

STD = 0.02  # every random draw of PARAMETER_INITS, as HF's initializer_range / init_std default

PVT_SETS = ["img_size=64", "classes=10", "encoder.dim=[8, 16, 24, 32]", "encoder.depths=[2, 1, 2, 1]",
            "encoder.heads=[1, 2, 3, 4]", "encoder.mlp_ratio=[4, 4, 2, 2]",
            "encoder.attention=spatial_reduction(R=[4, 2, 2, 1])", "embed.dim=8"]  # as test_pvt


def bert():
    cfg = transformers.BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=32)
    return transformers.BertForMaskedLM(cfg), {"mlm_bias": "cls.predictions.bias"}


def vit():
    cfg = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=1,
                                 num_attention_heads=4, intermediate_size=128)
    return transformers.ViTModel(cfg), {"cls_token": "embeddings.cls_token",
                                        "pos_embed": "embeddings.position_embeddings"}


def detr():
    backbone = transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 8, 8, 8], depths=[1, 1, 1, 1],
                                         out_features=["stage4"])
    cfg = transformers.DetrConfig(use_timm_backbone=False, use_pretrained_backbone=False, backbone=None,
                                  backbone_config=backbone, d_model=32, encoder_layers=1, decoder_layers=1,
                                  encoder_ffn_dim=64, decoder_ffn_dim=64, encoder_attention_heads=4,
                                  decoder_attention_heads=4, num_queries=100, num_labels=5)
    return transformers.DetrForObjectDetection(cfg), {"query_embed.weight": "model.query_position_embeddings.weight"}


def pvt():
    cfg = transformers.PvtConfig(image_size=64, depths=[2, 1, 2, 1], hidden_sizes=[8, 16, 24, 32],
                                 num_attention_heads=[1, 2, 3, 4], sequence_reduction_ratios=[4, 2, 2, 1],
                                 mlp_ratios=[4, 4, 2, 2], patch_sizes=[4, 2, 2, 2], strides=[4, 2, 2, 2],
                                 num_labels=10)
    p = "pvt.encoder.patch_embeddings"
    return transformers.PvtForImageClassification(cfg), {
        "pos_embed": f"{p}.0.position_embeddings", "layers.0.downsample.pos_embed": f"{p}.1.position_embeddings",
        "layers.1.downsample.pos_embed": f"{p}.2.position_embeddings",
        "layers.2.downsample.pos_embed": f"{p}.3.position_embeddings", "layers.2.downsample.cls.token": f"{p}.3.cls_token"}


CASES = [  # spec, --set, the HF reference (model, {graphspec name: HF name}), the intended init
    ("bert_base", ["head=mlm(gelu)", "H=32", "L=1", "A=2", "vocab=60", "max_len=32", "seq_len=16"], bert,
     {"mlm_bias": "zeros"}),
    ("vit_b16", ["img_size=32", "patch=8", "D=64", "L=1", "h=4", "classes=10"], vit,
     {"cls_token": "trunc_normal", "pos_embed": "trunc_normal"}),
    ("detr_r50", ["height=64", "width=64", "d=32", "h=4", "d_ff=64", "L=1", "queries=100", "classes=5"], detr,
     {"query_embed.weight": "normal"}),
    ("pvt_small", PVT_SETS, pvt, {"pos_embed": "trunc_normal", "layers.0.downsample.pos_embed": "trunc_normal",
                                  "layers.1.downsample.pos_embed": "trunc_normal",
                                  "layers.2.downsample.pos_embed": "trunc_normal",
                                  "layers.2.downsample.cls.token": "trunc_normal"}),
]


def initialised(spec: str, sets: list[str]):
    """The generated module built on meta, `to_empty`, every tensor NaN, then `init_weights()`."""
    m = graphspec.load(spec, overrides=sets)
    gen = emit(m.graph, m.spec)
    cls = getattr(load(gen.source), gen.class_name)
    with torch.device("meta"):
        model = cls()
    model.to_empty(device="cpu")
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    torch.manual_seed(1)
    model.init_weights()
    return m, {k: v.detach() for k, v in model.named_parameters()}


def assert_draw(x: torch.Tensor, init: str, what: str) -> None:
    """`x` is a sample of `init`: zeros exactly; normal / trunc_normal(±2, std 0.02, a truncation
    at 100σ) with mean 0 and std 0.02 within 6 standard errors (σ/√n, σ/√(2n))."""
    x = x.flatten().double()
    if init == "zeros":
        assert torch.equal(x, torch.zeros_like(x)), f"{what}: not zeros (max |x| {float(x.abs().max())})"
        return
    n = x.numel()
    assert abs(float(x.mean())) <= 6 * STD / math.sqrt(n), (what, n, float(x.mean()))
    assert abs(float(x.std()) - STD) <= 6 * STD / math.sqrt(2 * n) + 1e-12, (what, n, float(x.std()))


@pytest.mark.parametrize("spec, sets, reference, intended", CASES, ids=[c[0] for c in CASES])
def test_init_weights_draws_each_parameter_as_hf(spec, sets, reference, intended):
    torch.manual_seed(0)
    hf, names = reference()
    hf_sd = hf.state_dict()
    m, ours = initialised(spec, sets)
    nodes = {n.name: n for n in m.graph if n.op == "parameter"}
    assert {k: n.a.get("init") for k, n in nodes.items()} == intended  # what the lowering asks for
    for name, init in intended.items():
        theirs = hf_sd[names[name]]
        assert ours[name].shape == theirs.shape, name
        assert_draw(theirs, init, f"HF {names[name]}")  # the reference does what we claim it does
        assert_draw(ours[name], init, f"generated {spec} {name}")
        if init != "zeros":  # and both samples agree, as test_codegen_meta compares two draws
            x, y = theirs.flatten().double(), ours[name].flatten().double()
            assert abs(float(x.mean() - y.mean())) <= 6 * STD * math.sqrt(2 / x.numel()), name


def test_generated_init_statement_is_the_attribute():
    """The statement beside the op, by init: BERT's bias is zeroed, DETR's queries drawn normal."""
    m = graphspec.load("bert_base", CASES[0][1])
    src = emit(m.graph, m.spec).source
    assert "nn.init.zeros_(self.mlm_bias)" in src and "trunc_normal_(self.mlm_bias" not in src
    m = graphspec.load("detr_r50", CASES[2][1])
    src = emit(m.graph, m.spec).source
    assert "nn.init.normal_(self.query_embed.weight, std=0.02)" in src
    assert set(PARAMETER_INITS) == {"trunc_normal", "normal", "zeros", "ones"}


def test_unknown_init_is_refused_by_the_shape_rule():
    with pytest.raises(ShapeError, match="parameter init 'xavier' is not one of trunc_normal, normal, zeros, ones"):
        get("parameter").shape(shape=(3,), init="xavier")
