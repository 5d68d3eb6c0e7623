"""fuse_qkv: the q, k and v projections of one input become one linear of width 3C, split by
`chunk` (the `qkv` layer of the official ViT/Swin code); for cross-attention (Vaswani §3.2.3,
"encoder-decoder attention") k and v of the same memory become one linear of width 2C named
`<attn>.kv`; where only q and k share an input (DETR adds position embeddings to queries and
keys, not values: Carion et al. §3.2) they become `<attn>.qk`.

Before:

    %attn.q = linear(%x, out_features=96, bias=True, in_features=96) : f32[64,49,96]
    %attn.k = linear(%x, out_features=96, bias=True, in_features=96) : f32[64,49,96]
    %attn.v = linear(%x, out_features=96, bias=True, in_features=96) : f32[64,49,96]

After:

    %attn.qkv = linear(%x, out_features=288, bias=True, in_features=96) : f32[64,49,288]
    %attn.q = chunk(%attn.qkv, parts=3, index=0) : f32[64,49,96]
    %attn.k = chunk(%attn.qkv, parts=3, index=1) : f32[64,49,96]
    %attn.v = chunk(%attn.qkv, parts=3, index=2) : f32[64,49,96]

Parameters are renamed, not changed: `attn.qkv.weight` is `attn.q.weight`, `attn.k.weight` and
`attn.v.weight` stacked along dim 0 (the pass declares it; interpret.rename_params applies it),
so MACs and the parameter count stay the same. Works before or after fuse_attention.

Grouped-query attention (q h·d wide, k and v kv·d) packs q|k|v in that order (Hugging Face's
fused layouts) into one linear of width (h + 2·kv)·d, split unevenly:

    %attn.k = split(%attn.qkv, sizes=(64, 16, 16), index=1) : f32[2,12,16]

q and k may pass a norm (qk_norm, per head or over all heads; Llama 4's L2 norm) and the rotary
embedding (or Llama 4's attention temperature on q) on their way to the attention. Projections named as Hugging Face names them (`names: hf`: q_proj, k_proj, v_proj)
fuse into `qkv_proj` (Phi-3's name); graphspec.weights cuts a fused tensor at the widths of the
split nodes that read it, so Hugging Face's separate q_proj/k_proj/v_proj map in and out exactly.
Other names stay apart, with the reason.
"""

from __future__ import annotations

from graphspec.ir import Node
from graphspec.passes.fuse_attention import attention_pattern, fused_attention_pattern
from graphspec.passes.manager import register
from graphspec.passes.pattern import Any, Match, Maybe, Op, Pattern, Rule, rewrite_graph


class _NO_MODULE:  # noqa: N801
    a: dict = {}


def _own_weights(n: Node) -> bool:
    return n.a.get("weights") is None


def _heads(tag: str, src: Pattern) -> Pattern:
    """split_heads(linear(src)), capturing the linear as `<tag>_proj`, then an optional per-head
    norm (qk_norm) and rotary embedding (RoPE acts on the heads, after the projection); q and k
    may pass a norm over all heads before the split (`qk_norm: all`)."""
    lin = Op("linear", src, name=f"{tag}_proj", where=_own_weights)
    if tag == "v":
        return Op("split_heads", lin, name=f"{tag}_heads")
    lin = Maybe(("rms_norm", "layer_norm"), lin, name=f"{tag}_proj_norm")  # qk_norm: all (OLMo-2)
    p = Op("split_heads", lin, name=f"{tag}_heads")
    p = Maybe(("rms_norm", "layer_norm", "l2_norm"), p, name=f"{tag}_norm")  # l2_norm: Llama 4
    return Maybe(("rotary", "attn_temperature"), p, name=f"{tag}_rot")  # attn_temperature: Llama 4's q


def _fuse(m: Match, tags: tuple[str, ...]):
    lins = [m[f"{t}_proj"] for t in tags]
    src = m.node(lins[0].inputs[0])
    first = lins[0]
    widths = [n.a["out_features"] for n in lins]
    if len({n.a.get("bias", True) for n in lins}) != 1:
        return m.decline(f"projections {[n.name for n in lins]} differ in bias (one linear has one bias flag)")
    if len({n.a["in_features"] for n in lins}) != 1:
        return m.decline(f"projections {[n.name for n in lins]} differ in input width")
    suffix = "_proj" if lins[0].local == f"{tags[0]}_proj" else ""  # names: hf (q_proj, k_proj, v_proj)
    if any(n.local != t + suffix for n, t in zip(lins, tags, strict=True)):
        return m.decline(f"projections {[n.local for n in lins]} are not named {[t + suffix for t in tags]}: "
                         f"graphspec.weights maps a fused `{''.join(tags)}{suffix}` to those names only, "
                         "so they stay apart")
    if len({n.module for n in lins}) != 1:
        return m.decline("projections belong to different modules")
    attn, bias = first.module, first.a.get("bias", True)
    if len(tags) == 3 and "sr_ratio" in m.g.modules.get(attn, _NO_MODULE).a:
        return m.decline("PVT's attention keeps q apart from k|v in every stage (official `q` and `kv`), "
                         "so that stages with and without spatial reduction share one class")
    local = "".join(tags) + suffix  # qkv or kv; qkv_proj as Phi-3 names it
    fused = m.fresh(f"{attn}.{local}" if attn else local)
    m.emit("linear", (src.name,), fused, like=first, out_features=sum(widths), bias=bias,
           in_features=src.shape[-1])
    even = len(set(widths)) == 1  # GQA: q is h·d wide, k and v kv·d (uneven chunks, q|k|v order)
    for i, n in enumerate(lins):
        op, attrs = ("chunk", {"parts": len(tags), "index": i}) if even else ("split", {"sizes": tuple(widths), "index": i})
        m.put(n.evolve(op=op, inputs=(fused,), attrs=attrs))
    for p in ("weight", "bias") if bias else ("weight",):
        m.rename_params(f"{fused}.{p}", [f"{n.name}.{p}" for n in lins])
    return {}  # the chunks keep the projections' names: users need no rewiring


_SELF = dict(q=_heads("q", Any("x")), k=_heads("k", Any("x")), v=_heads("v", Any("x")))
_CROSS = dict(k=_heads("k", Any("memory")), v=_heads("v", Any("memory")))
_QK = dict(q=_heads("q", Any("x")), k=_heads("k", Any("x")))  # DETR: q = k = x + pos, v = x

ROWS = [
    Rule(pattern(**captures), lambda m, tags=tags: _fuse(m, tags))
    for captures, tags in ((_SELF, ("q", "k", "v")), (_CROSS, ("k", "v")), (_QK, ("q", "k")))
    for pattern in (attention_pattern, fused_attention_pattern)
]


@register("fuse_qkv")
def fuse_qkv(g):
    """One projection for q, k, v of one input (k, v of one memory; q, k of one input)."""
    return rewrite_graph(g, ROWS)
