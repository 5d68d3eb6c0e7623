"""Validating a raw spec into typed sections: `ModelSpec` with input, embed, stacks and head.

Every value may be a number, an expression over `vars` (`4*d_model`) or a call form
(`windowed(M=7)`); see README.md "Spec DSL" for the grammar. All problems are collected and
raised together, each with its file:line:column and a fix.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from typing import Any

from graphspec.spec.errors import Diagnostics, Loc, SpecError
from graphspec.spec.expr import Call, ExprError, _suggest, evaluate, spec_text
from graphspec.spec.loader import RawSpec

IDENT = re.compile(r"^[A-Za-z_]\w*$")

TOP_KEYS = {"name", "paper", "repo", "description", "vars", "input", "backbone", "embed", "encoder",
            "decoder", "head", "expect", "dtype", "names"}
STACK_KEYS = {"layers", "dim", "heads", "d_ff", "mlp_ratio", "attention", "norm", "act", "bias",
              "qkv_bias", "dropout", "attn_dropout", "drop_path", "eps", "final_norm", "cross",
              "depths", "downsample", "pos", "queries", "aux",
              "mlp", "placement", "block", "kv_heads", "head_dim", "out_bias", "mlp_bias", "qk_norm", "softcap",
              "scale"}
MAX_BLOCKS = 4096  # per stack: every block is lowered, so absurd depths would never finish
EXPECT_KEYS = {"params", "trainable_params", "active_params", "macs", "macs_norms", "macs_unmasked",
               "macs_swin_paper", "official_flops", "published"}


@dataclass(frozen=True)
class Attn:
    """The first block's mask, summarised (the masks themselves: `StackSpec.masks`)."""

    kind: str = "global"  # global | causal | sliding | windowed
    window: int | None = None
    shift: bool = False  # shifted windows in every other block (SW-MSA)


@dataclass(frozen=True)
class InputSpec:
    kind: str  # tokens | image
    batch: Any = 1
    seq_len: Any = None
    tgt_len: Any = None
    img_size: Any = None
    channels: int = 3
    height: Any = None  # non-square images (DETR); img_size otherwise
    width: Any = None

    @property
    def hw(self) -> tuple:
        return (self.height or self.img_size, self.width or self.img_size)


@dataclass(frozen=True)
class EmbedSpec:
    kind: str  # tokens | patches | project (1×1 conv of a backbone's map)
    dim: int
    vocab: int | None = None
    patch: int | None = None
    pos: str = "none"  # the position scheme's name: none | sinusoidal | learned | sine2d | rope | alibi
    max_len: int | None = None
    types: int = 0
    norm: bool = False
    scale: bool = False
    cls_token: bool = False
    dropout: float = 0.0
    eps: float = 1e-5
    pos_use: Any = None  # the position construct (graphspec.vocab.Use); `pos` is its name


@dataclass(frozen=True)
class StackSpec:
    role: str  # encoder | decoder
    dim: int
    heads: tuple[int, ...]  # one per stage
    depths: tuple[int, ...]  # blocks per stage; one stage unless `depths:` is given
    d_ff: Any  # int, or None when mlp_ratio is used
    mlp_ratio: float
    attention: Attn
    norm: str = "pre"
    act: str = "gelu"
    bias: bool = True
    qkv_bias: bool = True
    dropout: float = 0.0
    attn_dropout: float = 0.0
    drop_path: float = 0.0
    eps: float = 1e-5
    final_norm: bool = False
    cross: bool = False
    downsample: str = "none"  # none | patch_merging
    pos_every_layer: bool = False  # DETR: positions added to queries and keys in every layer
    queries: int | None = None  # DETR: learned object queries feed the decoder
    aux: bool = False  # DETR: every decoder layer's output goes through the (shared) heads
    loc: Loc | None = None
    # the open vocabulary (graphspec/vocab): None / () mean today's defaults
    kv_heads: int | None = None  # GQA / MQA: k/v heads (None: = heads)
    head_dim: int | None = None  # None: dim / heads
    out_bias: bool = True
    mlp_bias: bool = True
    qk_norm: bool = False  # the norm kind over each head's q and k
    softcap: float | None = None  # tanh soft-capping of the attention logits
    norm_kind: Any = None  # Use of kind `norm` (None: layer_norm(eps))
    mlp: Any = None  # Use of kind `mlp` (None: mlp(d_ff, act, ratio=mlp_ratio))
    masks: tuple = ()  # Uses of kind `mask`: one for all blocks, or one per block
    block: tuple | None = None  # free composition (graphspec/vocab/blocks.py); None: from `norm`
    names: str = "graphspec"  # graphspec | hf (Hugging Face's decoder-layer names)
    dims: tuple = ()  # per-stage widths (`dim: [64, 128, 320, 512]`); (): dim, doubled by patch merging
    mlps: tuple = ()  # per-stage MLPs (`mlp_ratio: [8, 8, 4, 4]`); (): `mlp` for every stage
    down_use: Any = None  # the downsampling construct with its arguments (Use of kind `downsample`)
    scale: float | None = None  # attention logit scale (None: 1/√head_dim; T5: 1)


@dataclass(frozen=True)
class HeadSpec:
    kind: str  # lm | classifier | pooler | detection | none
    classes: int | None = None
    box_layers: int = 3
    decoder: str = "naive"  # segmentation (SETR §3.3): naive | pup | mla
    channels: int = 256
    pool: str = "cls"
    tied: bool = True
    bias: bool = False
    softcap: float | None = None  # lm: tanh soft-capping of the final logits (Gemma 2)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    input: InputSpec
    embed: EmbedSpec
    stacks: tuple[StackSpec, ...]
    head: HeadSpec
    backbone: Any = None  # spec.backbone.BackboneSpec
    vars: dict[str, Any] = field(default_factory=dict)
    expect: dict[str, Any] = field(default_factory=dict)
    paper: str = ""
    repo: str = ""
    raw: RawSpec | None = field(default=None, compare=False, repr=False)

    def loc(self, *path: Any) -> Loc | None:
        return self.raw.loc(*path) if self.raw else None


# -- helpers ---------------------------------------------------------------------------------
def _unknown(diags: Diagnostics, raw: RawSpec, path: tuple, keys: set[str], allowed: set[str], what: str):
    for k in sorted(keys - allowed):
        close = difflib.get_close_matches(k, sorted(allowed), n=1)
        fix = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(allowed))}"
        diags.add(raw.loc(*path, k, "$key") or raw.loc(*path, k), f"unknown key {k!r} in {what}", fix)


class _Reader:
    """Evaluates values of one section and records problems against their locations."""

    def __init__(self, raw: RawSpec, env: dict[str, Any], diags: Diagnostics):
        self.raw, self.env, self.diags = raw, env, diags

    def value(self, v: Any, path: tuple, *, calls: bool = False) -> Any:
        if isinstance(v, str):
            text = v.strip()
            if IDENT.match(text):
                if text in self.env:
                    return self.env[text]
                if calls or text in ("true", "false", "none"):
                    return evaluate(text, {}, calls=True) if text in ("true", "false", "none") else Call(text)
            try:
                return evaluate(text, self.env, calls=calls)
            except ExprError as e:
                loc = self.raw.loc(*path)
                if loc and loc.file.endswith(".yaml"):
                    loc = Loc(loc.file, loc.line, loc.col + e.col)
                self.diags.add(loc, f"{e} in {text if len(text) <= 80 else text[:80] + '...'!r}", e.fix)
                return _BAD
        if isinstance(v, list):
            out = [self.value(x, path + (i,), calls=calls) for i, x in enumerate(v)]
            return _BAD if any(x is _BAD for x in out) else out  # reported at the element already
        return v

    @staticmethod
    def invalid(v: Any) -> bool:
        """Whether `v` is the value of a mistake already reported (report nothing more about it)."""
        return v is _BAD

    def typed(self, v: Any, path: tuple, kind: type | tuple, what: str, *, minimum: float | None = None):
        v = self.value(v, path)
        if v is _BAD or (isinstance(v, list) and _BAD in v):  # reported where it went wrong
            return _BAD
        ok = isinstance(v, kind) and not (isinstance(v, bool) and bool not in _as_tuple(kind))
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v, ok = float(v), True
        if kind is int and isinstance(v, float) and v.is_integer():
            v, ok = int(v), True
        if not ok and isinstance(v, Call) and not v.args and not v.kwargs:  # a name read as a construct
            self.diags.add(self.raw.loc(*path), f"undefined variable {v.name!r} (for {what})",
                           _suggest(v.name, self.env))
            return _BAD
        if not ok:
            names = "/".join(t.__name__ for t in _as_tuple(kind))
            self.diags.add(self.raw.loc(*path), f"{what} must be {names}, got {_show(v)}",
                           f"write {'an' if names[0] in 'aeiou' else 'a'} {names} value or an expression over vars")
            return _BAD
        if isinstance(v, float) and not math.isfinite(v):
            self.diags.add(self.raw.loc(*path), f"{what} must be finite, got {v!r}", "write a finite number")
            return _BAD
        if minimum is not None and v < minimum:
            self.diags.add(self.raw.loc(*path), f"{what} must be ≥ {minimum}, got {v}")
            return _BAD
        return v

    def choice(self, v: Any, path: tuple, options: tuple[str, ...], what: str) -> Any:
        c = self.value(v, path, calls=True)
        name = c.name if isinstance(c, Call) else ("none" if c is None else c)
        if name in options:
            return name
        if c is not _BAD:
            close = difflib.get_close_matches(str(name), options, n=1)
            shown = repr(name) if isinstance(name, str) else _show(v)  # `[relu, gelu]`, not Call(...)
            self.diags.add(self.raw.loc(*path), f"{what} {shown} is not one of {', '.join(options)}",
                           f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(options)}")
        return _BAD

    def call(self, v: Any, path: tuple, params: dict[str, tuple], what: str) -> tuple[str, dict]:
        """A construct given as a call form, a bare name, or a mapping with `kind:`."""
        if isinstance(v, dict):
            v = dict(v)
            name = v.pop("kind", None)
            c = Call(str(name), (), {k: self.value(x, path + (k,), calls=True) for k, x in v.items()})
        else:
            c = self.value(v, path, calls=True)
        if c is _BAD:
            return "", {}
        if c is None and "none" not in params and len(path) == 1 and path[0] in SECTION_EXAMPLES:
            self.diags.add(self.raw.loc(*path) or Loc(self.raw.file, 1, 1), f"the spec has no `{path[0]}:`"
                           if path[0] not in self.raw.tree else f"`{path[0]}:` is empty",
                           f"add e.g. {SECTION_EXAMPLES[path[0]]}")
            return "", {}
        if c is None:
            c = Call("none")
        if not isinstance(c, Call):
            self.diags.add(self.raw.loc(*path), f"{what} must name one construct, got {_show(v)}",
                           f"use one of {', '.join(params)}, e.g. `{path[-1]}: {next(iter(params))}`")
            return "", {}
        if c.name not in params:
            close = difflib.get_close_matches(c.name, list(params), n=1)
            self.diags.add(self.raw.loc(*path), f"unknown {what} {c.name!r}",
                           f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(params)}")
            return "", {}
        names = params[c.name]
        if len(c.args) > len(names):
            self.diags.add(self.raw.loc(*path), f"{c.name}() takes at most {len(names)} positional "
                           f"arguments ({', '.join(names)}), got {len(c.args)}")
            return "", {}
        out = dict(zip(names, c.args, strict=False))
        for k, x in c.kwargs.items():
            if k not in names:
                close = difflib.get_close_matches(k, names, n=1)
                takers = [n for n, ps in params.items() if k in ps]
                self.diags.add(self.raw.loc(*path), f"{c.name}() has no argument {k!r}",
                               f"did you mean {close[0]!r}?" if close else
                               (f"{c.name}() takes {', '.join(names)}" if names else
                                f"{c.name} takes no arguments; write {c.name}") +
                               (f"; `{k}` is an argument of {' and '.join(t + '()' for t in takers)}" if takers else ""))
                continue
            out[k] = x
        return c.name, out


class _Bad:
    def __repr__(self) -> str:
        return "<invalid>"


SECTION_EXAMPLES = {"input": "`input: tokens(seq_len)` or `input: image(img_size)`",
                    "embed": "`embed: tokens(vocab, dim=d_model)` or `embed: patches(16, dim=768)`"}


def _show(v: Any) -> str:
    """A spec value as the spec wrote it (`[causal, global]`), not as Python prints it."""
    return spec_text(v)


_BAD = _Bad()


def _as_tuple(kind: Any) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)


# -- sections --------------------------------------------------------------------------------
INPUTS = {"tokens": ("seq_len", "tgt_len", "batch"), "image": ("img_size", "channels", "batch", "height", "width")}
EMBEDS = {"tokens": ("vocab", "dim", "pos", "types", "norm", "scale", "dropout", "eps"),
          "patches": ("patch", "dim", "pos", "cls_token", "norm", "dropout", "eps"),
          "project": ("dim", "pos", "dropout")}
HEADS = {"lm": ("tied", "bias", "softcap"), "classifier": ("classes", "pool"), "pooler": (), "none": (),
         "detection": ("classes", "box_layers"), "segmentation": ("classes", "decoder", "channels")}


def validate(raw: RawSpec) -> ModelSpec:
    diags = Diagnostics()
    t = raw.tree
    _unknown(diags, raw, (), set(t), TOP_KEYS, "the spec")

    env: dict[str, Any] = {}
    r = _Reader(raw, env, diags)
    for k, v in (t.get("vars") or {}).items():
        if not IDENT.match(str(k)):
            diags.add(raw.loc("vars", k), f"variable name {k!r} is not an identifier",
                      "use letters, digits and _")
            continue
        env[k] = r.value(v, ("vars", k))

    inp = _input(r, t.get("input"))
    emb = _embed(r, t.get("embed")) if "embed" in t or "backbone" not in t else EmbedSpec("none", dim=0)
    backbone = read_backbone(r, t["backbone"]) if "backbone" in t else None
    names = r.choice(t.get("names", "graphspec"), ("names",), ("graphspec", "hf"), "naming scheme")
    stacks = []
    for role in ("encoder", "decoder"):
        if role in t:
            s = read_stack(r, role, t[role], has_encoder="encoder" in t, names=names)
            if s is not None:
                stacks.append(s)
    if not stacks and "backbone" not in t:
        diags.add(Loc(raw.file, 1, 1), "the spec declares no `encoder` or `decoder`",
                  "add e.g. `encoder×12: {dim: 768, heads: 12}`")
    head = _head(r, t.get("head", "none"))
    expect = t.get("expect") or {}
    if isinstance(expect, dict):
        _unknown(diags, raw, ("expect",), set(expect), EXPECT_KEYS, "`expect`")
        for k, x in expect.items():
            if k in EXPECT_KEYS - {"published"} and (isinstance(x, bool) or not isinstance(x, int)):
                diags.add(raw.loc("expect", k), f"expected figure `{k}` must be an integer, got {x!r}",
                          "write the exact count, e.g. `params: 28288354`")
    else:
        diags.add(raw.loc("expect"), f"`expect` must be a mapping of figures, got {expect!r}",
                  "write `expect: {params: 28288354, macs: 4490566656}`")
        expect = {}
    name = t.get("name") or raw.file.rsplit("/", 1)[-1].removesuffix(".yaml")
    diags.raise_if_any()
    spec = ModelSpec(str(name), inp, emb, tuple(stacks), head, backbone, env, dict(expect),
                     str(t.get("paper", "")), str(t.get("repo", "")), raw)
    _check_consistency(spec, diags)
    diags.raise_if_any()
    return spec


from graphspec.spec.backbone import read_backbone  # noqa: E402  (uses _Reader)
from graphspec.spec.stack import check_vocab, read_stack  # noqa: E402  (uses StackSpec)


def _input(r: _Reader, v: Any) -> InputSpec:
    kind, a = r.call(v, ("input",), INPUTS, "input")
    batch = r.typed(a.get("batch", r.env.get("batch", 1)), ("input",), int, "batch", minimum=1)
    if kind == "tokens":
        seq = r.typed(a.get("seq_len", r.env.get("seq_len", 128)), ("input",), int, "seq_len", minimum=1)
        tgt = a.get("tgt_len")
        tgt = seq if tgt is None else r.typed(tgt, ("input",), int, "tgt_len", minimum=1)
        return InputSpec("tokens", batch, seq, tgt)
    if kind == "image":
        size = r.typed(a.get("img_size", r.env.get("img_size", 224)), ("input",), int, "img_size", minimum=1)
        ch = r.typed(a.get("channels", 3), ("input",), int, "channels", minimum=1)
        h, w = (r.typed(a[k], ("input",), int, k, minimum=1) if k in a else None for k in ("height", "width"))
        return InputSpec("image", batch, img_size=size, channels=ch, height=h, width=w)
    return InputSpec("tokens")


def _embed(r: _Reader, v: Any) -> EmbedSpec:
    kind, a = r.call(v, ("embed",), EMBEDS, "embedding")
    p = ("embed",)
    dim = r.typed(a.get("dim"), p, int, "embed dim", minimum=1) if "dim" in a else _missing(r, p, "dim", kind)
    from graphspec import vocab

    pos_use = vocab.read(r, a.get("pos", "none"), p, "pos", "position encoding") or vocab.use("pos", "none")
    common = dict(dim=dim, pos=pos_use.name, max_len=pos_use.get("max_len"), pos_use=pos_use,
                  norm=r.typed(a.get("norm", False), p, bool, "norm"),
                  dropout=r.typed(a.get("dropout", 0.0), p, float, "dropout", minimum=0),
                  eps=r.typed(a.get("eps", 1e-5), p, float, "eps"))
    if kind == "tokens":
        vocab = r.typed(a["vocab"], p, int, "vocab", minimum=1) if "vocab" in a else _missing(r, p, "vocab", kind)
        return EmbedSpec("tokens", vocab=vocab, types=r.typed(a.get("types", 0), p, int, "types", minimum=0),
                         scale=r.typed(a.get("scale", False), p, bool, "scale"), **common)
    if kind == "project":
        return EmbedSpec("project", **common)
    if kind == "patches":
        patch = r.typed(a["patch"], p, int, "patch", minimum=1) if "patch" in a else _missing(r, p, "patch", kind)
        return EmbedSpec("patches", patch=patch, cls_token=r.typed(a.get("cls_token", False), p, bool, "cls_token"),
                         **common)
    return EmbedSpec("tokens", dim=1)


def _missing(r: _Reader, path: tuple, key: str, kind: str) -> Any:
    if not kind:  # the construct itself was missing or unknown: reported already
        return _BAD
    r.diags.add(r.raw.loc(*path), f"{kind}() needs `{key}`", f"write {kind}(..., {key}=...)")
    return _BAD


def _head(r: _Reader, v: Any) -> HeadSpec:
    kind, a = r.call(v, ("head",), HEADS, "head")
    p = ("head",)
    if kind == "classifier":
        classes = r.typed(a.get("classes", r.env.get("classes", 1000)), p, int, "classes", minimum=1)
        pool = r.choice(a.get("pool", "cls"), p, ("cls", "mean"), "pooling")
        return HeadSpec("classifier", classes=classes, pool=pool)
    if kind == "lm":
        tied, bias = r.typed(a.get("tied", True), p, bool, "tied"), r.typed(a.get("bias", False), p, bool, "bias")
        if tied is True and bias is True:  # the shared weight is the embedding's, which has no bias
            r.diags.add(r.raw.loc(*p), "a tied LM head has no bias of its own (it reuses the token "
                        "embedding's weight)", "write lm(tied=false, bias=true) or lm(tied=true)")
        cap = a.get("softcap")
        cap = None if cap is None else r.typed(cap, p, float, "softcap", minimum=1e-6)
        return HeadSpec("lm", tied=tied, bias=bias, softcap=cap)
    if kind == "detection":  # DETR: class linear (classes incl. "no object") and a box MLP
        return HeadSpec("detection", classes=r.typed(a.get("classes", 92), p, int, "classes", minimum=1),
                        box_layers=r.typed(a.get("box_layers", 3), p, int, "box_layers", minimum=1))
    if kind == "segmentation":  # SETR: a convolutional decoder back to the image resolution
        return HeadSpec("segmentation", classes=r.typed(a.get("classes", 150), p, int, "classes", minimum=1),
                        decoder=r.choice(a.get("decoder", "naive"), p, ("naive", "pup", "mla"), "decoder"),
                        channels=r.typed(a.get("channels", 256), p, int, "channels", minimum=1))
    return HeadSpec(kind or "none")


def _check_consistency(spec: ModelSpec, diags: Diagnostics) -> None:
    """Cross-field rules: divisibility of widths and images, inputs that fit the embedding."""
    e, i = spec.embed, spec.input
    if e.kind in ("patches", "project") and i.kind != "image":
        diags.add(spec.loc("embed"), "patch embedding needs an image input", "write `input: image(img_size)`")
    if e.kind == "tokens" and i.kind != "tokens":
        diags.add(spec.loc("embed"), "token embedding needs a token input", "write `input: tokens(seq_len)`")
    if spec.head.kind == "segmentation" and e.kind != "patches":  # SETR decodes the patch grid
        diags.add(spec.loc("head"), "a segmentation head decodes the patch grid of an image, but this spec "
                  f"embeds {'tokens' if i.kind == 'tokens' else 'a backbone map'}",
                  "use `input: image(img_size)` with `embed: patches(16, dim=...)`, or a `classifier`/`lm` head")
    windowed = [s for s in spec.stacks if s.attention.kind == "windowed" or s.downsample == "patch_merging"]
    if e.kind == "patches" and e.cls_token and windowed:  # windows tile the H×W grid: no room for a class token
        diags.add(spec.loc("embed"), "a class token does not fit windowed attention or patch merging (they tile "
                  "the H×W patch grid, which has no place for an extra token)",
                  "write cls_token=false and `head: classifier(classes, pool=mean)`, as Swin does")
    if spec.backbone is not None and spec.stacks and e.kind != "project":  # the map is (B, C, H, W), not tokens
        diags.add(spec.loc("embed") or spec.loc("backbone"), "a backbone's feature map reaches the transformer "
                  "through `embed: project(...)`" + (f", not {e.kind}()" if e.kind != "none" else ""),
                  "write `embed: project(dim=256, pos=sine2d)` "
                  "as DETR does, or remove `backbone:`")
    if e.kind == "project" and spec.backbone is None:
        diags.add(spec.loc("embed"), "`project` embeds a backbone's feature map, but the spec has no `backbone:`",
                  "add `backbone: {spec: resnet50.yaml}` or use `embed: patches(...)`")
    if e.kind == "patches" and i.kind == "image" and isinstance(i.img_size, int) and i.img_size % e.patch:
        lo = i.img_size - i.img_size % e.patch
        sizes = [s for s in (lo, lo + e.patch, lo + 2 * e.patch) if s > 0][:2]
        diags.add(spec.loc("vars", "img_size") or spec.loc("input"),
                  f"image size {i.img_size} is not divisible by the patch size {e.patch}",
                  f"use img_size {' or '.join(map(str, sizes[:2]))}")
    if e.kind == "tokens" and e.pos == "learned" and e.max_len and isinstance(i.seq_len, int) and i.seq_len > e.max_len:
        diags.add(spec.loc("input"), f"seq_len {i.seq_len} exceeds the learned position table ({e.max_len})",
                  f"use seq_len ≤ {e.max_len}")
    check_vocab(spec, diags)
    for s in spec.stacks:
        dim = s.dim
        for si, h in enumerate(s.heads):
            dim = s.dims[si] if len(s.dims) == len(s.heads) else dim  # per-stage widths (PVT)
            if isinstance(dim, int) and isinstance(h, int) and dim % h and not s.head_dim:
                span = min(max(4, h), 2048)  # divisors of dim near h
                ok = [x for x in range(max(1, h - span), min(dim, h + span) + 1) if dim % x == 0]
                diags.add(spec.loc(s.role, "heads") or s.loc,
                          f"{s.role} width {dim} is not divisible by {h} heads" + (f" (stage {si + 1})" if len(s.heads) > 1 else ""),
                          f"use heads in {ok[:6]}" if ok else "change dim or heads")
            if s.downsample == "patch_merging" and isinstance(dim, int):
                dim *= 2
        if isinstance(s.dim, int) and isinstance(e.dim, int) and s.role == "encoder" and s.dim != e.dim:
            diags.add(spec.loc(s.role, "dim") or s.loc, f"{s.role} dim {s.dim} differs from the embedding dim {e.dim}",
                      f"set {s.role}.dim to {e.dim}")
        if s.role == "encoder" and (s.queries or s.aux):
            diags.add(spec.loc(s.role, "queries" if s.queries else "aux") or s.loc,
                      "`queries` and `aux` belong to a decoder (DETR's object queries)",
                      "move them to `decoder`")
        if s.role == "decoder" and i.kind == "image" and not s.queries:
            diags.add(s.loc, "a decoder over an image has no target tokens to read",
                      "give it learned object queries (`queries: 100`) or use an encoder")


def load(path: str, overrides: list[str] | tuple[str, ...] = ()) -> ModelSpec:
    """Read, merge, override and validate a spec. Raises `SpecError` on any user mistake."""
    from graphspec.spec.loader import load_raw

    raw = load_raw(path, overrides)
    try:
        return validate(raw)
    except SpecError:
        raise
    except (TypeError, AttributeError, KeyError) as e:  # a value of the wrong shape slipped through
        raise SpecError.at(Loc(raw.file, 1, 1), f"malformed spec: {e}",
                           "compare with a bundled spec (`graphspec specs`)") from e
