"""fuse_attention: QKᵀ·scale [+bias] [+window mask] [causal] -> softmax [-> dropout] -> ·V
becomes one `attention` op (Vaswani et al. 2017 §3.2.1, Eq. 1; Swin §3.2, Eq. 4 with B the
relative position bias and the SW-MSA mask).

Before:

    %attn.k_t = transpose(%attn.k_heads, dims=(-2, -1)) : f32[64,3,32,49]
    %attn.scores = matmul(%attn.q_heads, %attn.k_t) : f32[64,3,49,49]
    %attn.scaled = scale(%attn.scores, k=0.176777) : f32[64,3,49,49]
    %attn.rel_pos_bias = rel_pos_bias(window=7, heads=3, weights=attn) : f32[3,49,49]
    %attn.biased = add(%attn.scaled, %attn.rel_pos_bias) : f32[64,3,49,49]
    %attn.shift_mask = shift_mask(H=56, W=56, window=7, shift=3) : f32[64,49,49]
    %attn.masked = add_window_mask(%attn.biased, %attn.shift_mask) : f32[64,3,49,49]
    %attn.probs = softmax(%attn.masked, dim=-1) : f32[64,3,49,49]
    %attn.context = matmul(%attn.probs, %attn.v_heads) : f32[64,3,49,32]

After:

    %attn.rel_pos_bias = rel_pos_bias(window=7, heads=3, weights=attn) : f32[3,49,49]
    %attn.shift_mask = shift_mask(H=56, W=56, window=7, shift=3) : f32[64,49,49]
    %attn.attention = attention(%attn.q_heads, %attn.k_heads, %attn.v_heads, %attn.rel_pos_bias,
        %attn.shift_mask, scale=0.176777, causal=False, has_bias=True, has_mask=True, windows=64,
        dropout=0) : f32[64,3,49,32]

The open vocabulary's forms fuse too: GQA's repeat_kv on k and v is absorbed (attribute
`kv_heads`; k and v keep their kv heads, so the generated code calls
F.scaled_dot_product_attention(..., enable_gqa=True) and never materialises the repeated
(B, h, S, d) copies, and ONNX Attention-23 takes them as they are); a sliding-window mask
becomes `sliding=W` (Mistral §2); RoPE stays before the fused core on q and k (it rotates the
inputs of QKᵀ, it is not part of it); T5's unscaled scores give scale=1 with the bucket bias as
the bias operand; PVT's spatially reduced k/v simply have S ≠ N. A logit soft-cap declines
(F.scaled_dot_product_attention has none). gpt-oss's attention sinks (`sink_softmax` in place of the
softmax, graphspec/ops/gpt_oss.py) fuse with `has_sinks`: the `sinks` (h,) become a parameter
operand under the same name, and the fused op makes the sink one more key (zero, its score the
logit, in the additive mask) with a zero value, which SDPA and ONNX Attention take as they are;
with a bias, window mask or chunk beside them they decline. Mistral's core after fusion:

    %attn.attention = attention(%attn.q_rot, %attn.k_rot, %attn.v_heads, scale=0.353553,
        causal=False, has_bias=False, has_mask=False, windows=1, dropout=0, kv_heads=2,
        sliding=5) : f32[1,8,12,8]

MACs are unchanged: the fused op counts QKᵀ and ·V as the two matmuls did. Every softmax that
ends up outside an `attention` is reported with the matcher's reason.
"""

from __future__ import annotations

from graphspec.ir import Node
from graphspec.passes.manager import register
from graphspec.passes.pattern import Alt, Any, Match, Maybe, Op, Pattern, Rule, rewrite_graph


def _last_two_dims(n: Node) -> bool:
    rank = len(n.shape)
    return sorted(d % rank for d in n.a.get("dims", (-2, -1))) == [rank - 2, rank - 1]


def _over_last_dim(n: Node) -> bool:
    return n.a.get("dim", -1) in (-1, len(n.shape) - 1)


def attention_pattern(q: Pattern | None = None, k: Pattern | None = None, v: Pattern | None = None) -> Pattern:
    """The unfused attention core; q, k, v default to `Any` captures (like Relax's
    `make_attention_pattern`). Captures: q, k, v, k_rep, v_rep, k_t, scores, scaled, bias,
    biased, mask, masked, capped, causal | sliding | chunked | local, probs | sink, attn_drop, context."""
    q, k, v = q or Any("q"), k or Any("k"), v or Any("v")
    k, v = Maybe("repeat_kv", k, name="k_rep"), Maybe("repeat_kv", v, name="v_rep")  # GQA §2
    s = Op("matmul", q, Op("transpose", k, name="k_t", where=_last_two_dims), name="scores")
    s = Maybe("scale", s, name="scaled")
    s = Maybe("add", s, Any("bias"), name="biased", commutative=True)
    s = Maybe("add_window_mask", s, Any("mask"), name="masked")
    s = Maybe("softcap", s, name="capped")
    s = Alt(Op("causal_mask", s, name="causal"), Op("sliding_mask", s, name="sliding"),
            Op("chunked_mask", s, name="chunked"), Op("local_mask", s, name="local"), s)
    p = Alt(Op("softmax", s, name="probs", where=_over_last_dim), Op("sink_softmax", s, name="sink"))
    p = Maybe("dropout", p, name="attn_drop")
    return Op("matmul", p, v, name="context")


def fused_attention_pattern(q: Pattern | None = None, k: Pattern | None = None,
                            v: Pattern | None = None) -> Pattern:
    """An `attention` op (captured as `attention`), with optional bias and mask operands."""
    return Op("attention", q or Any("q"), k or Any("k"), v or Any("v"), name="attention", rest=True)


def _fuse(m: Match):
    q, k, v, scores = m["q"], m["k"], m["v"], m["scores"]
    operands = [q.name, k.name, v.name]
    bias, mask = m.get("bias"), m.get("mask")
    if bias is not None:
        if tuple(bias.shape) != tuple(scores.shape[-3:]):
            return m.decline(f"the added term %{bias.name} {tuple(bias.shape)} is not a per-head "
                             f"bias (heads, N, S) = {tuple(scores.shape[-3:])}")
        operands.append(bias.name)
    windows = 1
    if mask is not None:
        windows = mask.shape[0]
        operands.append(mask.name)
    extra = {}
    if ("k_rep" in m) != ("v_rep" in m) or ("k_rep" in m and m["k_rep"].a["groups"] != m["v_rep"].a["groups"]):
        return m.decline("keys and values are not repeated alike (GQA shares each k/v head)")
    if "k_rep" in m:  # GQA: k, v keep their kv_heads; the fused op shares them (enable_gqa)
        extra["kv_heads"] = k.shape[-3]
    band = next((m[b] for b in ("sliding", "chunked", "local") if b in m), None)
    if band is not None and (bias is not None or mask is not None):  # NB: the generated SDPA call takes one of them
        return m.decline(f"%{band.name}: a {band.op} band beside an additive bias or window mask stays unfused")
    if "capped" in m:  # NB: c·tanh(s/c) has no F.scaled_dot_product_attention / ONNX Attention form here
        return m.decline(f"%{m['capped'].name}: a logit soft-cap stays unfused (SDPA has no softcap)")
    sink = m.get("sink")
    if sink is not None:  # gpt-oss: one learned logit per head joins the softmax (attention_with_sinks)
        if bias is not None or mask is not None or "chunked" in m or "local" in m:
            return m.decline(f"%{sink.name}: attention sinks fuse over a causal or sliding band only")
        owner = sink.a.get("weights") or sink.name
        sinks = m.emit("parameter", [], m.fresh(f"{sink.module}.sinks"), shape=(sink.a["heads"],), init="normal",
                       weights=f"{owner}.sinks")
        operands.append(sinks)
        extra["has_sinks"] = True
    if "sliding" in m:
        extra["sliding"] = m["sliding"].a["window"]
    if "chunked" in m:  # Llama 4's local layers
        extra["chunk"] = m["chunked"].a["chunk"]
    if "local" in m:  # ModernBERT's local layers
        extra["local"] = m["local"].a["window"]
    drop = m.get("attn_drop")
    name = m.fresh(f"{m.root.module}.attention" if m.root.module else "attention")
    return m.emit("attention", operands, name,
                  scale=m["scaled"].a["k"] if "scaled" in m else 1.0,
                  causal="causal" in m, has_bias=bias is not None, has_mask=mask is not None,
                  windows=windows, dropout=drop.a["p"] if drop is not None else 0.0, **extra)


ROWS = [Rule(attention_pattern(), _fuse, anchor="softmax")]


@register("fuse_attention")
def fuse_attention(g):
    """Fuse every attention core into one `attention` op (Vaswani §3.2.1; Swin §3.2)."""
    return rewrite_graph(g, ROWS)
