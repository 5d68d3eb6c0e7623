"""The Swin window machinery (Liu et al. 2021, §3.2): windows, the cyclic shift and its mask,
and the relative position bias.

W-MSA attends within non-overlapping M×M windows; SW-MSA first rolls the map by ⌊M/2⌋ (cyclic
shift) and masks the pairs of tokens that the roll brought together from different regions:

    x -> [roll(-s)] -> window_partition -> attention(+ rel_pos_bias [+ add_window_mask(shift_mask)])
      -> window_reverse -> [roll(+s)]

The attention in the middle is graphspec/ops/attention.py's; the lowering of a window stage and
`passes.partition_windows` (global attention -> windows) emit these ops around it. The constants
are numpy, shared by the interpreter and the ONNX and TVM emitters.
"""

from __future__ import annotations

import numpy as np

from graphspec.ops.registry import (
    CONSTANT,
    ELEMENTWISE,
    HAS_PARAMS,
    SHAPE_ONLY,
    SOURCE,
    ShapeError,
    Torch,
    exact_div,
    op,
    th,
)


# -- constants of the Swin window machinery (numpy; shared by the ONNX and TVM emitters) --------
def relative_position_index(window: int):
    """(M², M²) int64 index into the (2M-1)² relative position bias table (Swin §3.2, official code)."""
    coords = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing="ij")).reshape(2, -1)  # 2, M²
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0) + (window - 1)  # M², M², 2
    return (rel[..., 0] * (2 * window - 1) + rel[..., 1]).astype(np.int64)


def shift_mask_table(H: int, W: int, window: int, shift: int, fill: float = -100.0):
    """The SW-MSA mask (nW, M², M²) f32: 0 inside one region of the shifted map, `fill` across
    (-100 in the official code)."""
    img = np.zeros((H, W), np.float32)
    cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    for i, (h, w) in enumerate((h, w) for h in cuts for w in cuts):
        img[h, w] = i
    win = img.reshape(H // window, window, W // window, window).transpose(0, 2, 1, 3).reshape(-1, window * window)
    return np.where(win[:, None, :] != win[:, :, None], fill, 0.0).astype(np.float32)


def roll_index(H: int, W: int, shift: int):
    """(H·W,) int64: token t of torch.roll(x.view(B, H, W, C), (shift, shift), (1, 2)) is token index[t] of x."""
    i, j = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    return (((i - shift) % H) * W + (j - shift) % W).reshape(-1).astype(np.int64)



@op("rel_pos_bias", HAS_PARAMS, SOURCE)
class RelPosBias:
    """Swin relative position bias (§3.2): a (2M-1)² × h table indexed by the relative
    coordinates of the M² tokens of a window -> bias (h, M², M²)."""

    def shape(*, window, heads, weights=None):
        return (heads, window * window, window * window)

    def params(*, window, heads, weights=None):
        return {"relative_position_bias_table": ((2 * window - 1) ** 2, heads)}

    torch = Torch(
        call="self.relative_position_bias_table[self.relative_position_index].movedim(-1, 0)",
        setup=("self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * {window} - 1) ** 2, {heads}))",
               'self.register_buffer("relative_position_index", relative_position_index({window}), persistent=False)',
               "nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)"),
        helpers=("relative_position_index",))

    def eval(w, *, window, heads, weights=None):
        M2 = window * window
        bias = w["relative_position_bias_table"][th.from_numpy(relative_position_index(window)).view(-1)]  # M²·M², h
        return bias.view(M2, M2, heads).permute(2, 0, 1).contiguous()  # h, M², M²

    def onnx(e, *, window, heads, weights=None):
        idx = e.const(relative_position_index(window), "relative_position_index")
        t = e("Gather", e.param("relative_position_bias_table"), idx, axis=0)  # M², M², h
        return e("Transpose", t, perm=[2, 0, 1])  # h, M², M²

    def relax(e, *, window, heads, weights=None):
        idx = e.const(relative_position_index(window))
        t = e("take", e.param("relative_position_bias_table"), idx, axis=0, mode="clip")  # M², M², h
        return e("permute_dims", t, [2, 0, 1])


@op("shift_mask", SOURCE, CONSTANT)
class ShiftMask:
    """SW-MSA mask of the official code (Swin §3.2, cyclic shift): 0 where two tokens of a
    shifted window come from the same region of the H×W map, -100 elsewhere. (nW, M², M²)."""

    def shape(*, H, W, window, shift):
        n = exact_div(H, window, "map height / window") * exact_div(W, window, "map width / window")
        return (n, window * window, window * window)

    torch = Torch(call="shift_mask({H}, {W}, {window}, {shift})", helpers=("shift_mask",))

    def eval(w, *, H, W, window, shift):
        return th.from_numpy(shift_mask_table(H, W, window, shift))

    def onnx(e, *, H, W, window, shift):
        return e.const(shift_mask_table(H, W, window, shift), "shift_mask")

    def relax(e, *, H, W, window, shift):
        # NB: -inf, not the official -100: exp(-100) ≈ 3.7e-44 is a float32 denormal, and CPU
        # arithmetic on denormals is ~100× slower (TVM's kernels cannot flush them): 95 vs 79 ms
        # for tuned Swin-T. exp(-inf) = 0 exactly; the outputs are bit-identical on Swin-T (the
        # -100 terms vanish below fp32 resolution), and no row is all -inf (a token always
        # shares its own region).
        return e.const(shift_mask_table(H, W, window, shift, fill=-np.inf))


@op("add_window_mask", ELEMENTWISE)
class AddWindowMask:
    """scores (B·nW, h, N, N) + mask (nW, N, N), the mask repeated over the batch."""

    def shape(s, mask):
        if s[-2:] != mask[-2:]:
            raise ShapeError(f"window mask {mask} does not fit scores {s}")
        return s

    torch = Torch(call="add_window_mask({0}, {1})", helpers=("add_window_mask",))

    def eval(w, s, mask):
        nW = mask.shape[0]
        Bn, h, N, S = s.shape
        return (s.view(Bn // nW, nW, h, N, S) + mask[None, :, None]).view(Bn, h, N, S)  # official order

    def onnx(e, s, mask):
        _, h, N, S = e.shape(s)
        nW = e.shape(mask)[0]
        m = e.value(mask)
        m = e("Unsqueeze", mask, e.ints(1)) if m is None else e.const(m.reshape(nW, 1, N, S), "shift_mask")
        y = e("Reshape", s, e.ints(-1, nW, h, N, S))  # B, nW, h, N, S
        return e("Reshape", e("Add", y, m), e.ints(-1, h, N, S))

    def relax(e, s, mask):
        _, h, N, S = e.shape(s)
        nW = e.shape(mask)[0]
        y = e("reshape", s, (-1, nW, h, N, S))
        y = e("add", y, e("reshape", mask, (nW, 1, N, S)))
        return e("reshape", y, (-1, h, N, S))


@op("window_partition", SHAPE_ONLY)
class WindowPartition:
    """(B, H·W, C) -> (B·nW, M², C), nW = HW/M² non-overlapping M×M windows (Swin §3.2)."""

    def shape(x, *, H, W, window):
        B, L, C = x
        nw = exact_div(H, window, f"map height {H} / window {window}") * exact_div(
            W, window, f"map width {W} / window {window}")
        return (B * nw, window * window, C)

    torch = Torch(call="window_partition({0}, {H}, {W}, {window})", helpers=("window_partition",),
                  comment="nW*B, M*M, C")

    def eval(w, x, *, H, W, window):
        B, _, C = x.shape
        x = x.view(B, H // window, window, W // window, window, C)
        return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, C)  # nW*B, M*M, C

    def onnx(e, x, *, H, W, window):
        C, M = e.shape(x)[-1], window
        y = e("Reshape", x, e.ints(-1, H // M, M, W // M, M, C))  # B, H/M, M, W/M, M, C
        y = e("Transpose", y, perm=[0, 1, 3, 2, 4, 5])  # B, H/M, W/M, M, M, C
        return e("Reshape", y, e.ints(-1, M * M, C))  # B·nW, M², C

    def relax(e, x, *, H, W, window):
        C, M = e.shape(x)[-1], window
        y = e("reshape", x, (-1, H // M, M, W // M, M, C))
        y = e("permute_dims", y, [0, 1, 3, 2, 4, 5])
        return e("reshape", y, (-1, M * M, C))


@op("window_reverse", SHAPE_ONLY)
class WindowReverse:
    """(B·nW, M², C) -> (B, H·W, C), the inverse of window_partition."""

    def shape(x, *, H, W, window):
        n, _, C = x
        nw = exact_div(H * W, window * window, "windows")
        return (exact_div(n, nw, "batch of windows"), H * W, C)

    torch = Torch(call="window_reverse({0}, {H}, {W}, {window})", helpers=("window_reverse",),
                  comment="B, H*W, C")

    def eval(w, x, *, H, W, window):
        C = x.shape[-1]
        x = x.view(-1, H // window, W // window, window, window, C)
        return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, H * W, C)  # B, H*W, C

    def onnx(e, x, *, H, W, window):
        C, M = e.shape(x)[-1], window
        y = e("Reshape", x, e.ints(-1, H // M, W // M, M, M, C))  # B, H/M, W/M, M, M, C
        y = e("Transpose", y, perm=[0, 1, 3, 2, 4, 5])  # B, H/M, M, W/M, M, C
        return e("Reshape", y, e.ints(-1, H * W, C))

    def relax(e, x, *, H, W, window):
        C, M = e.shape(x)[-1], window
        y = e("reshape", x, (-1, H // M, W // M, M, M, C))
        y = e("permute_dims", y, [0, 1, 3, 2, 4, 5])
        return e("reshape", y, (-1, H * W, C))


@op("roll", SHAPE_ONLY)
class Roll:
    """Cyclic shift of the (B, H·W, C) token map by `shift` along H and W (Swin §3.2)."""

    def shape(x, *, H, W, shift):
        return x

    torch = Torch(call="roll_tokens({0}, {H}, {W}, {shift})", helpers=("roll_tokens",),
                  comment=lambda a: "cyclic shift" if a["shift"] < 0 else "reverse cyclic shift")

    def eval(w, x, *, H, W, shift):
        B, L, C = x.shape
        return th.roll(x.view(B, H, W, C), shifts=(shift, shift), dims=(1, 2)).reshape(B, L, C)

    # The cyclic shift is a fixed permutation of the H·W tokens: one gather with a constant index.
    def onnx(e, x, *, H, W, shift):
        return e("Gather", x, e.const(roll_index(H, W, shift), f"roll_{H}x{W}_{shift}"), axis=1)

    def relax(e, x, *, H, W, shift):
        return e("take", x, e.const(roll_index(H, W, shift)), axis=1, mode="clip")
