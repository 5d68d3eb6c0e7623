"""Convolutional-network ops for CNN backbones and dense decoders (DETR, SETR): batch norm,
max pooling, global average pooling, bilinear upsampling, sigmoid and DETR's 2-D sine
position encoding. `conv2d` itself lives in dense.py.
"""

from __future__ import annotations

import math

from graphspec.ops.registry import (
    CONSTANT,
    ELEMENTWISE,
    HAS_PARAMS,
    NORM,
    SHAPE_ONLY,
    SOURCE,
    F,
    ShapeError,
    Torch,
    floordiv,
    op,
    th,
)


@op("batch_norm", HAS_PARAMS, NORM)
class BatchNorm:
    """BatchNorm2d over (B, C, H, W) with running statistics. `frozen` is DETR's
    FrozenBatchNorm2d (models/backbone.py): weight, bias and statistics are all buffers, so it
    has no parameters; otherwise weight and bias are parameters (torchvision counts them)."""

    defaults = {"eps": 1e-5, "frozen": False}

    def shape(x, *, eps=1e-5, frozen=False, **_):
        if len(x) != 4:
            raise ShapeError(f"batch_norm expects (B, C, H, W), got rank {len(x)}")
        return x

    def params(x, *, frozen=False, **_):
        return {} if frozen else {"weight": (x[1],), "bias": (x[1],)}

    def buffers(x, *, frozen=False, **_):
        stats = {"running_mean": (x[1],), "running_var": (x[1],)}
        return {"weight": (x[1],), "bias": (x[1],), **stats} if frozen else stats

    torch = Torch(init=lambda a: ("FrozenBatchNorm2d" if a["frozen"] else "nn.BatchNorm2d")
                  + f"({a['channels']}" + ("" if a["eps"] == 1e-5 else f", eps={a['eps']}") + ")",
                  call="self.{mod}({0})", helpers=())

    def eval(w, x, *, eps=1e-5, **_):
        scale = w["weight"] * (w["running_var"] + eps).rsqrt()
        shift = w["bias"] - w["running_mean"] * scale
        return x * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)

    def onnx(e, x, *, eps=1e-5, **_):
        return e("BatchNormalization", x, e.param("weight"), e.param("bias"), e.param("running_mean"),
                 e.param("running_var"), epsilon=eps)

    def relax(e, x, *, eps=1e-5, **_):
        c = (1, -1, 1, 1)
        scale = e("multiply", e.param("weight"), e("rsqrt", e("add", e.param("running_var"), e.scalar(eps))))
        shift = e("subtract", e.param("bias"), e("multiply", e.param("running_mean"), scale))
        return e("add", e("multiply", x, e("reshape", scale, c)), e("reshape", shift, c))


@op("max_pool2d", SHAPE_ONLY)
class MaxPool2d:
    """Max pooling, NCHW (ResNet's 3×3/2 stem pool). NB: comparisons are not counted."""

    defaults = {"padding": 0}

    def shape(x, *, kernel, stride, padding=0):
        B, C, H, W = x
        return (B, C, floordiv(H + 2 * padding - kernel, stride) + 1, floordiv(W + 2 * padding - kernel, stride) + 1)

    torch = Torch(call="F.max_pool2d({0}, kernel_size={kernel}, stride={stride}, padding={padding})")

    def eval(w, x, *, kernel, stride, padding=0):
        return F.max_pool2d(x, kernel, stride, padding)

    def onnx(e, x, *, kernel, stride, padding=0):
        return e("MaxPool", x, kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[padding] * 4)

    def relax(e, x, *, kernel, stride, padding=0):
        return e("nn.max_pool2d", x, pool_size=kernel, strides=stride, padding=padding)


@op("global_pool", SHAPE_ONLY)
class GlobalPool:
    """Global average pool: (B, C, H, W) -> (B, C). NB: the adds are not counted."""

    def shape(x):
        return tuple(x[:2])

    torch = Torch(call="{0}.mean(dim=(2, 3))")

    def eval(w, x):
        return x.mean(dim=(2, 3))

    def onnx(e, x):
        return e("ReduceMean", x, e.ints(2, 3), keepdims=0)

    def relax(e, x):
        return e("mean", x, axis=[2, 3])


@op("to_map", SHAPE_ONLY)
class ToMap:
    """Tokens back to a feature map: (B, skip + H·W, C) -> (B, C, H, W), dropping `skip`
    leading tokens (ViT's class token) — SETR's "reshape to H/16 × W/16 × C" (§3.3)."""

    defaults = {"skip": 0}

    def shape(x, *, H, W, skip=0):
        B, N, C = x
        if isinstance(N, int) and isinstance(H * W, int) and N != skip + H * W:
            raise ShapeError(f"to_map: {N} tokens are not {skip} + {H}×{W}")
        return (B, C, H, W)

    torch = Torch(call="{0}[:, {skip}:].transpose(1, 2).unflatten(2, ({H}, {W}))",
                  comment="B, C, H, W")

    def eval(w, x, *, H, W, skip=0):
        return x[:, skip:].transpose(1, 2).unflatten(2, (H, W))

    def onnx(e, x, *, H, W, skip=0):
        if skip:
            x = e("Slice", x, e.ints(skip), e.ints(2**62), e.ints(1))
        return e("Reshape", e("Transpose", x, perm=[0, 2, 1]), e.ints(0, 0, H, W))

    def relax(e, x, *, H, W, skip=0):
        B, N, C = e.dims(x)
        if skip:
            x = e("strided_slice", x, axes=[1], begin=[skip], end=[N])
        return e("reshape", e("permute_dims", x, axes=[0, 2, 1]), (B, C, H, W))


@op("concat", SHAPE_ONLY)
class Concat:
    """Concatenate feature maps along channels (SETR-MLA's four streams)."""

    def shape(*xs, dim=1):
        out = list(xs[0])
        out[dim] = sum(x[dim] for x in xs)
        return tuple(out)

    torch = Torch(call=lambda ops, a: f"torch.cat([{', '.join(ops)}], dim={a['dim']})")

    def eval(w, *xs, dim=1):
        return th.cat(xs, dim=dim)

    def onnx(e, *xs, dim=1):
        return e("Concat", *xs, axis=dim)

    def relax(e, *xs, dim=1):
        return e("concat", list(xs), axis=dim)


@op("upsample", SHAPE_ONLY)
class Upsample:
    """Bilinear upsampling of (B, C, H, W) by an integer factor (SETR's decoders).
    NB: the interpolation arithmetic is not counted, as in mmseg's FLOP counts of SETR."""

    def shape(x, *, factor):
        B, C, H, W = x
        return (B, C, H * factor, W * factor)

    torch = Torch(call='F.interpolate({0}, scale_factor={factor}, mode="bilinear", align_corners=False)')

    def eval(w, x, *, factor):
        return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)

    def onnx(e, x, *, factor):
        return e("Resize", x, None, e.const([1.0, 1.0, float(factor), float(factor)], "scales"), mode="linear",
                 coordinate_transformation_mode="half_pixel")

    def relax(e, x, *, factor):
        B, C, H, W = e.shape(x)
        return e("image.resize2d", x, size=(H * factor, W * factor), method="linear",
                 coordinate_transformation_mode="half_pixel")


@op("sigmoid", ELEMENTWISE)
class Sigmoid:
    """σ(x) (DETR's normalized box coordinates)."""

    def shape(x):
        return x

    torch = Torch(call="{0}.sigmoid()")

    def eval(w, x):
        return x.sigmoid()

    def onnx(e, x):
        return e("Sigmoid", x)

    def relax(e, x):
        return e("sigmoid", x)


@op("sine_pos_2d", SOURCE, CONSTANT)
class SinePos2d:
    """DETR's PositionEmbeddingSine (models/position_encoding.py, normalize=True, scale 2π,
    temperature 10000) for an H×W map with no padding: (1, H·W, dim), y features then x."""

    def shape(*, H, W, dim):
        return (1, H * W, dim)

    torch = Torch(call="sine_pos_2d({H}, {W}, {dim}, {ref}.device)", helpers=("sine_pos_2d",))

    def eval(w, *, H, W, dim):
        return sine_pos_2d(H, W, dim)

    def onnx(e, *, H, W, dim):
        return e.const(sine_pos_2d(H, W, dim).numpy(), f"sine_pos_{H}x{W}x{dim}")

    def relax(e, *, H, W, dim):
        return e.const(sine_pos_2d(H, W, dim).numpy())


def sine_pos_2d(H: int, W: int, dim: int, temperature: float = 10000.0):
    """Reference values of `sine_pos_2d` (a mask of ones, as for an unpadded batch)."""
    half = dim // 2
    eps, scale = 1e-6, 2 * math.pi
    y = th.arange(1, H + 1, dtype=th.float32)[:, None].expand(H, W)
    x = th.arange(1, W + 1, dtype=th.float32)[None, :].expand(H, W)
    y = y / (H + eps) * scale
    x = x / (W + eps) * scale
    dim_t = temperature ** (2 * (th.arange(half, dtype=th.float32) // 2) / half)
    px, py = x[..., None] / dim_t, y[..., None] / dim_t
    px = th.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=3).flatten(2)
    py = th.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=3).flatten(2)
    return th.cat((py, px), dim=2).reshape(1, H * W, dim)
