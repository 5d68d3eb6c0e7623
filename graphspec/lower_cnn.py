"""Lowering of convolutional pieces: the ResNet backbone, DETR's input projection with its
2-D sine positions, learned object queries and the detection heads.

ResNet follows torchvision's `resnet50` (He et al. 2016, v1.5: the stride sits in the 3×3
conv), with torchvision's parameter names (`conv1`, `bn1`, `layer1.0.conv1`,
`layer1.0.downsample.0`, `fc`). DETR (Carion et al. 2020, facebookresearch/detr
models/detr.py, transformer.py) freezes BatchNorm and the stem and layer1 convolutions.
"""

from __future__ import annotations

from typing import Any

from graphspec.spec.backbone import BackboneSpec


def resnet(b: Any, bb: BackboneSpec, x: str, prefix: str) -> str:
    """(B, 3, H, W) -> (B, 4·width·2^(stages-1), H/32, W/32): stem, then bottleneck stages. A
    dilated stage (torchvision's replace_stride_with_dilation) keeps the resolution: its first
    block's 3×3 conv strides 1 at the dilation so far, the others dilate by 2× more, so a
    dilated last stage halves the output's stride to 16 (DETR-DC5)."""
    scope = [prefix] if prefix else []
    b.scope.extend(scope)
    if prefix:
        b.g.set_module(prefix, "ResNet", layers=bb.layers, width=bb.width)
    try:
        frozen = bb.frozen >= 1
        x = _conv_bn(b, x, bb.width, 7, 2, 3, "conv1", "bn1", bb, frozen, relu=True)
        x = b.emit("max_pool2d", (x,), "maxpool", kernel=3, stride=2, padding=1)
        dilation = 1
        for si, depth in enumerate(bb.layers):
            planes, frozen = bb.width * 2**si, bb.frozen >= si + 2
            first_stride, first_dilation = (2 if si > 0 else 1), dilation
            if bb.dilated(si):
                first_stride, dilation = 1, dilation * 2
            with b.module(f"layer{si + 1}", "Sequential"):
                for bi in range(depth):
                    stride, d = (first_stride, first_dilation) if bi == 0 else (1, dilation)
                    with b.module(str(bi), "Bottleneck", planes=planes, stride=stride,
                                  **({"dilation": d} if bb.dilation else {})):
                        x = _bottleneck(b, x, planes, stride, bb, frozen, d)
    finally:
        del b.scope[len(b.scope) - len(scope):]
    return x


def _conv_bn(b: Any, x: str, out: int, k: int, stride: int, pad: int, conv: str, bn: str, bb: BackboneSpec,
             frozen: bool, relu: bool, dilation: int = 1) -> str:
    cin = b.shape(x)[1]
    x = b.emit("conv2d", (x,), conv, out_channels=out, kernel=k, stride=stride, padding=pad, bias=False,
               in_channels=cin, **({"dilation": dilation} if dilation != 1 else {}),
               **({"frozen": True} if frozen else {}))
    x = b.emit("batch_norm", (x,), bn, frozen=bb.frozen_bn, channels=out)
    return b.emit("relu", (x,), f"{bn}_relu") if relu else x


def _bottleneck(b: Any, x: str, planes: int, stride: int, bb: BackboneSpec, frozen: bool, dilation: int = 1) -> str:
    """out = relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x))))))) + downsample(x))."""
    cin = b.shape(x)[1]
    h = _conv_bn(b, x, planes, 1, 1, 0, "conv1", "bn1", bb, frozen, relu=True)
    h = _conv_bn(b, h, planes, 3, stride, dilation, "conv2", "bn2", bb, frozen, relu=True, dilation=dilation)
    h = _conv_bn(b, h, planes * 4, 1, 1, 0, "conv3", "bn3", bb, frozen, relu=False)
    identity = x
    if stride != 1 or cin != planes * 4:
        with b.module("downsample", "Sequential"):
            identity = _conv_bn(b, x, planes * 4, 1, stride, 0, "0", "1", bb, frozen, relu=False)
    h = b.emit("add", (h, identity), "residual")
    return b.emit("relu", (h,), "relu")


def project(b: Any, spec: Any, x: str) -> tuple[str, tuple, str | None]:
    """DETR's input_proj (1×1 conv to d_model) and flatten: (B, C, h, w) -> (B, h·w, d), plus
    the 2-D sine position encoding of the h×w map (added in every layer, not here)."""
    e = spec.embed
    cin = b.shape(x)[1]
    x = b.emit("conv2d", (x,), "input_proj", out_channels=e.dim, kernel=1, stride=1, padding=0,
               in_channels=cin)
    H, W = b.shape(x)[2:]
    b.g.meta["grid"] = (H, W)
    x = b.emit("to_tokens", (x,), "tokens")
    pos = b.emit("sine_pos_2d", (), "pos_embed", H=H, W=W, dim=e.dim) if e.pos == "sine2d" else None
    return x, (H, W), pos


def queries(b: Any, s: Any, batch: Any) -> tuple[str, str]:
    """DETR's decoder input: zeros (B, Q, d) and the learned query positions (Q, d)."""
    tgt = b.emit("zeros", (), "tgt", shape=(batch, s.queries, s.dim))
    qpos = b.emit("parameter", (), "query_embed.weight", shape=(s.queries, s.dim), init="normal")
    return tgt, qpos


def detection_head(b: Any, spec: Any, outs: list[str]) -> list[str]:
    """Class logits (Linear d -> classes) and boxes (MLP d-d-...-4, sigmoid) for every decoder
    output in `outs` (all six with auxiliary losses), sharing one set of weights."""
    h = spec.head
    results: list[str] = []
    for x in reversed(outs):  # the last layer's prediction first, then the auxiliary ones
        d = b.shape(x)[-1]
        logits = b.emit("linear", (x,), "class_embed", out_features=h.classes, in_features=d,
                        weights="class_embed")
        with b.module("bbox_embed", "MLP", layers=h.box_layers):
            y = x
            for i in range(h.box_layers):
                last = i == h.box_layers - 1
                y = b.emit("linear", (y,), f"layers.{i}", out_features=4 if last else d, in_features=d,
                           weights=f"bbox_embed.layers.{i}")
                y = b.emit("sigmoid" if last else "relu", (y,), "boxes" if last else f"act{i}")
        results += [logits, y]
    return results


# -- SETR (Zheng et al. 2021, "Rethinking Semantic Segmentation from a Sequence-to-Sequence
#    Perspective with Transformers", arXiv:2012.15840, §3.3) ---------------------------------
def mla_taps(spec: Any, s: Any) -> tuple[int, ...]:
    """SETR-MLA taps M = 4 streams at layers L/4, L/2, 3L/4, L (6, 12, 18, 24 for ViT-L)."""
    if spec.head.kind != "segmentation" or spec.head.decoder != "mla":
        return ()
    L = sum(s.depths)
    return tuple(L * i // 4 for i in range(1, 5))


def _conv_bn_relu(b: Any, x: str, out: int, k: int, name: str) -> str:
    """conv k×k (padding k//2) + BatchNorm (sync BN in the paper) + ReLU, as module `name`."""
    with b.module(name, "ConvBNReLU", in_channels=b.shape(x)[1], out=out, kernel=k):  # mmseg ConvModule
        x = b.emit("conv2d", (x,), "conv", out_channels=out, kernel=k, stride=1, padding=k // 2, bias=False,
                   in_channels=b.shape(x)[1])
        x = b.emit("batch_norm", (x,), "bn", channels=out)
        return b.emit("relu", (x,), "act")


def segmentation_head(b: Any, spec: Any, outs: list[str], grid: tuple) -> str:
    """(B, 1 + h·w, D) token sequences -> (B, classes, H, W) logits at the image resolution.

    naive: 1×1 conv + BN + ReLU + 1×1 conv to classes, bilinear ×16.
    pup: 4 × (3×3 conv + BN + ReLU + bilinear ×2), then 1×1 conv to classes.
    mla: per stream 1×1 conv (D -> D/2); top-down sums; 3×3 conv; 3×3 conv (-> D/4); ×4;
         concatenated, 1×1 conv to classes, ×4.
    """
    h = spec.head
    H, W = grid
    skip = int(spec.embed.cls_token) + int(spec.embed.dist_token) + spec.embed.registers  # the patch tokens come after these
    factor = spec.embed.patch
    with b.module("decode_head", h.decoder.upper() + "Head", decoder=h.decoder, classes=h.classes):
        maps = [b.emit("to_map", (x,), "map", H=H, W=W, skip=skip) for x in outs]
        if h.decoder == "naive":
            y = _conv_bn_relu(b, maps[-1], h.channels, 1, "conv_0")
            y = b.emit("conv2d", (y,), "cls_seg", out_channels=h.classes, kernel=1, in_channels=h.channels)
            return b.emit("upsample", (y,), "up", factor=factor)
        if h.decoder == "pup":
            y = maps[-1]
            for i in range(4):
                y = _conv_bn_relu(b, y, h.channels, 3, f"conv_{i}")
                y = b.emit("upsample", (y,), f"up_{i}", factor=2)
            return b.emit("conv2d", (y,), "cls_seg", out_channels=h.classes, kernel=1, in_channels=h.channels)
        D = b.shape(maps[0])[1]
        streams, top = [], None
        for i, m in enumerate(maps):
            with b.module(f"streams.{i}", "MLAStream"):
                y = _conv_bn_relu(b, m, D // 2, 1, "reduce")
                y = y if top is None else b.emit("add", (y, top), "top_down")
                top = y
                y = _conv_bn_relu(b, y, D // 2, 3, "conv1")
                y = _conv_bn_relu(b, y, D // 4, 3, "conv2")
                streams.append(b.emit("upsample", (y,), "up", factor=4))
        y = b.emit("concat", tuple(streams), "streams_cat", dim=1)
        y = b.emit("conv2d", (y,), "cls_seg", out_channels=h.classes, kernel=1, in_channels=D)
        return b.emit("upsample", (y,), "up", factor=factor // 4)
