"""The pieces of multi-head attention, unfused and fused.

Lowering emits attention unfused (Vaswani §3.2.1, Swin Eq. 1-2):

    q, k, v = linear(x) ×3 -> split_heads -> s = matmul(q, transpose(k)) -> scale
      -> [add rel_pos_bias] [add_window_mask] [causal_mask] -> softmax -> [dropout]
      -> matmul(·, v) -> merge_heads -> linear (proj)

and `passes.fuse_attention` folds the middle into one `attention` op. The Swin window machinery
(rel_pos_bias, shift_mask, add_window_mask, window_partition / window_reverse, roll) is in
graphspec/ops/windows.py; its names are importable from here too.
"""

from __future__ import annotations

import numpy as np

from graphspec.ops.elementwise import causal_fill
from graphspec.ops.registry import (
    MAC,
    SHAPE_ONLY,
    ShapeError,
    Torch,
    exact_div,
    norm_dim,
    numel,
    op,
    th,
)


def _swap(rank: int, dims) -> list[int]:
    perm = list(range(rank))
    a, b = (norm_dim(d, rank) for d in dims)
    perm[a], perm[b] = perm[b], perm[a]
    return perm


def _band(N: int, S: int, causal, sliding, chunk=None, local=None) -> np.ndarray:
    """(N, S) float32: 0 where query i sees key j under the causal mask and the sliding, chunked
    or local band (each when set), -inf elsewhere."""
    from graphspec.ops.llama4 import chunked_keep
    from graphspec.ops.llm import sliding_keep
    from graphspec.ops.modernbert import local_keep

    keep = np.ones((N, S), dtype=bool)
    for band, keep_of in ((sliding, sliding_keep), (chunk, chunked_keep), (local, local_keep)):
        keep = keep & keep_of(N, S, band) if band else keep
    keep = keep & np.tril(np.ones((N, S), dtype=bool), S - N) if causal else keep
    return np.where(keep, 0.0, -np.inf).astype(np.float32)


def _sink_operands_onnx(e, q, k, v, sinks, causal, sliding) -> tuple:
    """q, k and v with one more key and value (zeros: the key scores 0, the value adds nothing)
    and the additive mask (h, N, S + 1): the causal or sliding band, then each head's sink logit."""
    h, N = e.shape(q)[1], e.shape(q)[2]
    S = e.shape(k)[2]
    band = np.broadcast_to(_band(N, S, causal, sliding), (h, N, S)).copy()
    sink = e("Expand", e("Reshape", sinks, e.ints(h, 1, 1)), e.ints(h, N, 1))
    mask = e("Concat", e.const(band, f"sink_band_{N}_{S}_{sliding or 0}_{int(bool(causal))}"), sink, axis=-1)
    extra = []
    for t in (k, v):
        _, kh, _, d = e.shape(t)
        zeros = e.const(np.zeros((1, kh, 1, d), dtype=np.float32), f"sink_zeros_{kh}_{d}")
        if not e.static_batch(t, 1):
            zeros = e("Expand", zeros, e.batch_shape(t, kh, 1, d))
        extra.append(e("Concat", t, zeros, axis=2))
    return q, extra[0], extra[1], mask


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
    if a.get("has_sinks") is not None:  # gpt-oss: the sink as one more key (attention_with_sinks)
        window = "" if sliding is None else f", window={sliding}"
        causal = "" if a["causal"] == False else f", is_causal={a['causal']}"  # noqa: E712 (attribute expression)
        return f"attention_with_sinks({q}, {k}, {v}, {rest[-1]}{causal}{window}{extra})"
    # a band as an additive mask: Llama 4's chunks, ModernBERT's local window, Mistral's sliding window;
    # per layer (an attribute expression) it is None in the layers without it, which may be causal
    bands = [(val, f"{fn}({q}.new_zeros({q}.size(-2), {k}.size(-2)), {val})")
             for val, fn in ((a.get("chunk"), "chunked_mask"), (a.get("local"), "local_mask"), (sliding, "sliding_mask"))
             if val is not None and (not val.known or bool(val))]
    if bands and all(val.known for val, _ in bands):  # every instance has this band (one per layer at most)
        return f"F.scaled_dot_product_attention({q}, {k}, {v}, {bands[0][1]}{extra})"
    if bands:
        keep = " else ".join(f"{mask} if {val}" for val, mask in bands) + " else None"
        causal = "" if a["causal"] == False else f", is_causal={a['causal']}"  # noqa: E712 (attribute expression)
        return f"F.scaled_dot_product_attention({q}, {k}, {v}, {keep}{causal}{extra})"
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
    `sliding` W (Mistral §2: query i sees keys i-W < j ≤ i; in place of `causal`), `chunk` C
    (Llama 4: keys j ≤ i of i's chunk of C, ⌊j/C⌋ = ⌊i/C⌋; in place of `causal`), `local` L
    (ModernBERT: keys |i − j| ≤ L // 2, bidirectional). v may be
    narrower than q and k (DeepSeek's MLA: 128 value dims, 192 for the scores). `has_sinks`
    (gpt-oss): a last operand `sinks` (h,), one learned logit per head that joins each row's
    softmax and is then dropped (sink_softmax, graphspec/ops/gpt_oss.py); the fused emitters make
    it one more key whose score is the logit (a zero key, the logit in the additive mask) with a
    zero value. MACs: QKᵀ and ·V, B·h·N·S·(d_qk + d_v), as if unfused (the k/v heads repeated).
    """

    defaults = {"causal": False, "has_bias": False, "has_mask": False, "windows": 1, "dropout": 0.0}

    def shape(q, k, v, *rest, scale, causal=False, has_bias=False, has_mask=False, windows=1, dropout=0.0,
              kv_heads=None, sliding=None, chunk=None, local=None, has_sinks=False):
        if q[-1] != k[-1] or k[-2] != v[-2]:
            raise ShapeError(f"attention: q {q}, k {k}, v {v} do not agree")
        if kv_heads is not None and (k[-3] != kv_heads or v[-3] != kv_heads
                                     or (isinstance(q[-3], int) and q[-3] % kv_heads)):
            raise ShapeError(f"attention: {q[-3]} query heads cannot share k {k}, v {v} in {kv_heads} groups")
        return (*q[:-1], v[-1])

    def macs(out, q, k, v, *rest, **_):  # QKᵀ + ·V (MLA: v narrower than q, k). NB: softmax, scale, bias not counted
        return numel(q[:-1]) * k[-2] * (q[-1] + v[-1])

    torch = Torch(call=lambda ops, a: _sdpa_call(ops, a), helpers=("attention", "sliding_mask", "chunked_mask", "local_mask",
                                                                        "attention_with_sinks"))

    def eval(w, q, k, v, *rest, scale, causal=False, has_bias=False, has_mask=False, windows=1, dropout=0.0,
             kv_heads=None, sliding=None, chunk=None, local=None, has_sinks=False):
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
        if chunk:
            from graphspec.ops.llama4 import ChunkedMask

            s = ChunkedMask.eval(w, s, chunk=chunk)
        if local:
            from graphspec.ops.modernbert import LocalMask

            s = LocalMask.eval(w, s, window=local)
        if has_sinks:  # as SinkSoftmax.eval: the logit joins the row, its column is dropped
            sink = rest.pop(0).to(s.dtype).view(1, -1, 1, 1).expand(*s.shape[:-1], 1)
            return th.cat([s, sink], -1).softmax(-1)[..., :-1] @ v
        return s.softmax(dim=-1) @ v

    def onnx(e, q, k, v, *rest, scale, causal=False, has_bias=False, has_mask=False, windows=1, dropout=0.0,
             kv_heads=None, sliding=None, chunk=None, local=None, has_sinks=False):
        # ONNX Attention (opset 23) takes (B, h, N, d) as is, k/v with kv_heads heads (its GQA);
        # bias, window mask and sliding band become one additive attn_mask (B·nW, h, N, S).
        if has_sinks:  # the band (causal, sliding) and the sink column as one additive mask (h, N, S + 1)
            return e("Attention", *_sink_operands_onnx(e, q, k, v, rest[-1], causal, sliding),
                     scale=float(scale), is_causal=0)
        bias, mask = _bias_and_mask(rest, has_bias, has_mask)  # (h, N, S), (nW, N, S)
        if sliding or chunk or local:  # the sliding, chunked or local band (one per layer at most)
            N, S = e.shape(q)[-2], e.shape(k)[-2]
            band = e.const(_band(N, S, False, sliding, chunk, local), "band")
            bias = band if bias is None else e("Add", bias, band)
        if mask is not None:
            nW, N, S = e.shape(mask)
            m = e.value(mask)
            m = e("Unsqueeze", mask, e.ints(1)) if m is None else e.const(m.reshape(nW, 1, N, S), "shift_mask")
            m = m if bias is None else e("Add", m, bias)  # nW, h, N, S
            bias = m if e.static_batch(q, 1 * nW) else e("Tile", m, e.batch_shape(q, 1, 1, 1, divide=nW))
        return e("Attention", q, k, v, bias, scale=float(scale), is_causal=int(causal))

    def relax(e, q, k, v, *rest, scale, causal=False, has_bias=False, has_mask=False, windows=1, dropout=0.0,
              kv_heads=None, sliding=None, chunk=None, local=None, has_sinks=False):
        # relax.op.nn.attention wants (B, N, h, d): transpose in and out. GQA's k/v heads are
        # repeated first (HF's repeat_kv), the sliding band joins the bias as a constant.
        bias, mask = _bias_and_mask(rest, has_bias, has_mask)
        h, N, S = e.shape(q)[1], e.shape(q)[2], e.shape(k)[2]
        if kv_heads is not None:
            k, v = (e("repeat", t, h // kv_heads, axis=1) for t in (k, v))
        if has_sinks:  # one more key: zero, its score the sink logit in the mask; its value zero
            band = e.const(np.broadcast_to(_band(N, S, causal, sliding), (1, h, N, S)).copy())
            sink = e("broadcast_to", e("reshape", rest[-1], [1, h, 1, 1]), [1, h, N, 1])
            bias, causal, sliding = e("concat", [band, sink], axis=-1), False, None  # 1, h, N, S + 1
            k, v = (e("concat", [t, e("multiply", e("strided_slice", t, axes=[2], begin=[0], end=[1]),
                                      e.scalar(0.0))], axis=2) for t in (k, v))
            S += 1
        if bias is not None:
            bias = e("reshape", bias, (1, h, N, S))
        if mask is not None:
            nW = e.shape(mask)[0]
            m = e("reshape", mask, (1, nW, 1, N, S))
            m = m if bias is None else e("add", m, e("reshape", bias, (1, 1, h, N, S)))  # 1, nW, h, N, S
            B = e.dims(q)[0] // nW
            m = e("broadcast_to", m, (B, nW, h, N, S))
            bias = e("reshape", m, (-1, h, N, S))  # B·nW, h, N, S
        if sliding or chunk or local:  # the sliding, chunked or local band (one per layer at most)
            band = e.const(np.broadcast_to(_band(N, S, False, sliding, chunk, local), (1, h, N, S)).copy())
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


# Imported last so that the window ops register after the ops above, as when they lived here
# (the registry's order is unchanged); Attention.eval uses AddWindowMask.
from graphspec.ops.windows import (  # noqa: E402, F401  (re-exported)
    AddWindowMask,
    RelPosBias,
    Roll,
    ShiftMask,
    WindowPartition,
    WindowReverse,
    relative_position_index,
    roll_index,
    shift_mask_table,
)
