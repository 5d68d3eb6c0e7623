"""Validating a raw spec into typed sections: `ModelSpec` with input, embed, stacks and head.

Every value may be a number, an expression over `vars` (`4*d_model`) or a call form
(`windowed(M=7)`); see README.md "Spec DSL" for the grammar. All problems are collected and
raised together, each with its file:line:column and a fix.
"""

from __future__ import annotations

from typing import Any

from graphspec.spec.errors import Diagnostics, Loc, SpecError
from graphspec.spec.expr import Call
from graphspec.spec.loader import RawSpec
from graphspec.spec.reader import _BAD, SECTION_EXAMPLES, _as_tuple, _Bad, _Reader, _show, _unknown  # noqa: F401
from graphspec.spec.types import (  # noqa: F401 - re-exported: graphspec.spec.schema is the public module
    EXPECT_KEYS,
    IDENT,
    MAX_BLOCKS,
    STACK_KEYS,
    TOP_KEYS,
    Attn,
    EmbedSpec,
    HeadSpec,
    InputSpec,
    ModelSpec,
    StackSpec,
)

# -- sections --------------------------------------------------------------------------------
INPUTS = {"tokens": ("seq_len", "tgt_len", "batch"), "image": ("img_size", "channels", "batch", "height", "width")}
EMBEDS = {"tokens": ("vocab", "dim", "pos", "types", "norm", "scale", "dropout", "eps", "proj"),
          "patches": ("patch", "dim", "pos", "cls_token", "dist_token", "norm", "dropout", "eps", "crop", "registers"),
          "project": ("dim", "pos", "dropout")}


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
from graphspec.vocab import heads  # noqa: E402  (the head constructs)


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
    norm_use, construct_norm = None, isinstance(a.get("norm"), Call)
    if construct_norm:  # `norm=layer_norm(1e-5, bias=false)` (ModernBERT: no bias)
        norm_use = vocab.read(r, a["norm"], p, "norm", "embedding norm")
        if "eps" in a:
            r.diags.add(r.raw.loc(*p), f"eps= is the ε of norm=true; norm={a['norm']!r} has its own",
                        "give the norm kind its ε, e.g. norm=layer_norm(1e-12, bias=false), and remove eps=")
    common = dict(dim=dim, pos=pos_use.name, max_len=pos_use.get("max_len"), pos_use=pos_use, norm_use=norm_use,
                  norm=(norm_use is not None) if construct_norm else r.typed(a.get("norm", False), p, bool, "norm"),
                  dropout=r.typed(a.get("dropout", 0.0), p, float, "dropout", minimum=0),
                  eps=r.typed(a.get("eps", 1e-5), p, float, "eps"))
    if kind == "tokens":
        vocab = r.typed(a["vocab"], p, int, "vocab", minimum=1) if "vocab" in a else _missing(r, p, "vocab", kind)
        return EmbedSpec("tokens", vocab=vocab, types=r.typed(a.get("types", 0), p, int, "types", minimum=0),
                         scale=r.typed(a.get("scale", False), p, bool, "scale"),
                         proj=r.typed(a["proj"], p, int, "proj", minimum=1) if "proj" in a else None, **common)
    if kind == "project":
        return EmbedSpec("project", **common)
    if kind == "patches":
        patch = r.typed(a["patch"], p, int, "patch", minimum=1) if "patch" in a else _missing(r, p, "patch", kind)
        return EmbedSpec("patches", patch=patch, cls_token=r.typed(a.get("cls_token", False), p, bool, "cls_token"),
                         dist_token=r.typed(a.get("dist_token", False), p, bool, "dist_token"),
                         crop=r.typed(a.get("crop", False), p, bool, "crop"),
                         registers=_registers(r, a, p), **common)
    return EmbedSpec("tokens", dim=1)


MAX_REGISTERS = 4096


def _registers(r: _Reader, a: dict, p: tuple) -> Any:
    """`patches(..., registers=R)`: 0 ≤ R ≤ 4096 learned tokens (DINOv2 uses 4)."""
    n = r.typed(a.get("registers", 0), p, int, "registers", minimum=0)
    if isinstance(n, int) and n > MAX_REGISTERS:
        r.diags.add(r.raw.loc(*p), f"registers={n}: graphspec allows at most {MAX_REGISTERS} register tokens",
                    "DINOv2 with registers (Darcet et al. 2024) uses 4")
        return _BAD
    return n


def _missing(r: _Reader, path: tuple, key: str, kind: str) -> Any:
    if not kind:  # the construct itself was missing or unknown: reported already
        return _BAD
    r.diags.add(r.raw.loc(*path), f"{kind}() needs `{key}`", f"write {kind}(..., {key}=...)")
    return _BAD


def _head(r: _Reader, v: Any) -> HeadSpec:
    """`head:` through the vocabulary (graphspec/vocab/heads.py): the construct and its arguments."""
    kind, a = r.call(v, ("head",), heads.params(), "head")
    use = heads.read(r, kind, a, ("head",))
    if use is None:
        return HeadSpec(kind or "none")
    return HeadSpec(kind, use=use, **{k: x for k, x in use.args if k in HeadSpec.__dataclass_fields__})


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
    gridded = windowed + [s for s in spec.stacks if s.attention.kind == "spatial_reduction"
                          or s.downsample not in ("none", "patch_merging")]  # PVT's reduction and stage embeddings
    if e.kind == "patches" and e.registers and gridded:
        diags.add(spec.loc("embed"), "register tokens do not fit windowed or spatial-reduction attention, patch "
                  "merging or stage embeddings (they work on the H×W patch grid, which has no place for extra tokens)",
                  "remove registers=")
    if e.kind == "patches" and e.registers and spec.head.kind == "classifier" and spec.head.use["pool"] == "mean":
        diags.add(spec.loc("head"), "the token mean would average the register tokens too",
                  "pool the class token (pool=cls), or write `head: none` and pool the patch tokens yourself")
    if e.kind == "patches" and e.dist_token and not e.cls_token:
        diags.add(spec.loc("embed"), "DeiT's distillation token sits after the class token, and this embedding has "
                  "none", "write patches(..., cls_token=true, dist_token=true)")
    if e.kind == "patches" and e.dist_token and e.registers:
        diags.add(spec.loc("embed"), "a distillation token beside register tokens: no model graphspec knows has both, "
                  "and where the registers go would be a guess", "remove registers= or dist_token=")
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
    if e.kind == "patches" and i.kind == "image" and isinstance(i.img_size, int) and i.img_size % e.patch and not e.crop:
        lo = i.img_size - i.img_size % e.patch
        sizes = [s for s in (lo, lo + e.patch, lo + 2 * e.patch) if s > 0][:2]
        diags.add(spec.loc("vars", "img_size") or spec.loc("input"),
                  f"image size {i.img_size} is not divisible by the patch size {e.patch}",
                  f"use img_size {' or '.join(map(str, sizes[:2]))}, or patches(..., crop=true) to drop the pixels "
                  "past the last whole patch (a 'valid' convolution, as SigLIP So400m/14 at 384)")
    pad = e.pos_use.get("padding_idx") if e.pos == "learned" and e.pos_use is not None else None
    decoding = len(spec.stacks) > 1 and any(s.role == "decoder" for s in spec.stacks)  # the decoder reads tgt_len
    for key, n in [("seq_len", i.seq_len), *([("tgt_len", i.tgt_len)] if decoding else [])]:
        if e.kind == "tokens" and e.pos == "learned" and e.max_len and isinstance(n, int) and (
                n + (pad + 1 if pad is not None else 0) > e.max_len):
            room = e.max_len - (pad + 1 if pad is not None else 0)
            diags.add(spec.loc("input"), f"{key} {n} exceeds the learned position table ({e.max_len}"
                      + (f" rows, positions from padding_idx + 1 = {pad + 1}: room for {room} tokens)" if pad is not None
                         else ")"), f"use {key} ≤ {room}")
    if e.kind == "tokens" and pad is not None and isinstance(e.vocab, int) and pad >= e.vocab:
        diags.add(spec.loc("embed"), f"padding_idx={pad} is the pad token's id, and the vocabulary has {e.vocab} "
                  "tokens", f"write a padding_idx below {e.vocab} (RoBERTa's is 1)")
    if e.kind == "tokens" and e.proj and spec.head.kind == "lm" and spec.head.use and spec.head.use.get("tied"):
        diags.add(spec.loc("head"), f"a tied LM head decodes through the token table, which is {e.dim} wide, and "
                  f"the embedding is projected to {e.proj}", "write lm(tied=false), or mlm(...) (ELECTRA's "
                  "generator maps back to the table's width), or drop proj=")
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
        width = e.proj or e.dim  # what the embedding hands the stack
        if isinstance(s.dim, int) and isinstance(width, int) and s.role == "encoder" and s.dim != width:
            what = f"the embedding's projection ({width})" if e.proj else f"the embedding dim {e.dim}"
            diags.add(spec.loc(s.role, "dim") or s.loc, f"{s.role} dim {s.dim} differs from {what}",
                      f"set {s.role}.dim to {width}" + ("" if e.proj else f", or project the embedding: "
                                                         f"tokens(..., dim={e.dim}, proj={s.dim}) (ELECTRA)"))
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
