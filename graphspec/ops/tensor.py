"""Sources and data movement: graph inputs, learned tensors, constants, token plumbing."""

from __future__ import annotations

from graphspec.ops.registry import (
    CONSTANT,
    HAS_PARAMS,
    SHAPE_ONLY,
    SOURCE,
    ShapeError,
    Torch,
    exact_div,
    op,
)


@op("input", SOURCE)
class Input:
    """A graph input: token ids (B, N) int64 or an image (B, C, H, W) f32."""

    def shape(*, shape, kind="image"):
        return tuple(shape)

    torch = Torch(call="{name}")


@op("parameter", HAS_PARAMS, SOURCE)
class Parameter:
    """A learned tensor used as is (ViT's cls token and position embedding)."""

    def shape(*, shape, init="trunc_normal", weights=None):
        return tuple(shape)

    def params(*, shape, init="trunc_normal", weights=None):
        return {"": tuple(shape)}

    torch = Torch(init="nn.Parameter(torch.zeros({shape}))", call="self.{mod}")


@op("sinusoidal", SOURCE, CONSTANT)
class Sinusoidal:
    """Sinusoidal position encoding of Vaswani §3.5: (1, N, d), PE(pos, 2i) = sin(pos/10000^(2i/d))."""

    def shape(*, length, dim):
        return (1, length, dim)

    torch = Torch(call="sinusoidal({length}, {dim}, {0_device})", helpers=("sinusoidal",))


@op("positions", SOURCE, CONSTANT)
class Positions:
    """Position ids 0..N-1, shape (1, N), int64: the index into a learned position table."""

    def shape(*, length):
        return (1, length)

    torch = Torch(call="torch.arange({length}, device={device}).unsqueeze(0)")


@op("zeros_like", SHAPE_ONLY)
class ZerosLike:
    """Zeros of an input's shape (BERT's default token_type_ids)."""

    def shape(x):
        return x

    torch = Torch(call="torch.zeros_like({0})")


@op("to_tokens", SHAPE_ONLY)
class ToTokens:
    """(B, C, H, W) -> (B, H·W, C): a feature map as a token sequence."""

    def shape(x):
        B, C, H, W = x
        return (B, H * W, C)

    torch = Torch(call="{0}.flatten(2).transpose(1, 2)")


@op("prepend", SHAPE_ONLY)
class Prepend:
    """Concatenate a (1, 1, C) token in front of (B, N, C), expanded over the batch (ViT's [class])."""

    def shape(tok, x):
        if tok[-1] != x[-1]:
            raise ShapeError(f"prepend: token width {tok[-1]} != sequence width {x[-1]}")
        return (x[0], x[1] + tok[1], x[2])

    torch = Torch(call="torch.cat([{0}.expand({1}.shape[0], -1, -1), {1}], dim=1)")


@op("select", SHAPE_ONLY)
class Select:
    """x[:, index]: (B, N, C) -> (B, C) (class-token pooling)."""

    def shape(x, *, index=0):
        return (x[0], *x[2:])

    torch = Torch(call="{0}[:, {index}]")


@op("mean", SHAPE_ONLY)
class Mean:
    """Average over the token dim: (B, N, C) -> (B, C) (Swin's global average pool).
    NB: the adds are not counted, as in the papers."""

    def shape(x, *, dim=1):
        return (x[0], *x[2:])

    torch = Torch(call="{0}.mean(dim={dim})")


@op("patch_merge", SHAPE_ONLY)
class PatchMerge:
    """Swin patch merging gather (§3.3): (B, H·W, C) -> (B, H/2·W/2, 4C), concatenating the
    2×2 neighbours in the official order x0=(0,0), x1=(1,0), x2=(0,1), x3=(1,1)."""

    def shape(x, *, H, W):
        B, L, C = x
        h = exact_div(H, 2, f"patch merging: map height {H} / 2")
        w = exact_div(W, 2, f"patch merging: map width {W} / 2")
        return (B, h * w, 4 * C)

    torch = Torch(call="patch_merge({0}, {H}, {W})", helpers=("patch_merge",))


@op("chunk", SHAPE_ONLY)
class Chunk:
    """Part `index` of `parts` equal slices of the last dim: (..., parts·k) -> (..., k).
    QKV fusion (passes.fuse_qkv) splits the fused projection back into q, k and v with it."""

    def shape(x, *, parts, index):
        return (*x[:-1], exact_div(x[-1], parts, f"chunk of width {x[-1]} into {parts}"))

    torch = Torch(call="{0}.chunk({parts}, dim=-1)[{index}]")
