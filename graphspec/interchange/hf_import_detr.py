"""The importer of `model_type: detr` (DetrForObjectDetection, DetrModel), in the layout of
specs/detr_r50.yaml (Carion et al. 2020, arXiv:2005.12872).

The ResNet backbone is written inline, `backbone: resnet(layers=[3, 4, 6, 3], width=64,
frozen_bn=true, frozen=2)`, rather than `{spec: resnet50.yaml}`: `backbone.spec` is confined to
the spec's own folder (graphspec/spec/source.py), so an imported spec written elsewhere could
not reach the bundled file; the inline form is the same backbone. A config's backbone is one of

    "backbone": "resnet50" (or "resnet101"), use_timm_backbone true   transformers 4.x files
    "backbone_config": {"model_type": "timm_backbone", "backbone": "resnet50", ...}   5.x, timm
    "backbone_config": {"model_type": "resnet", "depths": [3, 4, 6, 3], ...}   transformers' ResNet

timm's resnet50/101 and transformers' ResNet (downsample_in_bottleneck false) are torchvision's
v1.5 bottleneck ResNet, the layers graphspec's `resnet` builds. DETR-DC5's `dilation: true`
(HF: timm only, output_stride 16; 8 dilates the last two stages) becomes the backbone's
`dilation=[...]`, timm dilating as torchvision does (a dilated stage's first block at the
dilation before it). What is not expressible is an error naming it: another backbone, learned positions, LayerDrop, HF's
`auxiliary_loss` decoder (it norms the states it passes on, see tests/test_detr_numerics.py's
NOTE), DetrForSegmentation's mask head (`--base` gives DetrModel).
"""

from __future__ import annotations

from graphspec.interchange.config import Reader, show
from graphspec.interchange.hf_import import Spec, _act, _classes, _head, num

TIMM_RESNETS = {"resnet50": [3, 4, 6, 3], "resnet101": [3, 4, 23, 3]}
# Keys of a backbone_config that do not change the backbone DETR uses.
_SUB_IGNORED = {"architectures", "output_hidden_states", "return_dict", "dtype", "torch_dtype", "chunk_size_feed_forward",
                "is_encoder_decoder", "id2label", "label2id", "problem_type", "_name_or_path", "model_type",
                "output_attentions", "transformers_version", "use_pretrained_backbone", "features_only",
                "freeze_batch_norm_2d", "stage_names", "num_labels", "initializer_range"}
BACKBONE_FIX = "graphspec imports DETR with a ResNet-50 or ResNet-101 backbone (timm or transformers' ResNet)"


def _detr(r: Reader, s: Spec) -> None:
    layers, stride = _backbone(r)
    s.var("height", 800), s.var("width", 1066), s.var("d", r.int("d_model"))
    s.var("L", r.int("encoder_layers")), s.var("L_dec", r.int("decoder_layers"))
    s.var("h", r.int("encoder_attention_heads")), s.var("h_dec", r.int("decoder_attention_heads"))
    s.var("d_ff", r.int("encoder_ffn_dim")), s.var("d_ff_dec", r.int("decoder_ffn_dim"))
    s.var("queries", r.int("num_queries")), s.var("classes", _classes(r)), s.var("batch", 1)
    for alias, key in (("hidden_size", "d_model"), ("num_attention_heads", "encoder_attention_heads"),
                       ("num_hidden_layers", "encoder_layers")):  # DetrConfig.attribute_map, in 4.x files
        if r.has(alias) and r.raw(alias) != r.raw(key):
            r.error(alias, f"option {alias} = {show(r.data[alias])} contradicts {key} = {show(r.raw(key))}",
                    f"{alias} is another name of {key}: keep one of them")
    if r.int("num_channels") != 3:
        r.error("num_channels", f"option num_channels = {show(r.data['num_channels'])} is not expressible in "
                "graphspec: its ResNet stem reads RGB images", "use 3")
    r.expect("position_embedding_type", ("sine",), "graphspec's DETR adds 2-D sine positions (learned ones are "
             "not built)")
    for k in ("encoder_layerdrop", "decoder_layerdrop"):
        r.expect(k, (0, 0.0), "LayerDrop (skipping layers in training) is not built", f"use {k} 0.0")
    r.expect("auxiliary_loss", (False,), "with auxiliary_loss, transformers' DetrDecoder norms the states it passes "
             "to the next layer (the official DETR norms only its outputs), a different model",
             "use false (facebook/detr-resnet-50 ships false); graphspec's `aux: true` is the official decoder")
    for k in ("scale_embedding", "max_position_embeddings", "init_xavier_std", "use_pretrained_backbone",
              "class_cost", "bbox_cost", "giou_cost", "mask_loss_coefficient", "dice_loss_coefficient",
              "bbox_loss_coefficient", "giou_loss_coefficient", "eos_coefficient"):
        r.raw(k)  # unused by DetrModel (4.x leftovers), init, weight loading, the matcher and the losses
    drop, act_drop = r.float("dropout", default=0), r.float("activation_dropout", default=0)
    if act_drop != drop:
        s.comment += [f"activation_dropout {num(act_drop)} (inside the FFN, HF's) differs from the official DETR's, which",
                      f"drops there at the dropout rate {num(drop)} (training only; eval is the same)."]
    s.comment += ["The image size is the bundled detr_r50's 800×1066 (a config has none): set height/width.",
                  "frozen=2 (conv1, layer1) is the official DETR's; transformers 5 freezes other backbone",
                  "parameters (all of its own ResNet's, none of timm's): trainable_params only."]
    s.input = "image(height=height, width=width)"
    n = len(layers)  # output_stride 16: the last stage dilated, 8: the last two (timm's, torchvision's)
    flags = [i >= n - {32: 0, 16: 1, 8: 2}[stride] for i in range(1, n)]
    dilation = f", dilation=[{', '.join(str(f).lower() for f in flags)}]" if any(flags) else ""
    s.backbone = f"resnet(layers={num(layers)}, width=64, frozen_bn=true, frozen=2{dilation})"
    s.embed = "project(dim=d, pos=sine2d)"
    act, attn_drop = _act(r, "activation_function"), r.float("attention_dropout", default=0)
    def mlp(d_ff: str) -> list:  # activation_dropout: between the activation and fc2
        return [("mlp", f"mlp({d_ff}, {act}, drop={num(act_drop)})")] if act_drop else [("d_ff", d_ff), ("act", act)]

    common = [("norm", "post"), ("dropout", drop), ("attn_dropout", attn_drop), ("pos", "every_layer")]
    s.stacks.append(("encoder×L", [("dim", "d"), ("heads", "h")] + mlp("d_ff") + common))
    s.stacks.append(("decoder×L_dec", [("dim", "d"), ("heads", "h_dec")] + mlp("d_ff_dec") + common +
                     [("attention", "global"), ("queries", "queries"), ("final_norm", True), ("aux", False)]))
    s.head = _head(r, "detr", {"DetrForObjectDetection": "detection(classes=classes + 1, box_layers=3)",
                               "DetrModel": "none"}, "DetrForObjectDetection",
                   {"DetrForSegmentation": "DetrForSegmentation's mask head (multi-head attention map and FPN-style "
                                           "mask convolutions) has no graphspec head"})


def _backbone(r: Reader) -> tuple[list[int], int]:
    """The ResNet's blocks per stage and its output stride (32, or 16/8 dilated), from whichever
    form the config gives (see the docstring)."""
    bc = r.raw("backbone_config")
    timm, name = r.bool("use_timm_backbone", True), r.raw("backbone")
    dilation = r.bool("dilation", False) if r.raw("dilation") is not None else False
    kwargs = r.raw("backbone_kwargs")
    stride = 16 if dilation else 32  # DetrConfig: output_stride 16 when dilation (timm), unless the kwargs say
    if kwargs not in (None, {}):
        ok = isinstance(kwargs, dict) and set(kwargs) <= {"out_indices", "in_chans", "output_stride"} and \
            kwargs.get("in_chans", 3) == 3 and kwargs.get("output_stride") in (None, 8, 16, 32) and \
            _last_stage(kwargs.get("out_indices", [4]))
        if not ok:
            r.error("backbone_kwargs", f"option backbone_kwargs = {show(kwargs)} is not expressible in graphspec: "
                    "DETR reads the last stage of an RGB ResNet of output stride 32, 16 or 8", "remove backbone_kwargs")
        elif kwargs.get("output_stride") is not None:
            stride = kwargs["output_stride"]
    if isinstance(bc, dict) and bc.get("model_type") == "timm_backbone" and \
            bc.get("output_stride") in (8, 16, 32):
        stride = bc["output_stride"]
    if dilation and (not timm or (isinstance(bc, dict) and bc.get("model_type") == "resnet")):
        r.error("dilation", "option dilation = true with transformers' own ResNet backbone: transformers builds it "
                "undilated (DetrConfig: dilation needs use_timm_backbone), so the config and its model disagree",
                "for DETR-DC5 use the timm backbone (use_timm_backbone true); for what transformers builds, false")
    if bc is None:
        if not timm and name is not None:
            r.error("backbone", f"option backbone = {show(name)} with use_timm_backbone false names a checkpoint "
                    "on the hub, which graphspec does not read", "give its backbone_config (a ResNetConfig) instead")
        if not timm:  # transformers' default ResNet (ResNetConfig(out_features=["stage4"]))
            return _hf_resnet(r, {}), 32
        return _timm(r, "backbone", name if name is not None else "resnet50", {}), stride
    if name is not None:
        r.error("backbone", f"option backbone = {show(name)} beside a backbone_config: the config is ambiguous",
                "keep one of them")
    if not isinstance(bc, dict) or bc.get("model_type") not in ("timm_backbone", "resnet"):
        what = bc.get("model_type") if isinstance(bc, dict) else bc
        r.error("backbone_config", f"option backbone_config (model_type {show(what)}) is not expressible in "
                "graphspec", BACKBONE_FIX)
        return [3, 4, 6, 3], 32
    if bc["model_type"] == "timm_backbone":
        return _timm(r, "backbone_config", bc.get("backbone"), bc), stride
    return _hf_resnet(r, bc), 32


def _last_stage(idx) -> bool:
    return isinstance(idx, list) and bool(idx) and idx[-1] in (4, -1)


def _unknown(r: Reader, bc: dict, known: set[str]) -> None:
    for k in sorted(set(bc) - known - _SUB_IGNORED):
        r.error("backbone_config", f"option backbone_config.{k} = {show(bc[k])} is not known to graphspec's detr "
                "importer, so the backbone it describes cannot be checked", BACKBONE_FIX)


def _timm(r: Reader, key: str, name, bc: dict) -> list[int]:
    _unknown(r, bc, {"backbone", "num_channels", "output_stride", "out_indices", "out_features"})
    if name not in TIMM_RESNETS:
        r.error(key, f"option {key} = {show(name)} is not expressible in graphspec: graphspec builds the ResNet "
                "backbones resnet50 and resnet101", BACKBONE_FIX)
        return [3, 4, 6, 3]
    if bc.get("num_channels", 3) != 3 or bc.get("output_stride") not in (None, 8, 16, 32) or \
            not _last_stage(bc.get("out_indices") or [4]):
        shown = show({k: bc.get(k) for k in ("num_channels", "output_stride", "out_indices")})
        r.error(key, f"option backbone_config = {shown} is not expressible in graphspec: DETR reads the last stage "
                "of an RGB ResNet of output stride 32, 16 (DC5) or 8",
                "use num_channels 3, output_stride null, 16 or 8 and out_indices ending with 4")
    return TIMM_RESNETS[name]


def _hf_resnet(r: Reader, bc: dict) -> list[int]:
    """transformers' ResNetConfig: the torchvision v1.5 bottleneck ResNet, width 64."""
    want = dict(num_channels=3, embedding_size=64, layer_type="bottleneck", hidden_act="relu",
                downsample_in_first_stage=False, downsample_in_bottleneck=False)
    _unknown(r, bc, set(want) | {"depths", "hidden_sizes", "out_features", "out_indices"})
    depths = bc.get("depths", [3, 4, 6, 3])
    if not (isinstance(depths, list) and depths and all(isinstance(n, int) and not isinstance(n, bool) and 0 < n < 256
                                                        for n in depths)):
        r.error("backbone_config", f"backbone_config.depths must be a list of positive integers, not {show(depths)}")
        return [3, 4, 6, 3]
    want["hidden_sizes"] = [256 * 2 ** i for i in range(len(depths))]  # 4 × width × 2^stage
    for k, v in want.items():
        if bc.get(k, v) != v:
            r.error("backbone_config", f"option backbone_config.{k} = {show(bc[k])} is not expressible in graphspec: "
                    f"its ResNet has {k} {show(v)} (torchvision's bottleneck ResNet, stride in the 3×3 conv)",
                    BACKBONE_FIX)
    last = f"stage{len(depths)}"
    if bc.get("out_features") not in (None, [last]) and bc.get("out_features", [last])[-1:] != [last]:
        r.error("backbone_config", f"option backbone_config.out_features = {show(bc['out_features'])}: DETR reads "
                f"the last stage ({last})")
    return depths
