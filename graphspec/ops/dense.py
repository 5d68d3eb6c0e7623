"""Ops that multiply: linear, conv2d, matmul, embedding lookup.

MAC formulas follow the papers' convention (torchvision `_ops`, Swin `flops()`): one
multiply-accumulate per weight per output position. NB: bias adds are not counted.
"""

from __future__ import annotations

from graphspec.ops.registry import (
    HAS_PARAMS,
    MAC,
    F,
    ShapeError,
    Torch,
    broadcast,
    exact_div,
    floordiv,
    numel,
    op,
)


@op("linear", HAS_PARAMS, MAC)
class Linear:
    """y = x Wᵀ + b: (..., in) -> (..., out). `weights` names a shared weight (tied heads)."""

    defaults = {"bias": True}

    def shape(x, *, out_features, bias=True, weights=None, **_):
        return (*x[:-1], out_features)

    def params(x, *, out_features, bias=True, weights=None, **_):
        p = {"weight": (out_features, x[-1])}
        if bias:
            p["bias"] = (out_features,)
        return p

    def macs(out, x, **_):
        return numel(out) * x[-1]  # NB: bias adds not counted

    torch = Torch(init=lambda a: f"nn.Linear({a['in_features']}, {a['out_features']}"
                  + ("" if a["bias"] == True else f", bias={a['bias']}") + ")",  # noqa: E712
                  call="self.{mod}({0})", shared="F.linear({0}, {weights}.weight)")

    def eval(w, x, **_):
        return F.linear(x, w["weight"], w.get("bias"))

    def onnx(e, x, *, out_features, bias=True, weights=None, **_):
        w, b = e.param("weight"), (e.param("bias") if bias else None)
        if len(e.shape(x)) == 2:  # (B, in): one Gemm
            return e("Gemm", x, w, b, transB=1)
        y = e("MatMul", x, e.cached(("T", w), lambda: e("Transpose", w, perm=[1, 0])))
        return e("Add", y, b) if bias else y

    def relax(e, x, *, out_features, bias=True, weights=None, **_):
        return e("linear", x, e.param("weight"), e.param("bias") if bias else None)


@op("conv2d", HAS_PARAMS, MAC)
class Conv2d:
    """2-D convolution, NCHW: (B, Cin, H, W) -> (B, Cout, H', W'). A patch embedding (stride =
    kernel) must tile the image unless `crop` (a "valid" conv: pixels past the last patch unseen).
    `dilation` spaces the kernel's taps (Yu & Koltun 2016; torchvision's replace_stride_with_dilation,
    DETR-DC5): it covers dilation·(kernel - 1) + 1 pixels with kernel² weights and MACs."""

    defaults = {"stride": 1, "padding": 0, "bias": True, "dilation": 1}

    def shape(x, *, out_channels, kernel, stride=1, padding=0, bias=True, weights=None, crop=False, dilation=1, **_):
        if len(x) != 4:
            raise ShapeError(f"conv2d expects (B, C, H, W), got rank {len(x)}")
        B, _, H, W = x
        if stride == kernel and padding == 0 and dilation == 1 and not crop:  # patch embedding: must tile
            h = exact_div(H, kernel, f"image height {H} / patch size")
            w = exact_div(W, kernel, f"image width {W} / patch size")
        else:
            span = dilation * (kernel - 1) + 1
            h = floordiv(H + 2 * padding - span, stride) + 1
            w = floordiv(W + 2 * padding - span, stride) + 1
        return (B, out_channels, h, w)

    def params(x, *, out_channels, kernel, bias=True, **_):
        p = {"weight": (out_channels, x[1], kernel, kernel)}
        if bias:
            p["bias"] = (out_channels,)
        return p

    def macs(out, x, *, kernel, **_):
        return numel(out) * x[1] * kernel * kernel  # NB: bias adds not counted; dilation changes no count

    torch = Torch(
        init=lambda a: f"nn.Conv2d({a['in_channels']}, {a['out_channels']}, kernel_size={a['kernel']}"
        + ("" if a["stride"] == 1 else f", stride={a['stride']}")
        + ("" if a["padding"] == 0 else f", padding={a['padding']}")
        + ("" if a["dilation"] == 1 else f", dilation={a['dilation']}")
        + ("" if a["bias"] == True else f", bias={a['bias']}") + ")",  # noqa: E712
        call="self.{mod}({0})",
    )

    def eval(w, x, *, stride=1, padding=0, dilation=1, **_):
        return F.conv2d(x, w["weight"], w.get("bias"), stride=stride, padding=padding, dilation=dilation)

    def onnx(e, x, *, out_channels, kernel, stride=1, padding=0, bias=True, dilation=1, **_):
        return e("Conv", x, e.param("weight"), e.param("bias") if bias else None, kernel_shape=[kernel, kernel],
                 strides=[stride, stride], pads=[padding] * 4, dilations=[dilation, dilation])

    def relax(e, x, *, out_channels, kernel, stride=1, padding=0, bias=True, dilation=1, **_):
        y = e("nn.conv2d", x, e.param("weight"), strides=stride, padding=padding, dilation=dilation)
        return e("add", y, e("reshape", e.param("bias"), (1, out_channels, 1, 1))) if bias else y


@op("matmul", MAC)
class Matmul:
    """Batched a @ b: (..., n, k) @ (..., k, m) -> (..., n, m). Attention's QKᵀ and ·V."""

    def shape(a, b):
        if a[-1] != b[-2]:
            raise ShapeError(f"matmul: inner sizes differ, {a} @ {b}")
        return (*broadcast(a[:-2], b[:-2]), a[-2], b[-1])

    def macs(out, a, b):
        return numel(out) * a[-1]

    torch = Torch(call="{0} @ {1}")

    def eval(w, a, b):
        return a @ b

    def onnx(e, a, b):
        return e("MatMul", a, b)

    def relax(e, a, b):
        return e("matmul", a, b)


@op("embedding", HAS_PARAMS)
class Embedding:
    """Table lookup: ids (...) -> (..., dim). A gather: no MACs."""

    def shape(ids, *, num, dim, weights=None):
        return (*ids, dim)

    def params(ids, *, num, dim, weights=None):
        return {"weight": (num, dim)}

    torch = Torch(init="nn.Embedding({num}, {dim})", call="self.{mod}({0})")

    def eval(w, ids, **_):
        return F.embedding(ids, w["weight"])

    def onnx(e, ids, *, num, dim, weights=None):
        return e("Gather", e.param("weight"), ids, axis=0)

    def relax(e, ids, *, num, dim, weights=None):
        return e("take", e.param("weight"), ids, axis=0, mode="clip")
