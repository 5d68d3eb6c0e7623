"""The pieces of multi-head attention, unfused and fused, and the Swin window machinery.

Lowering emits attention unfused (Vaswani §3.2.1, Swin Eq. 1-2):

    q, k, v = linear(x) ×3 -> split_heads -> s = matmul(q, transpose(k)) -> scale
      -> [add rel_pos_bias] [add_window_mask] [causal_mask] -> softmax -> [dropout]
      -> matmul(·, v) -> merge_heads -> linear (proj)

and `passes.fuse_attention` folds the middle into one `attention` op.
"""

from __future__ import annotations

from graphspec.ops.registry import (
    CONSTANT,
    ELEMENTWISE,
    HAS_PARAMS,
    MAC,
    SHAPE_ONLY,
    SOURCE,
    ShapeError,
    Torch,
    exact_div,
    norm_dim,
    numel,
    op,
)


@op("split_heads", SHAPE_ONLY)
class SplitHeads:
    """(B, N, C) -> (B, h, N, C/h)."""

    def shape(x, *, heads):
        B, N, C = x
        return (B, heads, N, exact_div(C, heads, f"width {C} / heads {heads}"))

    torch = Torch(call="{0}.unflatten(-1, ({heads}, -1)).transpose(1, 2)")


@op("merge_heads", SHAPE_ONLY)
class MergeHeads:
    """(B, h, N, d) -> (B, N, h·d)."""

    def shape(x):
        B, h, N, d = x
        return (B, N, h * d)

    torch = Torch(call="{0}.transpose(1, 2).flatten(2)")


@op("transpose", SHAPE_ONLY)
class Transpose:
    """Swap two dims (Kᵀ for QKᵀ)."""

    def shape(x, *, dims=(-2, -1)):
        a, b = (norm_dim(d, len(x)) for d in dims)
        out = list(x)
        out[a], out[b] = out[b], out[a]
        return tuple(out)

    torch = Torch(call="{0}.transpose({dims[0]}, {dims[1]})")


@op("attention", MAC)
class Attention:
    """Fused softmax(q kᵀ·scale + bias + mask)·v: q (B, h, N, d), k/v (B, h, S, d) -> (B, h, N, d).

    Operands: q, k, v, then the optional additive `bias` (h, N, S) and `mask` (nW, N, S), in
    that order, as flagged by `has_bias` / `has_mask`. `windows` is nW when a window mask is
    present (the batch dim is B·nW). MACs: QKᵀ and ·V, 2·B·h·N·S·d, as if unfused.
    """

    defaults = {"causal": False, "has_bias": False, "has_mask": False, "windows": 1, "dropout": 0.0}

    def shape(q, k, v, *rest, scale, causal=False, has_bias=False, has_mask=False, windows=1, dropout=0.0):
        if q[-1] != k[-1] or k[-2] != v[-2]:
            raise ShapeError(f"attention: q {q}, k {k}, v {v} do not agree")
        return (*q[:-1], v[-1])

    def macs(out, q, k, v, *rest, **_):
        return 2 * numel(q[:-1]) * k[-2] * q[-1]  # QKᵀ + ·V. NB: softmax, scale, bias not counted

    torch = Torch(call="attention({operands})", helpers=("attention",))


@op("rel_pos_bias", HAS_PARAMS, SOURCE)
class RelPosBias:
    """Swin relative position bias (§3.2): a (2M-1)² × h table indexed by the relative
    coordinates of the M² tokens of a window -> bias (h, M², M²)."""

    def shape(*, window, heads, weights=None):
        return (heads, window * window, window * window)

    def params(*, window, heads, weights=None):
        return {"relative_position_bias_table": ((2 * window - 1) ** 2, heads)}

    torch = Torch(init="RelativePositionBias({window}, {heads})", call="self.{mod}()",
                  helpers=("RelativePositionBias",))


@op("shift_mask", SOURCE, CONSTANT)
class ShiftMask:
    """SW-MSA mask of the official code (Swin §3.2, cyclic shift): 0 where two tokens of a
    shifted window come from the same region of the H×W map, -100 elsewhere. (nW, M², M²)."""

    def shape(*, H, W, window, shift):
        n = exact_div(H, window, "map height / window") * exact_div(W, window, "map width / window")
        return (n, window * window, window * window)

    torch = Torch(call="shift_mask({H}, {W}, {window}, {shift})", helpers=("shift_mask",))


@op("add_window_mask", ELEMENTWISE)
class AddWindowMask:
    """scores (B·nW, h, N, N) + mask (nW, N, N), the mask repeated over the batch."""

    def shape(s, mask):
        if s[-2:] != mask[-2:]:
            raise ShapeError(f"window mask {mask} does not fit scores {s}")
        return s

    torch = Torch(call="add_window_mask({0}, {1})", helpers=("add_window_mask",))


@op("window_partition", SHAPE_ONLY)
class WindowPartition:
    """(B, H·W, C) -> (B·nW, M², C), nW = HW/M² non-overlapping M×M windows (Swin §3.2)."""

    def shape(x, *, H, W, window):
        B, L, C = x
        nw = exact_div(H, window, f"map height {H} / window {window}") * exact_div(
            W, window, f"map width {W} / window {window}")
        return (B * nw, window * window, C)

    torch = Torch(call="window_partition({0}, {H}, {W}, {window})", helpers=("window_partition",))


@op("window_reverse", SHAPE_ONLY)
class WindowReverse:
    """(B·nW, M², C) -> (B, H·W, C), the inverse of window_partition."""

    def shape(x, *, H, W, window):
        n, _, C = x
        nw = exact_div(H * W, window * window, "windows")
        return (exact_div(n, nw, "batch of windows"), H * W, C)

    torch = Torch(call="window_reverse({0}, {H}, {W}, {window})", helpers=("window_reverse",))


@op("roll", SHAPE_ONLY)
class Roll:
    """Cyclic shift of the (B, H·W, C) token map by `shift` along H and W (Swin §3.2)."""

    def shape(x, *, H, W, shift):
        return x

    torch = Torch(call="roll_tokens({0}, {H}, {W}, {shift})", helpers=("roll_tokens",))
