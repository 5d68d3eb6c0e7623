"""Lowering: a validated `ModelSpec` -> the unfused IR.

Attention is emitted as its primitive ops (projections, QKᵀ, scale, bias/mask, softmax, ·V,
output projection) so that the passes have something to fuse. Swin's windowed attention is
emitted already partitioned (roll -> window_partition -> attention per window ->
window_reverse -> roll back), so the FLOPs of the lowered graph are those of W-MSA; a model
declared with global attention can be windowed later by `passes.partition_windows`.

Module paths follow the official implementations where one exists: Swin's
`layers.{i}.blocks.{j}.attn.relative_position_bias_table`, timm's ViT `blocks.{i}.mlp.fc1`.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any

import sympy

from graphspec import lower_cnn
from graphspec.ir import Graph, Node
from graphspec.ops import ShapeError, get
from graphspec.spec import Attn, ModelSpec, SpecError, StackSpec
from graphspec.spec.errors import Loc

SYMBOLS = {name: sympy.Symbol(name, positive=True, integer=True) for name in ("B", "N", "T", "H", "W")}


class Builder:
    """Emits nodes into a Graph under a module scope, inferring shapes with the op rules."""

    def __init__(self, name: str):
        self.g = Graph(name)
        self.scope: list[str] = []
        self.loc: Loc | None = None

    @property
    def path(self) -> str:
        return ".".join(self.scope)

    def child(self, local: str) -> str:
        return f"{self.path}.{local}" if self.scope else local

    @contextmanager
    def module(self, local: str, cls: str, **args: Any):
        self.scope.append(local)
        self.g.set_module(self.path, cls, **args)
        try:
            yield self.path
        finally:
            self.scope.pop()

    def emit(self, op: str, inputs: tuple[str, ...] | list[str], local: str, **attrs: Any) -> str:
        opdef = get(op)
        attrs = {**{k: v for k, v in opdef.defaults.items() if k not in attrs}, **attrs}
        in_shapes = [self.g[i].shape for i in inputs]
        try:
            shape = tuple(opdef.shape(*in_shapes, **attrs))
        except ShapeError as e:
            where = f" in {self.child(local)}"
            raise SpecError.at(self.loc, f"{e}{where}", _shape_fix(str(e))) from None
        dtype = "i64" if op in ("positions", "zeros_like") or (op == "input" and attrs.get("kind") == "tokens") else "f32"
        name = self.g.fresh(self.child(local))
        self.g.add(Node(name, op, tuple(inputs), tuple(attrs.items()), shape, dtype, self.path,
                        str(self.loc) if self.loc else None))
        return name

    def shape(self, name: str) -> tuple:
        return self.g[name].shape


def _shape_fix(msg: str) -> str:
    if "window" in msg:
        return "choose a window M that divides the feature map of every stage, or change img_size"
    if "patch" in msg:
        return "make img_size a multiple of the patch size"
    return "check the dims declared in the spec"


def lower(spec: ModelSpec, symbolic: bool = False) -> Graph:
    """Build the unfused IR of `spec`. With `symbolic`, batch, sequence length and image size
    are sympy symbols B, N (T for the target) and H = W."""
    b = Builder(spec.name)
    b.g.meta.update(spec=spec.name, paper=spec.paper, repo=spec.repo, symbolic=symbolic)
    inp = spec.input
    B = SYMBOLS["B"] if symbolic else inp.batch
    b.g.set_module("", _root_class(spec))
    b.loc = spec.loc("input")
    encoder = next((s for s in spec.stacks if s.role == "encoder"), None)
    decoder = next((s for s in spec.stacks if s.role == "decoder"), None)
    two = encoder is not None and decoder is not None
    outputs: list[str] = []

    pos = None
    if inp.kind == "image":
        Hs, Ws = (SYMBOLS["H"], SYMBOLS["W"] if inp.width else SYMBOLS["H"]) if symbolic else inp.hw
        x = b.emit("input", (), "image", shape=(B, inp.channels, Hs, Ws), kind="image")
        if spec.backbone is not None:
            b.loc = spec.loc("backbone")
            x = lower_cnn.resnet(b, spec.backbone, x, prefix="backbone" if spec.stacks else "")
            grid = b.shape(x)[2:]
            if spec.embed.kind == "project":
                b.loc = spec.loc("embed")
                x, grid, pos = lower_cnn.project(b, spec, x)
        else:
            x, grid = _patch_embed(b, spec, x)
    else:
        N = SYMBOLS["N"] if symbolic else inp.seq_len
        src_name = "src" if two else "input_ids"
        ids = b.emit("input", (), src_name, shape=(B, N), kind="tokens")
        x = _token_embed(b, spec, ids, first=True)
        grid = None

    memory = None
    outs: list[str] = []
    if encoder is not None:
        taps = lower_cnn.mla_taps(spec, encoder)
        x, outs = _stack(b, spec, encoder, x, grid, prefix="encoder" if two else "", memory=None, pos=(pos, None),
                         taps=taps)
        memory = x
    if decoder is not None and decoder.queries:
        b.loc = decoder.loc
        x, qpos = lower_cnn.queries(b, decoder, B)
        x, outs = _stack(b, spec, decoder, x, None, prefix="decoder", memory=memory, pos=(qpos, pos))
    elif decoder is not None:
        if two:
            T = SYMBOLS["T"] if symbolic else inp.tgt_len
            b.loc = spec.loc("input")
            tgt = b.emit("input", (), "tgt", shape=(B, T), kind="tokens")
            x = _token_embed(b, spec, tgt, first=False)
        x, _ = _stack(b, spec, decoder, x, None, prefix="decoder" if two else "", memory=memory)
    if spec.head.kind == "segmentation":
        b.loc = spec.loc("head")
        b.g.outputs = (lower_cnn.segmentation_head(b, spec, outs or [x], b.g.meta["grid"]),)
        return b.g
    if spec.head.kind == "detection":
        b.loc = spec.loc("head")
        b.g.outputs = tuple(lower_cnn.detection_head(b, spec, outs or [x]))
        return b.g
    x, extra = _head(b, spec, x)
    outputs.append(x)
    outputs.extend(extra)
    b.g.outputs = tuple(outputs)
    return b.g


def _root_class(spec: ModelSpec) -> str:
    words = [w for w in spec.name.replace("-", "_").split("_") if w]
    return "".join(w[:1].upper() + w[1:] for w in words) or "Model"


# -- embeddings ------------------------------------------------------------------------------
def _patch_embed(b: Builder, spec: ModelSpec, img: str) -> tuple[str, tuple]:
    e = spec.embed
    b.loc = spec.loc("embed")
    with b.module("patch_embed", "PatchEmbed", patch=e.patch, in_chans=spec.input.channels, dim=e.dim,
                  norm=e.norm):
        x = b.emit("conv2d", (img,), "proj", out_channels=e.dim, kernel=e.patch, stride=e.patch,
                   in_channels=spec.input.channels)
        H, W = b.shape(x)[2:]
        b.g.meta["grid"] = (H, W)
        x = b.emit("to_tokens", (x,), "tokens")
        if e.norm:
            x = b.emit("layer_norm", (x,), "norm", dim=e.dim, eps=e.eps)
    if e.cls_token:
        tok = b.emit("parameter", (), "cls_token", shape=(1, 1, e.dim), init="trunc_normal")
        x = b.emit("prepend", (tok, x), "with_cls")
    if e.pos == "learned":
        pe = b.emit("parameter", (), "pos_embed", shape=(1, b.shape(x)[1], e.dim), init="trunc_normal")
        x = b.emit("add", (x, pe), "with_pos")
    elif e.pos == "sinusoidal":
        pe = b.emit("sinusoidal", (), "pos_encoding", length=b.shape(x)[1], dim=e.dim)
        x = b.emit("add", (x, pe), "with_pos")
    if e.dropout:
        x = b.emit("dropout", (x,), "pos_drop", p=e.dropout)
    return x, (H, W)


def _token_embed(b: Builder, spec: ModelSpec, ids: str, first: bool) -> str:
    e = spec.embed
    b.loc = spec.loc("embed")
    N = b.shape(ids)[1]
    with b.module("embed", "TokenEmbedding", vocab=e.vocab, dim=e.dim, pos=e.pos, types=e.types,
                  norm=e.norm, scale=e.scale):
        x = b.emit("embedding", (ids,), "tokens", num=e.vocab, dim=e.dim, weights="embed.tokens")
        if e.scale:  # Vaswani §3.4: embeddings are multiplied by √d_model
            x = b.emit("scale", (x,), "scaled", k=math.sqrt(e.dim))
        if e.pos == "sinusoidal":
            pe = b.emit("sinusoidal", (), "pos_encoding", length=N, dim=e.dim)
            x = b.emit("add", (x, pe), "with_pos")
        elif e.pos == "learned":
            if e.max_len is None:
                raise SpecError.at(spec.loc("embed"), "learned positions need a table size",
                                   "write pos=learned(max_len)")
            pos = b.emit("positions", (), "position_ids", length=N)
            pe = b.emit("embedding", (pos,), "pos", num=e.max_len, dim=e.dim, weights="embed.pos")
            x = b.emit("add", (x, pe), "with_pos")
        if e.types:
            tt = b.emit("zeros_like", (ids,), "token_type_ids")
            te = b.emit("embedding", (tt,), "types", num=e.types, dim=e.dim, weights="embed.types")
            x = b.emit("add", (x, te), "with_types")
        if e.norm:
            x = b.emit("layer_norm", (x,), "norm", dim=e.dim, eps=e.eps, weights="embed.norm")
        if e.dropout:
            x = b.emit("dropout", (x,), "drop", p=e.dropout)
    return x


# -- transformer stacks ----------------------------------------------------------------------
def _stack(b: Builder, spec: ModelSpec, s: StackSpec, x: str, grid: tuple | None, prefix: str,
           memory: str | None, pos: tuple = (None, None), taps: tuple = ()) -> tuple[str, list[str]]:
    """A stack of blocks (and stages); returns the output and, with `aux`, every block's output
    through the final norm (DETR's return_intermediate), or the outputs of the blocks numbered
    in `taps` (1-based; SETR-MLA's streams)."""
    b.loc = s.loc
    staged = len(s.depths) > 1 or s.downsample != "none"
    total = sum(s.depths)
    dim = s.dim
    index = 0
    outs: list[str] = []
    scope = [prefix] if prefix else []
    b.scope.extend(scope)
    if prefix:
        b.g.set_module(prefix, "Encoder" if s.role == "encoder" else "Decoder")
    try:
        for si, (depth, heads) in enumerate(zip(s.depths, s.heads, strict=True)):
            stage_ctx = b.module(f"layers.{si}", "Stage", dim=dim, depth=depth, heads=heads) if staged else _null()
            with stage_ctx:
                for bi in range(depth):
                    dpr = s.drop_path * index / max(total - 1, 1)
                    window = shift = None
                    if s.attention.kind == "windowed":
                        if grid is None:
                            raise SpecError.at(s.loc, "windowed attention needs an image (a 2-D token grid)",
                                               "use attention: global for token inputs")
                        window, shift = s.attention.window, 0
                        H, W = grid
                        if _known(H) and _known(W) and min(H, W) <= window:  # official: one window, no shift
                            window = min(H, W)
                        elif s.attention.shift and bi % 2 == 1:
                            shift = window // 2
                        _check_window(spec, s, si, grid, window)
                    with b.module(f"blocks.{bi}", "Block", dim=dim, heads=heads, window=window, shift=shift,
                                  grid=grid, norm=s.norm):
                        x = _block(b, s, x, dim, heads, window, shift, grid, memory, dpr, pos)
                    index += 1
                    if s.aux and s.final_norm and index < total:
                        outs.append(b.emit("layer_norm", (x,), "norm", dim=dim, eps=s.eps, weights=b.child("norm")))
                    elif index in taps:
                        outs.append(x)
                if staged and s.downsample == "patch_merging" and si < len(s.depths) - 1:
                    with b.module("downsample", "PatchMerging", dim=dim, grid=grid):
                        H, W = grid
                        x = b.emit("patch_merge", (x,), "merge", H=H, W=W)
                        x = b.emit("layer_norm", (x,), "norm", dim=4 * dim, eps=s.eps)
                        x = b.emit("linear", (x,), "reduction", out_features=2 * dim, bias=False,
                                   in_features=4 * dim)
                    grid = (_half(H), _half(W))
                    dim *= 2
        if s.final_norm:
            x = b.emit("layer_norm", (x,), "norm", dim=dim, eps=s.eps, **({"weights": b.child("norm")} if s.aux else {}))
    finally:
        del b.scope[len(b.scope) - len(scope):]
    return x, ([*outs, x] if s.aux else outs)


@contextmanager
def _null():
    yield None


def _known(d: Any) -> bool:
    return isinstance(d, int)


def _half(d: Any) -> Any:
    return d // 2 if isinstance(d, int) else d / 2


def _check_window(spec: ModelSpec, s: StackSpec, si: int, grid: tuple, window: int) -> None:
    H, W = grid
    if _known(H) and _known(W) and (H % window or W % window):
        common = math.gcd(H, W)
        divisors = [m for m in range(2, min(common, 4096) + 1) if common % m == 0]
        raise SpecError.at(
            spec.loc(s.role, "attention") or s.loc,
            f"window {window} does not divide the {H}×{W} map of stage {si + 1}",
            f"use a window in {divisors[:8]} (graphspec does not pad windows), or change img_size",
        )


def _block(b: Builder, s: StackSpec, x: str, dim: int, heads: int, window, shift, grid, memory, dpr,
           pos: tuple = (None, None)) -> str:
    """One transformer block; pre-LN: x = x + attn(norm1(x)); post-LN: x = norm1(x + attn(x)).
    With `pos_every_layer` (DETR), pos[0] is added to the self-attention's queries and keys,
    and pos[1] to the cross-attention's keys (the memory's positions)."""
    self_pos, mem_pos = pos if s.pos_every_layer else (None, None)
    pre = s.norm == "pre"
    norms = ["norm1", "norm2", "norm3"] if (memory is not None and s.cross) else ["norm1", "norm2"]

    def residual(x: str, sub, norm_name: str) -> str:
        h = b.emit("layer_norm", (x,), norm_name, dim=dim, eps=s.eps) if pre else x
        h = sub(h)
        if s.dropout:
            h = b.emit("dropout", (h,), "drop", p=s.dropout)
        if dpr:
            h = b.emit("drop_path", (h,), "drop_path", p=round(dpr, 6))
        x = b.emit("add", (x, h), "residual")
        return x if pre else b.emit("layer_norm", (x,), norm_name, dim=dim, eps=s.eps)

    causal = s.attention.kind == "causal"
    x = residual(x, lambda h: _attention(b, s, h, h, dim, heads, window, shift, grid, causal, "attn",
                                         self_pos, self_pos), norms[0])
    if memory is not None and s.cross:
        x = residual(x, lambda h: _attention(b, s, h, memory, dim, heads, None, None, None, False, "cross_attn",
                                             self_pos, mem_pos), norms[1])
    x = residual(x, lambda h: _mlp(b, s, h, dim), norms[-1])
    return x


def _attention(b: Builder, s: StackSpec, x: str, kv: str, dim: int, heads: int, window, shift, grid,
               causal: bool, local: str, pos_q: str | None = None, pos_k: str | None = None) -> str:
    """Multi-head attention, unfused (Vaswani §3.2.2); windowed per Swin §3.2 when `window`.
    `pos_q`/`pos_k` are added to the query/key inputs only, never to the values (DETR §3.2)."""
    windowed = window is not None
    if windowed:
        H, W = grid
        if shift:  # cyclic shift
            x = b.emit("roll", (x,), "shifted", H=H, W=W, shift=-shift)
        x = b.emit("window_partition", (x,), "windows", H=H, W=W, window=window)  # nW*B, M*M, C
        kv = x
    cls = "WindowAttention" if windowed else ("CrossAttention" if kv is not x else "Attention")
    xq = b.emit("add", (x, pos_q), f"{local}_query") if pos_q is not None else x
    xk = kv if pos_k is None else (xq if (kv is x and pos_k is pos_q) else b.emit("add", (kv, pos_k), f"{local}_key"))
    with b.module(local, cls, dim=dim, heads=heads, window=window, causal=causal):
        q = b.emit("linear", (xq,), "q", out_features=dim, bias=s.qkv_bias, in_features=dim)
        k = b.emit("linear", (xk,), "k", out_features=dim, bias=s.qkv_bias, in_features=b.shape(kv)[-1])
        v = b.emit("linear", (kv,), "v", out_features=dim, bias=s.qkv_bias, in_features=b.shape(kv)[-1])
        qh = b.emit("split_heads", (q,), "q_heads", heads=heads)  # B, h, N, d
        kh = b.emit("split_heads", (k,), "k_heads", heads=heads)
        vh = b.emit("split_heads", (v,), "v_heads", heads=heads)
        kt = b.emit("transpose", (kh,), "k_t", dims=(-2, -1))  # B, h, d, S
        sc = b.emit("matmul", (qh, kt), "scores")  # B, h, N, S
        sc = b.emit("scale", (sc,), "scaled", k=(dim // heads) ** -0.5)
        if windowed:
            bias = b.emit("rel_pos_bias", (), "rel_pos_bias", window=window, heads=heads, weights=b.path)
            sc = b.emit("add", (sc, bias), "biased")
            if shift:
                m = b.emit("shift_mask", (), "shift_mask", H=grid[0], W=grid[1], window=window, shift=shift)
                sc = b.emit("add_window_mask", (sc, m), "masked")
        if causal:
            sc = b.emit("causal_mask", (sc,), "masked")
        p = b.emit("softmax", (sc,), "probs", dim=-1)
        if s.attn_dropout:
            p = b.emit("dropout", (p,), "attn_drop", p=s.attn_dropout)
        o = b.emit("matmul", (p, vh), "context")  # B, h, N, d
        o = b.emit("merge_heads", (o,), "merged")  # B, N, C
        o = b.emit("linear", (o,), "proj", out_features=dim, bias=s.bias, in_features=dim)
    if windowed:
        o = b.emit("window_reverse", (o,), "unwindowed", H=grid[0], W=grid[1], window=window)
        if shift:  # reverse cyclic shift
            o = b.emit("roll", (o,), "unshifted", H=grid[0], W=grid[1], shift=shift)
    return o


def lower_attention_block(dim: Any, heads: Any, grid: tuple, window: Any = None, shift: Any = 0,
                          batch: Any = 1) -> Graph:
    """One multi-head self-attention over an h×w token map (B, h·w, C), through the same
    `_attention` as whole models: global (Swin Eq. 1, MSA) or with M×M windows (Eq. 2, W-MSA).

    Every argument may be a sympy symbol, so that the IR's MAC count can be compared with
    Ω(MSA) = 4hwC² + 2(hw)²C and Ω(W-MSA) = 4hwC² + 2M²hwC as identities.
    """
    b = Builder("attention_block")
    b.g.meta.update(spec="attention_block", symbolic=not all(_known(d) for d in (dim, heads, *grid)))
    b.g.set_module("", "AttentionBlock")
    h, w = grid
    kind = "windowed" if window is not None else "global"
    s = StackSpec(role="encoder", dim=dim, heads=(heads,), depths=(1,), d_ff=None, mlp_ratio=4.0,
                  attention=Attn(kind, window, bool(shift)))
    x = b.emit("input", (), "x", shape=(batch, h * w, dim), kind="features")
    y = _attention(b, s, x, x, dim, heads, window, shift or None, grid, False, "attn")
    b.g.outputs = (y,)
    return b.g


def _mlp(b: Builder, s: StackSpec, x: str, dim: int) -> str:
    hidden = s.d_ff if s.d_ff is not None else int(dim * s.mlp_ratio)
    with b.module("mlp", "Mlp", dim=dim, hidden=hidden, act=s.act):
        h = b.emit("linear", (x,), "fc1", out_features=hidden, bias=s.bias, in_features=dim)
        if s.act == "relu":
            h = b.emit("relu", (h,), "act")
        else:
            h = b.emit("gelu", (h,), "act", approximate="tanh" if s.act == "gelu_tanh" else "none")
        if s.dropout:
            h = b.emit("dropout", (h,), "drop", p=s.dropout)
        h = b.emit("linear", (h,), "fc2", out_features=dim, bias=s.bias, in_features=hidden)
    return h


# -- heads -------------------------------------------------------------------------------------
def _head(b: Builder, spec: ModelSpec, x: str) -> tuple[str, list[str]]:
    h = spec.head
    b.loc = spec.loc("head")
    dim = b.shape(x)[-1]
    if h.kind == "lm":
        if h.tied:  # the output projection shares the token embedding (Vaswani §3.4, GPT)
            y = b.emit("linear", (x,), "lm_head", out_features=spec.embed.vocab, bias=h.bias, in_features=dim,
                       weights="embed.tokens")
        else:
            y = b.emit("linear", (x,), "lm_head", out_features=spec.embed.vocab, bias=h.bias, in_features=dim)
        return y, []
    if h.kind == "classifier" and len(b.shape(x)) == 4:  # a CNN: global average pool, torchvision's `fc`
        pooled = b.emit("global_pool", (x,), "avgpool")
        return b.emit("linear", (pooled,), "fc", out_features=h.classes, bias=True, in_features=b.shape(x)[1]), []
    if h.kind == "classifier":
        pooled = b.emit("select" if h.pool == "cls" else "mean", (x,), "pool", **({"index": 0} if h.pool == "cls" else {"dim": 1}))
        y = b.emit("linear", (pooled,), "head", out_features=h.classes, bias=True, in_features=dim)
        return y, []
    if h.kind == "pooler":  # BERT: tanh(W h_[CLS] + b)
        with b.module("pooler", "Pooler", dim=dim):
            first = b.emit("select", (x,), "first", index=0)
            y = b.emit("linear", (first,), "dense", out_features=dim, bias=True, in_features=dim)
            y = b.emit("tanh", (y,), "act")
        return x, [y]
    return x, []
