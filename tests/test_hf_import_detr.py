"""`graphspec import` of DETR configs (graphspec/interchange/hf_import_detr.py).

HF's default DETR backbone is timm's resnet50, and timm is not installed here: the parameter
counts are checked against DetrForObjectDetection / DetrModel built on the meta device with
transformers' own ResNet (use_timm_backbone false, a ResNetConfig), the torchvision v1.5
bottleneck ResNet that timm's resnet50/101 also are (tests/test_detr.py checks that HF DETR's
count equals detr_r50's 41,524,768). Where timm is installed, the timm form is built too.
A small imported DETR computes HF's logits and boxes with HF's weights mapped in; a small
exported one loads in DetrForObjectDetection and computes the generated module's output.
"""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from click.testing import CliRunner

transformers = pytest.importorskip("transformers")
from graphspec.cli.main import main  # noqa: E402

import graphspec  # noqa: E402
from graphspec.interchange import from_hf_config  # noqa: E402
from graphspec.interchange.defaults import DEFAULTS  # noqa: E402
from graphspec.weights import to_graphspec  # noqa: E402

# facebook/detr-resnet-50's config.json (transformers 4.x keys; 91 COCO ids 0..90, "N/A" for the
# unused ones), checked against walrusblob/object-detection detr-resnet-50/config.json @f9d576c
# (saved from the hub's commit 480370a8, its "_commit_hash") and BensonYan/detr_detection
# detr-resnet-50/config.json @a0f49bb (an older copy, num_queries edited to 10). Both have
# classifier_dropout, label2id, COCO's class names and transformers_version 4.7.0.dev0 and no
# torch_dtype (this dict had LABEL_i names, 4.26.0.dev0 and torch_dtype float32). num_channels,
# use_pretrained_backbone and use_timm_backbone are in the first copy only; _commit_hash,
# _name_or_path and backbone_config, which transformers writes when it re-saves a config it loaded,
# are left out.
COCO = ["N/A", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
        "traffic light", "fire hydrant", "street sign", "stop sign", "parking meter", "bench", "bird", "cat",
        "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "hat", "backpack", "umbrella",
        "shoe", "eye glasses", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
        "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
        "plate", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich",
        "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
        "potted plant", "bed", "mirror", "dining table", "window", "desk", "toilet", "door", "tv", "laptop",
        "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator",
        "blender", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush"]
DETR_RESNET_50 = {
    "activation_dropout": 0.0, "activation_function": "relu", "architectures": ["DetrForObjectDetection"],
    "attention_dropout": 0.0, "auxiliary_loss": False, "backbone": "resnet50", "bbox_cost": 5,
    "bbox_loss_coefficient": 5, "class_cost": 1, "classifier_dropout": 0.0, "d_model": 256,
    "decoder_attention_heads": 8, "decoder_ffn_dim": 2048, "decoder_layerdrop": 0.0, "decoder_layers": 6,
    "dice_loss_coefficient": 1, "dilation": False, "dropout": 0.1, "encoder_attention_heads": 8,
    "encoder_ffn_dim": 2048, "encoder_layerdrop": 0.0, "encoder_layers": 6, "eos_coefficient": 0.1, "giou_cost": 2,
    "giou_loss_coefficient": 2, "id2label": {str(i): name for i, name in enumerate(COCO)}, "init_std": 0.02,
    "init_xavier_std": 1.0, "is_encoder_decoder": True, "label2id": {name: i for i, name in enumerate(COCO)},
    "mask_loss_coefficient": 1, "max_position_embeddings": 1024, "model_type": "detr", "num_channels": 3,
    "num_hidden_layers": 6, "num_queries": 100, "position_embedding_type": "sine", "scale_embedding": False,
    "transformers_version": "4.7.0.dev0", "use_pretrained_backbone": True, "use_timm_backbone": True}


def n_params(m: torch.nn.Module) -> int:
    return sum({id(p): p.numel() for p in m.parameters()}.values())


def hf_detr(cls=transformers.DetrForObjectDetection, depths=(3, 4, 6, 3), meta=True, **kw):
    """HF DETR with transformers' ResNet backbone (`depths` blocks per stage)."""
    cfg = transformers.DetrConfig(use_timm_backbone=False, use_pretrained_backbone=False, backbone=None,
                                  backbone_config=transformers.ResNetConfig(depths=list(depths),
                                                                            out_features=["stage4"]), **kw)
    if meta:
        with torch.device("meta"):
            return cfg, cls(cfg)
    return cfg, cls(cfg)


def imported(tmp_path, cfg: dict | transformers.DetrConfig, *overrides, **kw) -> graphspec.Model:
    path = tmp_path / "config.json"
    if isinstance(cfg, dict):
        path.write_text(json.dumps(cfg, indent=2))
    else:
        cfg.to_json_file(str(path))
    (tmp_path / "detr.yaml").write_text(from_hf_config(json.loads(path.read_text()), text=path.read_text(), **kw))
    return graphspec.load(tmp_path / "detr.yaml", list(overrides))


CASES = {  # settings beside the defaults: COCO's 91 labels, a narrower/shallower DETR, DetrModel, R101
    "coco": dict(num_labels=91),
    "small": dict(d_model=128, encoder_layers=3, decoder_layers=2, encoder_attention_heads=4,
                  decoder_attention_heads=8, encoder_ffn_dim=512, decoder_ffn_dim=1024, num_queries=50,
                  num_labels=20, activation_function="gelu"),
    "model": dict(architectures=["DetrModel"]),
    "r101": dict(num_labels=91, depths=(3, 4, 23, 3)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_imported_params_equal_hf_meta_model(tmp_path, case):
    kw = dict(CASES[case])
    depths = kw.pop("depths", (3, 4, 6, 3))
    cls = transformers.DetrModel if kw.get("architectures") == ["DetrModel"] else transformers.DetrForObjectDetection
    cfg, hf = hf_detr(cls, depths, **kw)
    assert imported(tmp_path, cfg).params() == n_params(hf)


def test_published_config_is_the_bundled_detr_r50(tmp_path):
    """facebook/detr-resnet-50's config.json: the bundled detr_r50's IR node for node, except the
    auxiliary outputs (HF's auxiliary_loss is false there; `decoder.aux=false`) and the FFN's
    inner dropout (HF's activation_dropout 0.0; the official DETR drops there at 0.1): 41,524,768
    parameters (tests/test_detr.py: the official code's breakdown)."""
    got = imported(tmp_path, DETR_RESNET_50)
    bundled = graphspec.load("detr_r50", ["decoder.aux=false", "encoder.mlp=mlp(d_ff, relu)",
                                          "decoder.mlp=mlp(d_ff, relu)"])
    assert [st.mlp["drop"] for st in graphspec.load("detr_r50").spec.stacks] == [0.1, 0.1]
    assert [st.mlp["drop"] for st in got.spec.stacks] == [0.0, 0.0]
    assert got.params() == bundled.params() == graphspec.load("detr_r50").spec.expect["params"] == 41_524_768
    assert got.macs() == bundled.macs()
    strip = [ln.split("  #")[0] for ln in str(got.graph).splitlines()[1:]]
    assert strip == [ln.split("  #")[0] for ln in str(bundled.graph).splitlines()[1:]]


# facebook/detr-resnet-50-dc5's config.json differs from detr-resnet-50's in `dilation` only
DC5_FORMS = {"4.x file": {**DETR_RESNET_50, "dilation": True},
             "5.x DetrConfig": transformers.DetrConfig(dilation=True, num_labels=91),
             "backbone_kwargs": {**DETR_RESNET_50, "backbone_kwargs": {"output_stride": 16}}}


@pytest.mark.parametrize("form", sorted(DC5_FORMS))
def test_dc5_configs_import_as_the_bundled_detr_dc5(tmp_path, form):
    """DETR-DC5 as HF builds it (timm's resnet50 at output_stride 16): the bundled detr_dc5_r50's
    IR node for node (aux and the FFN's inner dropout as above), its 41,524,768 parameters and
    173.17 GMACs at 800×1066 without the auxiliary heads (the stride-16 map: 50×67 = 3350
    positions; 173.25 G with them)."""
    got = imported(tmp_path, DC5_FORMS[form])
    assert "dilation=[false, false, true]" in (tmp_path / "detr.yaml").read_text()
    bundled = graphspec.load("detr_dc5_r50", ["decoder.aux=false", "encoder.mlp=mlp(d_ff, relu)",
                                              "decoder.mlp=mlp(d_ff, relu)"])
    if form == "5.x DetrConfig":  # 91 labels from num_labels: LABEL_i, the same head
        assert got.spec.head.classes == 92
    assert got.params() == bundled.params() == 41_524_768
    assert got.macs() == bundled.macs() == 173_173_632_000
    assert graphspec.load("detr_dc5_r50").macs() == 173_251_456_000
    strip = [ln.split("  #")[0] for ln in str(got.graph).splitlines()[1:]]
    assert strip == [ln.split("  #")[0] for ln in str(bundled.graph).splitlines()[1:]]


def test_output_stride_8_dilates_the_last_two_stages(tmp_path):
    got = imported(tmp_path, {**DETR_RESNET_50, "backbone_kwargs": {"output_stride": 8}})
    assert "dilation=[false, true, true]" in (tmp_path / "detr.yaml").read_text()
    convs = {n.name: n.a for n in got.graph if n.op == "conv2d"}
    assert convs["backbone.layer3.0.conv2"]["dilation"] == 1 and convs["backbone.layer3.1.conv2"]["dilation"] == 2
    assert convs["backbone.layer4.0.conv2"]["dilation"] == 2 and convs["backbone.layer4.2.conv2"]["dilation"] == 4
    assert got.graph["input_proj"].shape[2:] == (100, 134)  # 800×1066 at stride 8


def test_transformers_5_timm_form(tmp_path):
    """DetrConfig() as transformers 5 writes it (backbone_config: timm_backbone resnet50, 2 labels)."""
    m = imported(tmp_path, transformers.DetrConfig())
    if importlib.util.find_spec("timm") is not None:
        with torch.device("meta"):
            want = n_params(transformers.DetrForObjectDetection(transformers.DetrConfig()))
    else:  # timm's resnet50 = transformers' ResNet-50 (torchvision v1.5 bottleneck layers)
        want = n_params(hf_detr(num_labels=2)[1])
    assert m.params() == want == 41_524_768 - 23_644 + 256 * 3 + 3  # class_embed: 92 -> 3 logits


def test_defaults_are_detr_configs():
    cfg = transformers.DetrConfig()
    for key, value in DEFAULTS["detr"].items():
        if value is None or key in ("use_timm_backbone", "backbone"):  # popped by DetrConfig.__post_init__
            continue
        assert getattr(cfg, key) == value, key


def test_imported_small_detr_computes_what_hf_computes(tmp_path):
    """ResNet with one block per stage, d_model 32, 1 + 2 layers, 5 queries, 3 labels, a 64×96
    image: HF's perturbed weights and FrozenBatchNorm statistics mapped in, logits and boxes."""
    cfg, hf = hf_detr(depths=(1, 1, 1, 1), meta=False, d_model=32, encoder_layers=1, decoder_layers=2,
                      encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64,
                      num_queries=5, num_labels=3, dropout=0.0)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in list(hf.named_parameters()) + list(hf.named_buffers()):
            if t.is_floating_point():
                t.add_(0.02 * torch.randn(t.shape, generator=g)) if "running_var" not in name else \
                    t.uniform_(0.5, 1.5, generator=g)
    hf.eval()
    m = imported(tmp_path, cfg, "height=64", "width=96")
    assert m.params() == n_params(hf)
    net = m.to_torch().eval()
    net.load_state_dict(to_graphspec(hf, m.graph), strict=True)
    x = torch.randn(2, 3, 64, 96, generator=g)
    with torch.no_grad():
        logits, boxes = net(x)
        want = hf(pixel_values=x, pixel_mask=torch.ones(2, 64, 96, dtype=torch.long))
    torch.testing.assert_close(logits, want.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(boxes, want.pred_boxes, atol=1e-5, rtol=1e-5)


def run_import(tmp_path, config, *args):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config, indent=2))
    return CliRunner().invoke(main, ["import", str(path), *args])


BAD = [  # (changes to facebook/detr-resnet-50's config, the words the message must hold)
    ({"dilation": True, "use_timm_backbone": False, "backbone": None, "backbone_config": {"model_type": "resnet"}},
     "option dilation = true with transformers' own ResNet"),
    ({"backbone": "resnet18"}, "option backbone = \"resnet18\" is not expressible"),
    ({"use_timm_backbone": False, "backbone": None,
      "backbone_config": {"model_type": "resnet", "layer_type": "basic", "hidden_sizes": [64, 128, 256, 512]}},
     "option backbone_config.layer_type = \"basic\""),
    ({"backbone": None, "backbone_config": {"model_type": "swin"}}, "option backbone_config (model_type \"swin\")"),
    ({"backbone": None, "backbone_config": {"model_type": "resnet", "downsample_in_bottleneck": True}},
     "option backbone_config.downsample_in_bottleneck = true"),
    ({"backbone_kwargs": {"output_stride": 4}}, "option backbone_kwargs"),
    ({"position_embedding_type": "learned"}, "option position_embedding_type = \"learned\""),
    ({"auxiliary_loss": True}, "option auxiliary_loss = true"),
    ({"encoder_layerdrop": 0.1}, "option encoder_layerdrop = 0.1"),
    ({"num_channels": 1}, "option num_channels = 1"),
    ({"activation_function": "gelu_fast"}, "option activation_function = \"gelu_fast\""),
    ({"architectures": ["DetrForSegmentation"]}, "mask head"),
    ({"my_option": 1}, "option my_option = 1 is not known"),
    ({"use_timm_backbone": False}, "names a checkpoint on the hub"),
    ({"use_timm_backbone": "yes"}, "use_timm_backbone must be true or false"),
    ({"num_hidden_layers": 3}, "option num_hidden_layers = 3 contradicts encoder_layers = 6"),
]


@pytest.mark.parametrize("change,words", BAD, ids=[str(i) for i in range(len(BAD))])
def test_unexpressible_detr_options_exit_2_naming_them(tmp_path, change, words):
    r = run_import(tmp_path, {**DETR_RESNET_50, **change}, "-o", str(tmp_path / "spec.yaml"))
    assert r.exit_code == 2 and words in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "spec.yaml").exists()


def test_segmentation_with_base_is_detr_model(tmp_path):
    m = imported(tmp_path, {**DETR_RESNET_50, "architectures": ["DetrForSegmentation"]}, base=True)
    assert "DetrForSegmentation's head was left out" in (tmp_path / "detr.yaml").read_text()
    assert m.params() == n_params(hf_detr(transformers.DetrModel)[1])


def test_export_of_detr_with_auxiliary_outputs_is_refused(tmp_path):
    """detr_r50's `aux: true` is the official decoder, not HF's auxiliary_loss one."""
    r = CliRunner().invoke(main, ["export", "detr_r50", "--format", "hf", "-o", str(tmp_path / "out")])
    assert r.exit_code == 2 and "--set decoder.aux=false" in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "out").exists()


def test_exported_detr_loads_in_hugging_face(tmp_path):
    """A small detr_r50 (aux off, 1 + 1 layers, ResNet 1-1-1-1, 64×96) with graphspec's random
    weights: config.json + model.safetensors load in DetrForObjectDetection with no missing or
    unexpected keys (transformers' ResNet: no timm needed) and give the generated module's output."""
    from safetensors.torch import save_file

    from graphspec.interpret import init_params

    sets = ["decoder.aux=false", "height=64", "width=96", "L=1", "backbone.layers=[1, 1, 1, 1]"]
    m = graphspec.load("detr_r50", sets)
    state = init_params(m.graph, seed=0)  # FrozenBatchNorm2d statistics too
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "w.safetensors"))
    out = tmp_path / "hf"
    r = CliRunner().invoke(main, ["export", "detr_r50", *[a for x in sets for a in ("--set", x)], "--format", "hf",
                                  "-o", str(out), "--weights", str(tmp_path / "w.safetensors")])
    assert r.exit_code == 0, r.output
    hf, info = transformers.DetrForObjectDetection.from_pretrained(str(out), output_loading_info=True)
    assert not any(info.values()), info
    assert n_params(hf) == m.params()
    net = m.to_torch().eval()
    net.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits, boxes = net(x)
        want = hf.eval()(pixel_values=x, pixel_mask=torch.ones(2, 64, 96, dtype=torch.long))
    torch.testing.assert_close(logits, want.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(boxes, want.pred_boxes, atol=1e-5, rtol=1e-5)
    # and back: import-weights gives graphspec's tensors, bit for bit
    r = CliRunner().invoke(main, ["import-weights", "detr_r50", str(out / "model.safetensors"), "-o",
                                  str(tmp_path / "back.safetensors"), *[a for x in sets for a in ("--set", x)]])
    assert r.exit_code == 0, r.output
    from safetensors.torch import load_file

    back = load_file(str(tmp_path / "back.safetensors"))
    assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)


def test_activation_dropout_is_the_ffn_dropout(tmp_path):
    """HF's activation_dropout is the dropout between the FFN's activation and fc2 (DetrEncoderLayer):
    imported as `mlp(d_ff, relu, drop=p)`, exported back from it (the bundled detr_r50: 0.1, as the
    official DETR)."""
    got = imported(tmp_path, {**DETR_RESNET_50, "activation_dropout": 0.2})
    assert [st.mlp["drop"] for st in got.spec.stacks] == [0.2, 0.2]
    assert str(got.graph).count("= dropout(") - str(graphspec.load("detr_r50", ["decoder.aux=false"]).graph).count(
        "= dropout(") == 0  # the 12 FFN dropouts (6 + 6 layers), as the bundled spec has them
    assert str(got.graph).count("p=0.2)") == 12
    from graphspec.interchange.hf_export import to_hf_config

    assert to_hf_config(graphspec.load("detr_r50", ["decoder.aux=false"]))["activation_dropout"] == 0.1
