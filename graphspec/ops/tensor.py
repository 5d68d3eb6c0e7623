"""Sources and data movement: graph inputs, learned tensors, constants, token plumbing."""

from __future__ import annotations

import math

import numpy as np

from graphspec.ops.registry import (
    CONSTANT,
    HAS_PARAMS,
    SHAPE_ONLY,
    SOURCE,
    F,
    ShapeError,
    Torch,
    exact_div,
    get,
    op,
    th,
)


def sinusoidal_table(length: int, dim: int):
    """(1, N, d) f32, Vaswani §3.5: PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(·)."""
    pos = np.arange(length, dtype=np.float64)[:, None]
    div = np.exp(np.arange(0, dim, 2, dtype=np.float64) * (-math.log(10000.0) / dim))
    pe = np.zeros((length, dim), np.float64)
    pe[:, 0::2] = np.sin(pos * div)
    pe[:, 1::2] = np.cos(pos * div)
    return pe[None].astype(np.float32)


@op("input", SOURCE)
class Input:
    """A graph input: token ids (B, N) int64 or an image (B, C, H, W) f32."""

    def shape(*, shape, kind="image"):
        return tuple(shape)

    torch = Torch(call="{name}")

    def eval(w, **_):
        return w[""]  # the interpreter binds the fed value like a parameter

    def onnx(e, *, shape, kind="image"):
        return e.input()  # a graph input, batch dim symbolic under --batch dynamic

    def relax(e, *, shape, kind="image"):
        return e.input()


# How a free-standing parameter is drawn (its `init` attribute), as the reference models draw it:
# each is a statement of the owning module's `reset_parameters` (the root's `init_weights`).
PARAMETER_INITS = {
    "trunc_normal": "nn.init.trunc_normal_(self.{mod}, std=0.02)",  # ViT/DeiT/PVT cls token, position table (timm, HF)
    # DETR's query table as HF's DetrModel draws its nn.Embedding (N(0, init_std²)); facebookresearch/detr
    # leaves nn.Embedding's N(0, 1)
    "normal": "nn.init.normal_(self.{mod}, std=0.02)",
    "zeros": "nn.init.zeros_(self.{mod})",  # BERT's masked-LM bias (HF's BertLMPredictionHead.bias)
    "ones": "nn.init.ones_(self.{mod})",
}


def _parameter_init(ops, a) -> str:
    init = a.get("init")
    if init is not None and not init.known:
        raise ValueError(f"parameter init {init} differs between instances of one class")
    return PARAMETER_INITS[init.value if init is not None else "trunc_normal"].format(mod=a["mod"])


@op("parameter", HAS_PARAMS, SOURCE)
class Parameter:
    """A learned tensor used as is (ViT's cls token and position embedding, BERT's masked-LM
    bias); `init` names its draw, one of PARAMETER_INITS."""

    def shape(*, shape, init="trunc_normal", weights=None):
        if init not in PARAMETER_INITS:
            raise ShapeError(f"parameter init {init!r} is not one of {', '.join(PARAMETER_INITS)}")
        return tuple(shape)

    def params(*, shape, init="trunc_normal", weights=None):
        return {"": tuple(shape)}

    torch = Torch(init=lambda a: f"nn.Parameter(torch.zeros({', '.join(map(str, a['shape'].parts()))}))"
                  if a["shape"].parts() is not None else f"nn.Parameter(torch.zeros({a['shape']}))", call="self.{mod}",
                  setup=(_parameter_init,))

    def eval(w, **_):
        return w[""]

    def onnx(e, *, shape, init="trunc_normal", weights=None):
        return e.param()

    def relax(e, *, shape, init="trunc_normal", weights=None):
        return e.param()


@op("sinusoidal", SOURCE, CONSTANT)
class Sinusoidal:
    """Sinusoidal position encoding of Vaswani §3.5: (1, N, d), PE(pos, 2i) = sin(pos/10000^(2i/d))."""

    def shape(*, length, dim):
        return (1, length, dim)

    torch = Torch(call="sinusoidal({length}, {dim}, {ref}.device)", helpers=("sinusoidal",))

    def eval(w, *, length, dim):
        pos = th.arange(length, dtype=th.float64)[:, None]
        inv = th.pow(10000.0, -th.arange(0, dim, 2, dtype=th.float64) / dim)  # 1/10000^(2i/d)
        pe = th.zeros(length, dim, dtype=th.float64)
        pe[:, 0::2] = th.sin(pos * inv)  # PE(pos, 2i)
        pe[:, 1::2] = th.cos(pos * inv)[:, : dim // 2]  # PE(pos, 2i+1)
        return pe.float()[None]  # 1, N, d

    def onnx(e, *, length, dim):
        return e.const(sinusoidal_table(length, dim), f"sinusoidal_{length}x{dim}")

    def relax(e, *, length, dim):
        return e.const(sinusoidal_table(length, dim))


@op("positions", SOURCE, CONSTANT)
class Positions:
    """Position ids 0..N-1, shape (1, N), int64: the index into a learned position table."""

    def shape(*, length):
        return (1, length)

    torch = Torch(call="torch.arange({length}, device={ref}.device).unsqueeze(0)")

    def eval(w, *, length):
        return th.arange(length)[None]  # 1, N

    def onnx(e, *, length):
        return e.const(np.arange(length, dtype=np.int64)[None], f"positions_{length}")

    def relax(e, *, length):
        return e.const(np.arange(length, dtype=np.int64)[None])


@op("padded_positions", SHAPE_ONLY)
class PaddedPositions:
    """Position ids that skip padding, (B, N) token ids -> (B, N) int64: each token that is not
    `pad` counts the tokens that are not padding up to it, from pad + 1; padding gets `pad` (fairseq's
    LearnedPositionalEmbedding, as RoBERTa and XLM-R are trained; HF's
    create_position_ids_from_input_ids). Unpadded rows read pad + 1 .. pad + N."""

    def shape(ids, *, pad):
        if len(ids) != 2:
            raise ShapeError(f"padded_positions: token ids (B, N), got {ids}")
        return tuple(ids)

    torch = Torch(call="({0} != {pad}).cumsum(1) * ({0} != {pad}) + {pad}",
                  comment=lambda a: f"padding keeps position {a['pad']}")

    def eval(w, ids, *, pad):
        keep = (ids != pad).long()
        return keep.cumsum(1) * keep + pad

    def onnx(e, ids, *, pad):
        keep = e("Cast", e("Not", e("Equal", ids, e.const(np.int64(pad), f"pad_{pad}"))), to=7)  # INT64
        counted = e("Mul", e("CumSum", keep, e.const(np.int64(1), "axis_1")), keep)
        return e("Add", counted, e.const(np.int64(pad), f"pad_{pad}"))

    def relax(e, ids, *, pad):
        keep = e("astype", e("not_equal", ids, e.const(np.int64(pad))), "int32")  # Relax's integer constants: int32
        return e("add", e("multiply", e("cumsum", keep, axis=1, dtype="int32"), keep), e.const(np.int32(pad)))


@op("zeros_like", SHAPE_ONLY)
class ZerosLike:
    """Zeros of an input's shape (BERT's default token_type_ids)."""

    def shape(x):
        return x

    torch = Torch(call="torch.zeros_like({0})")

    def eval(w, x):
        return th.zeros_like(x)

    def onnx(e, x):
        return e("ConstantOfShape", e("Shape", x), value=e.tensor(np.zeros(1, np.int64)))

    def relax(e, x):
        return e("zeros_like", x)


@op("to_tokens", SHAPE_ONLY)
class ToTokens:
    """(B, C, H, W) -> (B, H·W, C): a feature map as a token sequence."""

    def shape(x):
        B, C, H, W = x
        return (B, H * W, C)

    torch = Torch(call="{0}.flatten(2).transpose(1, 2)", comment="B, H*W, C")

    def eval(w, x):
        return x.flatten(2).transpose(1, 2)  # B, H*W, C

    def onnx(e, x):
        y = e("Reshape", x, e.ints(0, 0, -1))  # B, C, H·W
        return e("Transpose", y, perm=[0, 2, 1])  # B, H·W, C

    def relax(e, x):
        _, C, H, W = e.shape(x)
        return e("permute_dims", e("reshape", x, (-1, C, H * W)), [0, 2, 1])


@op("prepend", SHAPE_ONLY)
class Prepend:
    """Concatenate learned (1, n, C) tokens in front of (B, N, C), expanded over the batch (ViT's
    [class]); with `at`, after the first `at` tokens (DINOv2's registers after [class])."""

    def shape(tok, x, *, at=0):
        if tok[-1] != x[-1]:
            raise ShapeError(f"prepend: token width {tok[-1]} != sequence width {x[-1]}")
        return (x[0], x[1] + tok[1], x[2])

    torch = Torch(call=lambda ops, a: f"torch.cat([{ops[0]}.expand({ops[1]}.shape[0], -1, -1), {ops[1]}], dim=1)"
                  if a.get("at", 0) == 0 else
                  f"torch.cat([{ops[1]}[:, :{a['at']}], {ops[0]}.expand({ops[1]}.shape[0], -1, -1), "
                  f"{ops[1]}[:, {a['at']}:]], dim=1)",
                  comment=lambda a: "B, 1 + N, C" if a.get("at", 0) == 0 else "B, N + n, C")

    def eval(w, tok, x, *, at=0):
        return th.cat([x[:, :at], tok.expand(x.shape[0], -1, -1), x[:, at:]], dim=1)

    def onnx(e, tok, x, *, at=0):
        if not e.static_batch(x, 1):  # (1, n, C) -> (B, n, C)
            tok = e("Expand", tok, e.batch_shape(x, *e.shape(tok)[1:]))
        if not at:
            return e("Concat", tok, x, axis=1)
        head = e("Slice", x, e.ints(0), e.ints(at), e.ints(1))
        tail = e("Slice", x, e.ints(at), e.ints(2**62), e.ints(1))
        return e("Concat", head, tok, tail, axis=1)

    def relax(e, tok, x, *, at=0):
        _, n, C = e.shape(tok)
        B, N, _ = e.dims(x)
        tok = e("broadcast_to", tok, (B, n, C))
        if not at:
            return e("concat", [tok, x], axis=1)
        head = e("strided_slice", x, axes=[1], begin=[0], end=[at])
        tail = e("strided_slice", x, axes=[1], begin=[at], end=[N])
        return e("concat", [head, tok, tail], axis=1)


@op("interpolate_pos", SHAPE_ONLY)
class InterpolatePos:
    """A learned position table (1, prefix + grid², C) for a grid × grid patch map resampled to
    H × W patches: the `prefix` leading rows ([class]) as they are, the grid bicubically
    (align_corners false, in float32), as Hugging Face's Dinov2Embeddings.interpolate_pos_encoding
    and ViT's. NB: the resampling arithmetic is not counted (no MACs), as for `upsample`."""

    def shape(x, *, grid, H, W, prefix):
        if isinstance(x[1], int) and x[1] != prefix + grid * grid:
            raise ShapeError(f"a position table of {x[1]} rows is not {prefix} + {grid}² rows")
        return (1, prefix + H * W, x[2])

    torch = Torch(call="interpolate_pos({0}, {grid}, ({H}, {W}), {prefix})", helpers=("interpolate_pos",))

    def eval(w, x, *, grid, H, W, prefix):
        D = x.shape[-1]
        p = x[:, prefix:].reshape(1, grid, grid, D).permute(0, 3, 1, 2)
        p = F.interpolate(p.float(), size=(H, W), mode="bicubic", align_corners=False).to(x.dtype)
        return th.cat([x[:, :prefix], p.permute(0, 2, 3, 1).reshape(1, H * W, D)], dim=1)

    def onnx(e, x, *, grid, H, W, prefix):
        D = e.shape(x)[-1]
        p = e("Slice", x, e.ints(prefix), e.ints(2**62), e.ints(1))
        p = e("Transpose", e("Reshape", p, e.ints(1, grid, grid, D)), perm=[0, 3, 1, 2])
        p = e("Resize", p, None, None, e.ints(1, D, H, W), mode="cubic", cubic_coeff_a=-0.75,
              coordinate_transformation_mode="half_pixel")  # PyTorch's bicubic (A = -0.75, align_corners false)
        p = e("Reshape", e("Transpose", p, perm=[0, 2, 3, 1]), e.ints(1, H * W, D))
        return e("Concat", e("Slice", x, e.ints(0), e.ints(prefix), e.ints(1)), p, axis=1) if prefix else p

    def relax(e, x, *, grid, H, W, prefix):
        D = e.shape(x)[-1]
        p = e("strided_slice", x, axes=[1], begin=[prefix], end=[prefix + grid * grid])
        p = e("permute_dims", e("reshape", p, (1, grid, grid, D)), axes=[0, 3, 1, 2])
        p = e("image.resize2d", p, size=(H, W), method="cubic", coordinate_transformation_mode="half_pixel",
              cubic_alpha=-0.75, cubic_exclude=0)
        p = e("reshape", e("permute_dims", p, axes=[0, 2, 3, 1]), (1, H * W, D))
        if not prefix:
            return p
        return e("concat", [e("strided_slice", x, axes=[1], begin=[0], end=[prefix]), p], axis=1)


@op("expand", SHAPE_ONLY)
class Expand:
    """A learned (1, n, C) tensor repeated over the batch of `x` (B, N, C): (B, n, C) (the probe
    of SigLIP's attention-pooling head)."""

    def shape(tok, x):
        if tok[0] != 1 or tok[-1] != x[-1]:
            raise ShapeError(f"expand: a (1, n, {x[-1]}) tensor is repeated over the batch, got {tok}")
        return (x[0], tok[1], tok[2])

    torch = Torch(call="{0}.expand({1}.shape[0], -1, -1)", comment="B, n, C")

    def eval(w, tok, x):
        return tok.expand(x.shape[0], -1, -1)

    def onnx(e, tok, x):
        return tok if e.static_batch(x, 1) else e("Expand", tok, e.batch_shape(x, *e.shape(tok)[1:]))

    def relax(e, tok, x):
        _, n, C = e.shape(tok)
        return e("broadcast_to", tok, (e.dims(x)[0], n, C))


@op("select", SHAPE_ONLY)
class Select:
    """x[:, index]: (B, N, C) -> (B, C) (class-token pooling; index -1: the last token, a
    decoder's sequence classification); dim=-1, x[..., index]: (B, N, 2) -> (B, N) (question
    answering's start and end logits)."""

    def shape(x, *, index=0, dim=1):
        return tuple(x[:-1]) if dim == -1 else (x[0], *x[2:])

    torch = Torch(call=lambda ops, a: f"{ops[0]}[..., {a['index']}]" if a.get("dim") == -1
                  else f"{ops[0]}[:, {a['index']}]")

    def eval(w, x, *, index=0, dim=1):
        return x[..., index] if dim == -1 else x[:, index]

    def onnx(e, x, *, index=0, dim=1):
        return e("Gather", x, e.const(np.int64(index), f"index_{index}".replace("-", "m")), axis=dim)

    def relax(e, x, *, index=0, dim=1):
        axis = len(e.dims(x)) - 1 if dim == -1 else dim
        return e("take", x, e.const(np.int64(index)), axis=axis, mode="wrap" if index < 0 else "clip")


@op("last_token", SHAPE_ONLY)
class LastToken:
    """x[b, i_b]: (B, N, C), token ids (B, N) -> (B, C), i_b the last position of row b whose id is
    not `pad` (HF's GenericForSequenceClassification with a pad_token_id: the rightmost token that
    is not padding, so left and right padding both work; a row of padding only reads position 0)."""

    def shape(x, ids, *, pad):
        if len(x) != 3 or tuple(ids) != tuple(x[:2]):
            raise ShapeError(f"last_token: hidden states (B, N, C) and token ids (B, N), got {x} and {ids}")
        return (x[0], x[2])

    torch = Torch(call="last_token({0}, {1}, pad={pad})", helpers=("last_token",))

    def eval(w, x, ids, *, pad):
        last = (th.arange(ids.shape[1], device=ids.device) * (ids != pad)).argmax(-1)
        return x[th.arange(x.shape[0], device=x.device), last]

    def onnx(e, x, ids, *, pad):
        keep = e("Cast", e("Not", e("Equal", ids, e.const(np.int64(pad), f"pad_{pad}"))), to=6)  # INT32
        positions = e.const(np.arange(e.shape(ids)[1], dtype=np.int32), "positions")
        last = e("ArgMax", e("Mul", keep, positions), axis=1, keepdims=1)  # B, 1: the first maximum
        return e("GatherND", x, last, batch_dims=1)

    def relax(e, x, ids, *, pad):
        keep = e("astype", e("not_equal", ids, e.const(np.int64(pad))), "int32")
        positions = e.const(np.arange(e.shape(ids)[1], dtype=np.int32))
        last = e("argmax", e("multiply", keep, positions), axis=1, keepdims=True)  # B, 1
        return e("gather_nd", x, last, batch_dims=1)


@op("mean", SHAPE_ONLY)
class Mean:
    """Average over the token dim: (B, N, C) -> (B, C) (Swin's global average pool); `skip`
    leading tokens left out (DINOv2's classifier averages the patch tokens, not [class] and the
    registers). NB: the adds are not counted, as in the papers."""

    def shape(x, *, dim=1, skip=0):
        return (x[0], *x[2:])

    torch = Torch(call=lambda ops, a: f"{ops[0]}[:, {a['skip']}:].mean(dim=1)" if a.get("skip")
                  else f"{ops[0]}.mean(dim={a.get('dim', 1)})")

    def eval(w, x, *, dim=1, skip=0):
        return x[:, skip:].mean(dim=1) if skip else x.mean(dim=dim)

    def onnx(e, x, *, dim=1, skip=0):
        if skip:
            x = e("Slice", x, e.ints(skip), e.ints(2**62), e.ints(1))
        return e("ReduceMean", x, e.ints(dim), keepdims=0)

    def relax(e, x, *, dim=1, skip=0):
        if skip:
            x = e("strided_slice", x, axes=[1], begin=[skip], end=[e.dims(x)[1]])
        return e("mean", x, axis=[dim])


@op("patch_merge", SHAPE_ONLY)
class PatchMerge:
    """Swin patch merging gather (§3.3): (B, H·W, C) -> (B, H/2·W/2, 4C), concatenating the
    2×2 neighbours in the official order x0=(0,0), x1=(1,0), x2=(0,1), x3=(1,1)."""

    def shape(x, *, H, W):
        B, L, C = x
        h = exact_div(H, 2, f"patch merging: map height {H} / 2")
        w = exact_div(W, 2, f"patch merging: map width {W} / 2")
        return (B, h * w, 4 * C)

    torch = Torch(call="patch_merge({0}, {H}, {W})", helpers=("patch_merge",), comment="B, H/2*W/2, 4*C")

    def eval(w, x, *, H, W):
        B, _, C = x.shape
        x = x.view(B, H, W, C)
        parts = (x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2])  # official order
        return th.cat(parts, dim=-1).view(B, -1, 4 * C)  # B, H/2*W/2, 4C

    # (B, H·W, C) -> (B, H/2, 2, W/2, 2, C) -> (B, H/2, W/2, [col, row], C): channel block
    # k = row + 2·col, the official x0..x3 order.
    def onnx(e, x, *, H, W):
        C = e.shape(x)[-1]
        y = e("Reshape", x, e.ints(-1, H // 2, 2, W // 2, 2, C))
        y = e("Transpose", y, perm=[0, 1, 3, 4, 2, 5])
        return e("Reshape", y, e.ints(-1, (H // 2) * (W // 2), 4 * C))

    def relax(e, x, *, H, W):
        C = e.shape(x)[-1]
        y = e("reshape", x, (-1, H // 2, 2, W // 2, 2, C))
        y = e("permute_dims", y, [0, 1, 3, 4, 2, 5])
        return e("reshape", y, (-1, (H // 2) * (W // 2), 4 * C))


@op("chunk", SHAPE_ONLY)
class Chunk:
    """Part `index` of `parts` equal slices of the last dim: (..., parts·k) -> (..., k).
    QKV fusion (passes.fuse_qkv) splits the fused projection back into q, k and v with it."""

    def shape(x, *, parts, index):
        return (*x[:-1], exact_div(x[-1], parts, f"chunk of width {x[-1]} into {parts}"))

    torch = Torch(call="{0}.chunk({parts}, dim=-1)[{index}]")

    def eval(w, x, *, parts, index):
        return x.chunk(parts, dim=-1)[index]

    # One Split / split serves all the chunks of a tensor (the q, k, v of a fused projection).
    def onnx(e, x, *, parts, index):
        return e.cached(("split", x, parts), lambda: e("Split", x, axis=-1, num_outputs=parts, outputs=parts))[index]

    def relax(e, x, *, parts, index):
        t = e.cached(("split", x, parts), lambda: e("split", x, parts, axis=-1))
        return e.item(t, index)


@op("split", SHAPE_ONLY)
class Split:
    """Part `index` of slices of widths `sizes` of the last dim (GQA's fused q|k|v: h·d, kv·d,
    kv·d, as Hugging Face's fused layouts order them); passes.fuse_qkv splits with it where the
    parts differ in width (`chunk` where they are equal)."""

    def shape(x, *, sizes, index):
        if isinstance(x[-1], int) and sum(sizes) != x[-1]:
            raise ShapeError(f"split of width {x[-1]} into {list(sizes)}")
        return (*x[:-1], sizes[index])

    torch = Torch(call=lambda ops, a: f"{ops[0]}.split([{', '.join(map(str, a['sizes']))}], dim=-1)[{a['index']}]")

    def eval(w, x, *, sizes, index):
        return x.split(list(sizes), dim=-1)[index]

    # One Split / split serves all the parts of a tensor, as for `chunk`.
    def onnx(e, x, *, sizes, index):
        return e.cached(("split", x, tuple(sizes)), lambda: e("Split", x, e.ints(*sizes), axis=-1,
                                                                outputs=len(sizes)))[index]

    def relax(e, x, *, sizes, index):
        cuts = [sum(sizes[:i + 1]) for i in range(len(sizes) - 1)]
        return e.item(e.cached(("split", x, tuple(sizes)), lambda: e("split", x, cuts, axis=-1)), index)


def recipe_shape(recipe: tuple) -> tuple:
    """The shape of a constant's recipe `(op, attrs, operand recipes)`, by the ops' own rules."""
    name, attrs, operands = recipe
    return tuple(get(name).shape(*(recipe_shape(r) for r in operands), **dict(attrs)))


def recipe_value(recipe: tuple):
    """Evaluate a constant's recipe with the ops' `eval` rules."""
    name, attrs, operands = recipe
    return get(name).eval({}, *(recipe_value(r) for r in operands), **dict(attrs))


@op("constant", SOURCE, CONSTANT)
class Constant:
    """A tensor known at build time (sinusoids, shift masks, position ids), held as the recipe
    `(op, attrs, operand recipes)` that computes it; made by passes.fold_constants. A buffer,
    not a parameter."""

    def shape(*, recipe):
        return recipe_shape(recipe)

    torch = Torch(call="self.{mod}", init="constant({recipe!r})", helpers=("constant",))

    def eval(w, *, recipe):
        return recipe_value(recipe)

    def onnx(e, *, recipe):
        return e.const(recipe_value(recipe).numpy(), f"constant_{recipe[0]}")

    def relax(e, *, recipe):
        return e.const(recipe_value(recipe).numpy())


@op("zeros", SOURCE, CONSTANT)
class Zeros:
    """Zeros of a given shape, batch first (DETR's decoder input before the first layer)."""

    def shape(*, shape):
        return tuple(shape)

    torch = Torch(call="{ref}.new_zeros({shape})")

    def eval(w, *, shape):
        return th.zeros(*shape)

    def onnx(e, *, shape):
        if not e.dynamic_batch:
            return e.const(np.zeros(shape, dtype=np.float32), "zeros")
        from onnx import TensorProto, helper

        zero = helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0])
        return e("ConstantOfShape", e.batch_shape(e.inputs[0].name, *shape[1:]), value=zero)

    def relax(e, *, shape):
        if not e.dynamic_batch:
            return e.const(np.zeros(shape, dtype=np.float32))
        return e("zeros", (e.batch_var, *shape[1:]), "float32")
