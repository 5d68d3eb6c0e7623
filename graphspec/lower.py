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

import gc
import math
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import sympy

from graphspec import lower_cnn, vocab
from graphspec.ir import Graph, Node
from graphspec.ops import ShapeError, get
from graphspec.spec import Attn, ModelSpec, SpecError, StackSpec
from graphspec.spec.errors import Loc
from graphspec.vocab import attention, blocks, norms, positions, stages
from graphspec.vocab.heads import HeadAt, use_of

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
        dtype = "i64" if op in ("positions", "padded_positions", "zeros_like") or (op == "input" and attrs.get("kind") == "tokens") else "f32"
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


@contextmanager
def _gc_paused():
    """The cyclic collector off while a graph is built: lowering allocates ~10^5 long-lived nodes
    and frees little, so each full collection rescans everything built so far (half the time of
    lowering 4,096 layers); reference counting still frees the temporaries."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def lower(spec: ModelSpec, symbolic: bool = False) -> Graph:
    """Build the unfused IR of `spec`. With `symbolic`, batch, sequence length and image size
    are sympy symbols B, N (T for the target) and H = W."""
    with _gc_paused():
        return _lower(spec, symbolic)


def _lower(spec: ModelSpec, symbolic: bool) -> Graph:
    b = Builder(spec.name)
    b.g.meta.update(spec=spec.name, paper=spec.paper, repo=spec.repo, symbolic=symbolic)
    inp = spec.input
    B = SYMBOLS["B"] if symbolic else inp.batch
    b.g.set_module("", _root_class(spec))
    b.loc = spec.loc("input")
    encoder = next((s for s in spec.stacks if s.role == "encoder"), None)
    decoder = next((s for s in spec.stacks if s.role == "decoder"), None)
    two = encoder is not None and decoder is not None

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
    b.loc = spec.loc("head")
    b.g.outputs = tuple(use_of(spec.head).lower(b, HeadAt(spec, outs), x))
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
                   in_channels=spec.input.channels, **({"crop": True} if _crops(e, b.shape(img)) else {}))
        H, W = b.shape(x)[2:]
        b.g.meta["grid"] = (H, W)
        x = b.emit("to_tokens", (x,), "tokens")
        if e.norm_use is not None:
            x = norms.apply(b, e.norm_use, x, "norm")
        elif e.norm:
            x = b.emit("layer_norm", (x,), "norm", dim=e.dim, eps=e.eps)
    if e.cls_token:
        tok = b.emit("parameter", (), "cls_token", shape=(1, 1, e.dim), init="trunc_normal")
        x = b.emit("prepend", (tok, x), "with_cls")
    if e.dist_token:  # Touvron et al. 2021 §4: DeiT's distillation token, after [class], with a position
        dist = b.emit("parameter", (), "dist_token", shape=(1, 1, e.dim), init="trunc_normal")
        x = b.emit("prepend", (dist, x), "with_dist", at=1)
    x = _pos(e).lower(b, positions.EmbedAt("patches", b.shape(x)[1], e.dim, e.max_len), x)
    if e.registers:  # Darcet et al. 2024, "Vision Transformers Need Registers": no position of their own
        reg = b.emit("parameter", (), "register_tokens", shape=(1, e.registers, e.dim), init="trunc_normal")
        x = b.emit("prepend", (reg, x), "with_registers", **({"at": 1} if e.cls_token else {}))
    if e.dropout:
        x = b.emit("dropout", (x,), "pos_drop", p=e.dropout)
    return x, (H, W)


def _crops(e, image: tuple) -> bool:
    """`patches(crop=true)` on an image the patches do not tile (a symbolic size may not)."""
    return e.crop and any(not isinstance(d, int) or d % e.patch for d in image[2:])


def _token_embed(b: Builder, spec: ModelSpec, ids: str, first: bool) -> str:
    e = spec.embed
    b.loc = spec.loc("embed")
    N = b.shape(ids)[1]
    pos = _pos(e)
    if _flat_embedding(spec):  # Hugging Face's decoder-only LMs: one `embed_tokens` table at the root
        x = b.emit("embedding", (ids,), "embed_tokens", num=e.vocab, dim=e.dim)
        if e.scale:  # Gemma: embeddings times √d_model
            x = b.emit("scale", (x,), "embed_scale", k=math.sqrt(e.dim))
        if e.dropout:
            x = b.emit("dropout", (x,), "embed_drop", p=e.dropout)
        return x
    with b.module("embed", "TokenEmbedding", vocab=e.vocab, dim=e.dim, pos=e.pos, types=e.types,
                  norm=e.norm, scale=e.scale):
        x = b.emit("embedding", (ids,), "tokens", num=e.vocab, dim=e.dim, weights="embed.tokens")
        if e.scale:  # Vaswani §3.4: embeddings are multiplied by √d_model
            x = b.emit("scale", (x,), "scaled", k=math.sqrt(e.dim))
        if e.pos == "learned" and e.max_len is None:
            raise SpecError.at(spec.loc("embed"), "learned positions need a table size", "write pos=learned(max_len)")
        x = pos.lower(b, positions.EmbedAt("tokens", N, e.dim, e.max_len, ids=ids), x)
        if e.types:
            tt = b.emit("zeros_like", (ids,), "token_type_ids")
            te = b.emit("embedding", (tt,), "types", num=e.types, dim=e.dim, weights="embed.types")
            x = b.emit("add", (x, te), "with_types")
        if e.norm_use is not None:  # a norm construct (ModernBERT's LayerNorm without bias)
            x = norms.apply(b, e.norm_use, x, "norm", weights="embed.norm")
        elif e.norm:
            x = b.emit("layer_norm", (x,), "norm", dim=e.dim, eps=e.eps, weights="embed.norm")
        if e.dropout:
            x = b.emit("dropout", (x,), "drop", p=e.dropout)
        if e.proj:  # ELECTRA (Clark et al. 2020 §3.2): small embeddings, projected to the hidden width
            x = b.emit("linear", (x,), "proj", out_features=e.proj, bias=True, in_features=e.dim, weights="embed.proj")
    return x


def _pos(e) -> vocab.Use:
    return e.pos_use or vocab.use("pos", e.pos, **({"max_len": e.max_len} if e.pos == "learned" else {}))


def _flat_embedding(spec: ModelSpec) -> bool:
    """`names: hf` on a plain token embedding (no added positions, types or norm)."""
    e = spec.embed
    return (bool(spec.stacks) and spec.stacks[0].names == "hf" and e.kind == "tokens" and not e.types
            and not e.norm and not e.proj and (e.pos_use is None or positions.attention_only(e.pos_use) or e.pos == "none"))


# -- transformer stacks ----------------------------------------------------------------------
def _stack(b: Builder, spec: ModelSpec, s: StackSpec, x: str, grid: tuple | None, prefix: str,
           memory: str | None, pos: tuple = (None, None), taps: tuple = ()) -> tuple[str, list[str]]:
    """A stack of blocks (and stages), each built by the vocabulary's constructs; returns the
    output and, with `aux`, every block's output through the final norm (DETR's
    return_intermediate), or the outputs of the blocks numbered in `taps` (1-based; SETR-MLA)."""
    b.loc = s.loc
    staged = len(s.depths) > 1 or s.downsample != "none"
    total = sum(s.depths)
    dim = s.dims[0] if s.dims else s.dim
    index = 0
    outs: list[str] = []
    names = blocks.Names(s.names)
    scope = [prefix] if prefix else []
    b.scope.extend(scope)
    if prefix:
        b.g.set_module(prefix, "Encoder" if s.role == "encoder" else "Decoder")
    masks = s.masks or (_mask_of(s.attention),)
    placement = vocab.get("placement", s.norm) if s.block is None else None
    items = s.block or blocks.items_of(vocab.Use(placement), memory is not None and s.cross)
    norm_names = blocks.norm_names(vocab.Use(placement), names) if placement else ()
    norm = s.norm_kind or vocab.use("norm", "layer_norm", eps=s.eps)
    epos = spec.embed.pos_use
    inner_pos = epos if epos is not None and positions.attention_only(epos) else None
    mlp = s.mlp or vocab.use("mlp", "mlp", d_ff=s.d_ff, act=vocab.use("act", s.act), ratio=s.mlp_ratio)
    down = s.down_use or vocab.Use(vocab.get("downsample", s.downsample))
    shared = None  # once per stack, before its blocks (T5's relative position bias)
    stack_hook = inner_pos.hook("stack") if inner_pos is not None else None
    if stack_hook:
        shared = stack_hook(b, inner_pos, masks[0], s.heads[0], x)
    after_first = epos.hook("after_first_block") if epos is not None else None  # CPVT's PEG
    try:
        for si, (depth, heads) in enumerate(zip(s.depths, s.heads, strict=True)):
            stage_ctx = b.module(f"layers.{si}", "Stage", dim=dim, depth=depth, heads=heads) if staged else _null()
            with stage_ctx:
                if stack_hook and si > 0 and (heads != s.heads[si - 1] or b.shape(x)[1] != b.shape(shared)[-1]):
                    # per-stage heads (or a new length): the stage's own table, `layers.{si}.relative_attention_bias`
                    shared = stack_hook(b, inner_pos, masks[index] if len(masks) > 1 else masks[0], heads, x)
                for bi in range(depth):
                    mask = masks[index] if len(masks) > 1 else masks[0]
                    at = blocks.BlockAt(grid, si, bi, spec.loc(s.role, "attention") or s.loc)
                    plan = mask.hook("plan")(mask, at)
                    window, shift = plan.get("window"), plan.get("shift")
                    kvh = s.kv_heads or heads
                    layer = blocks.Layer(
                        dim=dim, heads=heads, kv_heads=kvh, head_dim=s.head_dim or _per_head(dim, heads), norm=norm,
                        mask=mask, names=names, qkv_bias=s.qkv_bias, out_bias=s.out_bias, mlp_bias=s.mlp_bias,
                        dropout=s.dropout, attn_dropout=s.attn_dropout, drop_path=s.drop_path * index / max(total - 1, 1),
                        qk_norm=_qk_norm(s, norm, attention.layer_pos(mask, inner_pos)), qk_norm_all=s.qk_norm == "all", softcap=s.softcap, pos=attention.layer_pos(mask, inner_pos),
                        pos_q=pos[0] if s.pos_every_layer else None, mem_pos=pos[1] if s.pos_every_layer else None,
                        memory=memory if s.cross else None, grid=grid,
                        mlp=s.layer_mlps[index] if s.layer_mlps else s.mlps[si] if s.mlps else mlp,
                        window=window, shift=shift, scale=s.scale, pos_state=shared, qkv=s.qkv, sinks=s.sinks,
                        layer_scale=s.layer_scale, index=index)
                    layer = replace(layer, pos_k=layer.pos_q)
                    with b.module(f"{names.blocks}.{bi}", "Block", dim=dim, heads=heads, window=window,
                                  shift=shift, grid=grid, norm=s.norm,
                                  **({"layout": blocks.formula(items)} if s.norm == "custom" else {})):
                        x = blocks.run(b, layer, items, x, norm_names)
                    if bi == 0 and after_first is not None:
                        x = after_first(b, epos, stages.StageAt(dim, grid, s.eps, si, len(s.depths), norm=norm), x)
                    index += 1
                    if s.aux and s.final_norm and index < total:
                        outs.append(norms.apply(b, norm, x, "norm", weights=b.child("norm")))
                    elif index in taps:
                        outs.append(x)
                if staged and si < len(s.depths) - 1:
                    nxt = s.dims[si + 1] if s.dims else None
                    x, grid, dim = down.lower(b, stages.StageAt(dim, grid, s.eps, si, len(s.depths), nxt, norm), x)
        if s.final_norm:
            x = norms.apply(b, norm, x, names.final_norm, **({"weights": b.child("norm")} if s.aux else {}))
    finally:
        del b.scope[len(b.scope) - len(scope):]
    return x, ([*outs, x] if s.aux else outs)


def _mask_of(a: Attn) -> vocab.Use:
    """A mask construct from today's `Attn` summary (StackSpecs built in Python)."""
    if a.kind == "windowed":
        return vocab.use("mask", "windowed", M=a.window, shift=a.shift)
    if a.kind == "sliding":
        return vocab.use("mask", "sliding", window=a.window)
    return vocab.use("mask", a.kind)


def _qk_norm(s, norm, pos):
    """The norm of each head's q and k in a block (None: none): the stack's norm kind for `qk_norm:
    head | all`; for `qk_norm: l2` a weightless L2 norm with the norm's ε, on the blocks whose
    attention rotates q and k only (Llama 4: use_qk_norm on its RoPE layers, not its NoPE ones)."""
    if s.qk_norm != "l2":
        return norm if s.qk_norm else None
    if pos is None or pos.name != "rope":
        return None
    return vocab.use("norm", "l2_norm", eps=norm.get("eps", 1e-6))


@contextmanager
def _null():
    yield None


def _known(d: Any) -> bool:
    return isinstance(d, int)


def _per_head(dim: Any, heads: Any) -> Any:
    """dim / heads, exact when symbolic (so that heads · head_dim is dim again)."""
    return dim // heads if _known(dim) and _known(heads) else sympy.sympify(dim) / heads


def _attention(b: Builder, s: Any, x: str, kv: str, dim: int, heads: int, window, shift, grid,
               causal: bool, local: str, pos_q: str | None = None, pos_k: str | None = None) -> str:
    """Multi-head attention as whole models lower it (graphspec.vocab.attention.attend), for
    tests and tools that build one block by hand: `s` needs qkv_bias, bias and attn_dropout."""
    layer = blocks.Layer(dim=dim, heads=heads, kv_heads=heads, head_dim=_per_head(dim, heads),
                         norm=vocab.use("norm", "layer_norm"), mask=vocab.use("mask", "causal" if causal else "global"),
                         qkv_bias=getattr(s, "qkv_bias", True), out_bias=getattr(s, "bias", True),
                         attn_dropout=getattr(s, "attn_dropout", 0.0), grid=grid, window=window, shift=shift)
    if window is not None:
        return attention.windows(b, layer, x, local)
    on = (attention._causal,) if causal else ()
    return attention.attend(b, layer, x, kv, local, pos_q=pos_q, pos_k=pos_k, on_scores=on, causal=causal)


def lower_attention_block(dim: Any, heads: Any, grid: tuple, window: Any = None, shift: Any = 0,
                          batch: Any = 1, kv_heads: Any = None, mask: str | None = None, sliding: Any = None) -> Graph:
    """One multi-head self-attention over a token sequence or h×w map (B, h·w, C), through the
    same constructs as whole models: global (Swin Eq. 1, MSA), with M×M windows (Eq. 2, W-MSA),
    grouped-query (`kv_heads`), causal or sliding-window (`mask`, `sliding`: the window W).

    Every argument may be a sympy symbol, so that the IR's MAC count can be compared with
    Ω(MSA) = 4hwC² + 2(hw)²C and Ω(W-MSA) = 4hwC² + 2M²hwC as identities.
    """
    b = Builder("attention_block")
    b.g.meta.update(spec="attention_block", symbolic=not all(_known(d) for d in (dim, heads, *grid)))
    b.g.set_module("", "AttentionBlock")
    h, w = grid
    if mask is None:
        mask = "windowed" if window is not None else "global"
    m = (vocab.use("mask", "sliding", window=sliding) if mask == "sliding" else
         vocab.use("mask", "windowed", M=window, shift=bool(shift)) if mask == "windowed" else vocab.use("mask", mask))
    kvh = kv_heads or heads
    layer = blocks.Layer(dim=dim, heads=heads, kv_heads=kvh, head_dim=_per_head(dim, heads), norm=vocab.use("norm", "layer_norm"),
                         mask=m, grid=grid, window=window, shift=shift or None)
    x = b.emit("input", (), "x", shape=(batch, h * w, dim), kind="features")
    y = m.lower(b, layer, x, x, "attn")
    b.g.outputs = (y,)
    return b.g
