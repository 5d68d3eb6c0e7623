"""Ops of the pyramid vision transformers beyond conv2d and the token plumbing: the depthwise
convolution on the token map of CPVT's position encoding generator (Chu et al. 2021,
"Conditional Positional Encodings for Vision Transformers", §3.2: PEG, a 3×3 depthwise conv
with zero padding, added to its input) as Twins-PCPVT/SVT use it (Chu et al. 2021, "Twins",
§2.1).

PVT's spatial-reduction attention (Wang et al. 2021, §3.3) and its patch embeddings between
stages need no op of their own: `to_map` -> `conv2d` (kernel = stride = R) -> `to_tokens` ->
`layer_norm`.
"""

from __future__ import annotations

from graphspec.ops.registry import HAS_PARAMS, MAC, F, ShapeError, Torch, floordiv, numel, op


@op("depthwise_conv2d", HAS_PARAMS, MAC)
class DepthwiseConv2d:
    """Depthwise 2-D convolution, one k×k filter per channel (groups = C), NCHW:
    (B, C, H, W) -> (B, C, H', W'). MACs: numel(out)·k², as FlopCounterMode counts a grouped
    conv (C/groups = 1 input channel per output). NB: bias adds not counted."""

    defaults = {"stride": 1, "padding": 0, "bias": True}

    def shape(x, *, channels, kernel, stride=1, padding=0, bias=True):
        if len(x) != 4:
            raise ShapeError(f"depthwise_conv2d expects (B, C, H, W), got rank {len(x)}")
        B, C, H, W = x
        if C != channels:
            raise ShapeError(f"depthwise_conv2d over {channels} channels got {C}")
        return (B, C, floordiv(H + 2 * padding - kernel, stride) + 1, floordiv(W + 2 * padding - kernel, stride) + 1)

    def params(x, *, kernel, bias=True, **_):
        p = {"weight": (x[1], 1, kernel, kernel)}
        if bias:
            p["bias"] = (x[1],)
        return p

    def macs(out, x, *, kernel, **_):
        return numel(out) * kernel * kernel  # NB: bias adds not counted

    torch = Torch(
        init=lambda a: f"nn.Conv2d({a['channels']}, {a['channels']}, kernel_size={a['kernel']}"
        + ("" if a["stride"] == 1 else f", stride={a['stride']}")
        + ("" if a["padding"] == 0 else f", padding={a['padding']}")
        + f", groups={a['channels']}"
        + ("" if a["bias"] == True else f", bias={a['bias']}") + ")",  # noqa: E712
        call="self.{mod}({0})",
    )

    def eval(w, x, *, kernel, stride=1, padding=0, bias=True, **_):
        return F.conv2d(x, w["weight"], w.get("bias"), stride=stride, padding=padding, groups=x.shape[1])

    def onnx(e, x, *, kernel, stride=1, padding=0, bias=True, **_):
        C = e.shape(x)[1]
        return e("Conv", x, e.param("weight"), e.param("bias") if bias else None, kernel_shape=[kernel, kernel],
                 strides=[stride, stride], pads=[padding] * 4, group=C)

    def relax(e, x, *, kernel, stride=1, padding=0, bias=True, **_):
        C = e.shape(x)[1]
        y = e("nn.conv2d", x, e.param("weight"), strides=stride, padding=padding, groups=C)
        return e("add", y, e("reshape", e.param("bias"), (1, C, 1, 1))) if bias else y
