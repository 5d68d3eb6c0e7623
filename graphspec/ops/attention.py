"""The pieces of multi-head attention, unfused and fused, and the Swin window machinery.

Lowering emits attention unfused (Vaswani §3.2.1, Swin Eq. 1-2):

    q, k, v = linear(x) ×3 -> split_heads -> s = matmul(q, transpose(k)) -> scale
      -> [add rel_pos_bias] [add_window_mask] [causal_mask] -> softmax -> [dropout]
      -> matmul(·, v) -> merge_heads -> linear (proj)

and `passes.fuse_attention` folds the middle into one `attention` op.
"""

from __future__ import annotations

import numpy as np

from graphspec.ops.elementwise import causal_fill
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


def _swap(rank: int, dims) -> list[int]:
    perm = list(range(rank))
    a, b = (norm_dim(d, rank) for d in dims)
    perm[a], perm[b] = perm[b], perm[a]
    return perm


def _bias_and_mask(rest, has_bias: bool, has_mask: bool):
    rest = list(rest)
    bias = rest.pop(0) if has_bias else None
    mask = rest.pop(0) if has_mask else None
    return bias, mask


@op("split_heads", SHAPE_ONLY)
class SplitHeads:
    """(B, N, C) -> (B, h, N, C/h)."""

    def shape(x, *, heads):
        B, N, C = x
        return (B, heads, N, exact_div(C, heads, f"width {C} / heads {heads}"))

    torch = Torch(call="{0}.unflatten(-1, ({heads}, -1)).transpose(1, 2)", comment="B, h, N, d")

    def eval(w, x, *, heads):
        return x.unflatten(-1, (heads, -1)).transpose(1, 2)  # B, h, N, d

    def onnx(e, x, *, heads):
        y = e("Reshape", x, e.ints(0, 0, heads, -1))  # B, N, h, d
        return e("Transpose", y, perm=[0, 2, 1, 3])  # B, h, N, d

    def relax(e, x, *, heads):
        _, N, C = e.shape(x)
        y = e("reshape", x, (-1, N, heads, C // heads))  # B, N, h, d
        return e("permute_dims", y, [0, 2, 1, 3])  # B, h, N, d


@op("merge_heads", SHAPE_ONLY)
class MergeHeads:
    """(B, h, N, d) -> (B, N, h·d)."""

    def shape(x):
        B, h, N, d = x
        return (B, N, h * d)

    torch = Torch(call="{0}.transpose(1, 2).flatten(2)", comment="B, N, C")

    def eval(w, x):
        return x.transpose(1, 2).flatten(2)  # B, N, h·d

    def onnx(e, x):
        y = e("Transpose", x, perm=[0, 2, 1, 3])  # B, N, h, d
        return e("Reshape", y, e.ints(0, 0, -1))  # B, N, h·d

    def relax(e, x):
        _, h, N, d = e.shape(x)
        y = e("permute_dims", x, [0, 2, 1, 3])  # B, N, h, d
        return e("reshape", y, (-1, N, h * d))


@op("transpose", SHAPE_ONLY)
class Transpose:
    """Swap two dims (Kᵀ for QKᵀ)."""

    def shape(x, *, dims=(-2, -1)):
        a, b = (norm_dim(d, len(x)) for d in dims)
        out = list(x)
        out[a], out[b] = out[b], out[a]
        return tuple(out)

    torch = Torch(call="{0}.transpose({dims[0]}, {dims[1]})")

    def eval(w, x, *, dims=(-2, -1)):
        return x.transpose(*dims)

    def onnx(e, x, *, dims=(-2, -1)):
        return e("Transpose", x, perm=_swap(len(e.shape(x)), dims))

    def relax(e, x, *, dims=(-2, -1)):
        return e("permute_dims", x, _swap(len(e.shape(x)), dims))


def _sdpa_call(ops: list[str], a) -> str:
    """Fused attention in PyTorch: F.scaled_dot_product_attention, through the `attention` helper
    when an additive bias or window mask joins in. A mask operand may be None at run time (an
    unshifted Swin block shares the class of a shifted one)."""
    q, k, v, *rest = ops
    extra = f", scale={a['scale']}"
    if not (a["dropout"] == 0.0):
        extra += f", dropout_p={a['dropout']} if self.training else 0.0"
    if a.get("kv_heads") is not None:
        extra += ", enable_gqa=True"  # k, v keep their kv_heads (GQA §2); SDPA shares them
    sliding = a.get("sliding")
    if sliding is not None and not sliding.known:  # per layer (Gemma-2): a window, or None and causal
        keep = f"sliding_mask({q}.new_zeros({q}.size(-2), {k}.size(-2)), {sliding}) if {sliding} else None"
        return f"F.scaled_dot_product_attention({q}, {k}, {v}, {keep}, is_causal={a['causal']}{extra})"
    if sliding:  # the causal band as an additive mask (Mistral 7B §2)
        keep = f"sliding_mask({q}.new_zeros({q}.size(-2), {k}.size(-2)), {sliding})"
        return f"F.scaled_dot_product_attention({q}, {k}, {v}, {keep}{extra})"
    if not rest:
        causal = "" if a["causal"] == False else f", is_causal={a['causal']}"  # noqa: E712 (attribute expression)
        return f"F.scaled_dot_product_attention({q}, {k}, {v}{causal}{extra})"
    named = []
    if a["has_bias"] == True:  # noqa: E712
        named.append(f"bias={rest.pop(0)}")
    if rest:
        named.append(f"mask={rest.pop(0)}")
    if not (a["causal"] == False):  # noqa: E712 - a bias and the causal mask (T5's decoder)
        extra += f", is_causal={a['causal']}"
    return f"attention({q}, {k}, {v}, {', '.join(named)}{extra})"


@op("attention", MAC)
class Attention:
    """Fused softmax(q kᵀ·scale + bias + mask)·v: q (B, h, N, d), k/v (B, h, S, d) -> (B, h, N, d).

    Operands: q, k, v, then the optional additive `bias` (h, N, S) and `mask` (nW, N, S), in
    that order, as flagged by `has_bias` / `has_mask`. `windows` is nW when a window mask is
    present (the batch dim is B·nW). Optional attributes (absent unless set): `kv_heads` (GQA
    §2: k and v have kv_heads heads, each shared by h/kv_heads query heads, as HF's repeat_kv),
    `sliding` W (Mistral §2: query i sees keys i-W < j ≤ i; in place of `causal`). MACs: QKᵀ
    and ·V, 2·B·h·N·S·d, as if unfused (the k/v heads repeated).
    """

    defaults = {"causal": False, "has_bias": False, "has_mask": False, "windows": 1, "dropout": 0.0}

    def shape(q, k, v, *rest, scale, causal=False, has_bias=False, has_mask=False, windows=1, dropout=0.0,
              kv_heads=None, sliding=None):
        if q[-1] != k[-1] or k[-2] != v[-2]:
            raise ShapeError(f"attention: q {q}, k {k}, v {v} do not agree")
        if kv_heads is not None and (k[-3] != kv_heads or v[-3] != kv_heads
                                     or (isinstance(q[-3], int) and q[-3] % kv_heads)):
            raise ShapeError(f"attention: {q[-3]} query heads cannot share k {k}, v {v} in {kv_heads} groups")
        return (*q[:-1], v[-1])

    def macs(out, q, k, v, *rest, **_):
        return 2 * numel(q[:-1]) * k[-2] * q[-1]  # QKᵀ + ·V. NB: softmax, scale, bias not counted

    torch = Torch(call=lambda ops, a: _sdpa_call(ops, a), helpers=("attention", "sliding_mask"))

    def eval(w, q, k, v, *rest, scale, causal=False, has_bias=False, has_mask=False, windows=1, dropout=0.0,
             kv_heads=None, sliding=None):
        # The unfused rules in the same order, so that fusion changes no bit. NB: dropout is the
        # identity at inference.
        from graphspec.ops.llm import SlidingMask

        rest = list(rest)
        if kv_heads is not None:  # GQA: each k/v head serves h/kv_heads query heads
            groups = q.shape[-3] // kv_heads
            k, v = k.repeat_interleave(groups, dim=-3), v.repeat_interleave(groups, dim=-3)
        s = (q @ k.transpose(-2, -1)) * scale  # B, h, N, S
        if has_bias:
            s = s + rest.pop(0)
        if has_mask:
            s = AddWindowMask.eval(w, s, rest.pop(0))
        if causal:
            s = causal_fill(s)
        if sliding:
            s = SlidingMask.eval(w, s, window=sliding)
        return s.softmax(dim=-1) @ v

    def onnx(e, q, k, v, *rest, scale, causal=False, has_bias=False, has_mask=False, windows=1, dropout=0.0,
             kv_heads=None, sliding=None):
        # ONNX Attention (opset 23) takes (B, h, N, d) as is, k/v with kv_heads heads (its GQA);
        # bias, window mask and sliding band become one additive attn_mask (B·nW, h, N, S).
        from graphspec.ops.llm import sliding_keep

        bias, mask = _bias_and_mask(rest, has_bias, has_mask)  # (h, N, S), (nW, N, S)
        if sliding:
            N, S = e.shape(q)[-2], e.shape(k)[-2]
            band = e.const(np.where(sliding_keep(N, S, sliding), 0.0, -np.inf).astype(np.float32), "sliding_mask")
            bias = band if bias is None else e("Add", bias, band)
        if mask is not None:
            nW, N, S = e.shape(mask)
            m = e.value(mask)
            m = e("Unsqueeze", mask, e.ints(1)) if m is None else e.const(m.reshape(nW, 1, N, S), "shift_mask")
            m = m if bias is None else e("Add", m, bias)  # nW, h, N, S
            bias = m if e.static_batch(q, 1 * nW) else e("Tile", m, e.batch_shape(q, 1, 1, 1, divide=nW))
        return e("Attention", q, k, v, bias, scale=float(scale), is_causal=int(causal))

    def relax(e, q, k, v, *rest, scale, causal=False, has_bias=False, has_mask=False, windows=1, dropout=0.0,
              kv_heads=None, sliding=None):
        # relax.op.nn.attention wants (B, N, h, d): transpose in and out. GQA's k/v heads are
        # repeated first (HF's repeat_kv), the sliding band joins the bias as a constant.
        from graphspec.ops.llm import sliding_keep

        bias, mask = _bias_and_mask(rest, has_bias, has_mask)
        h, N, S = e.shape(q)[1], e.shape(q)[2], e.shape(k)[2]
        if kv_heads is not None:
            k, v = (e("repeat", t, h // kv_heads, axis=1) for t in (k, v))
        if bias is not None:
            bias = e("reshape", bias, (1, h, N, S))
        if mask is not None:
            nW = e.shape(mask)[0]
            m = e("reshape", mask, (1, nW, 1, N, S))
            m = m if bias is None else e("add", m, e("reshape", bias, (1, 1, h, N, S)))  # 1, nW, h, N, S
            B = e.dims(q)[0] // nW
            m = e("broadcast_to", m, (B, nW, h, N, S))
            bias = e("reshape", m, (-1, h, N, S))  # B·nW, h, N, S
        if sliding:
            band = np.where(sliding_keep(N, S, sliding), 0.0, -np.inf).astype(np.float32)
            band = e.const(np.broadcast_to(band, (1, h, N, S)).copy())
            bias = band if bias is None else e("add", bias, band)
        if e.decompose_attention:  # matmuls MetaSchedule can tune (it cannot build nn.attention's)
            s = e("multiply", e("matmul", q, e("permute_dims", k, [0, 1, 3, 2])), e.scalar(scale))
            s = s if bias is None else e("add", s, bias)  # B, h, N, S
            if causal:
                s = e("where", e.const(np.tril(np.ones((N, S), dtype=bool))), s, e.scalar(float("-inf")))
            return e("matmul", e.softmax(s, axis=-1), v)
        q, k, v = (e("permute_dims", t, [0, 2, 1, 3]) for t in (q, k, v))
        o = e("nn.attention", q, k, v, bias, scale=float(scale), causal_mask="TopLeft" if causal else None)
        return e("permute_dims", o, [0, 2, 1, 3])


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
