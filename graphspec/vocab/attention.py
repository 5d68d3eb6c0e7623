"""Attention masks (`attention: causal | sliding(4096) | chunked(8192) | local(128) | windowed(7) |
shifted_windows(7) | global`) and the unfused multi-head attention they wrap.

Each mask is a construct whose lowering calls `attend` with its hooks; `plan(use, at)` (a hook)
picks per-block attributes (Swin's window and shift) before the block is built. The attention
itself is emitted unfused, in the order `passes.fuse_attention` matches:

    q, k, v = linear(x) ×3 (k, v: kv_heads·head_dim wide) -> [q_norm, k_norm (qk_norm: all)] -> split_heads
      -> [q_norm, k_norm (qk_norm: head)] -> [rotary q, k] -> [repeat_kv k, v (GQA)] -> matmul(q, transpose(k))
      -> scale -> [rel_pos_bias, add_window_mask] [alibi] [softcap] [causal_mask | sliding_mask | chunked_mask | local_mask]
      -> softmax -> [dropout] -> matmul(·, v) -> merge_heads -> linear (output projection)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import sympy

from graphspec.spec.errors import SpecError
from graphspec.vocab import norms
from graphspec.vocab.registry import Arg, construct


def attend(b, layer, x: str, kv: str, local: str, *, pos_q=None, pos_k=None, window=None, shift=None,
           grid=None, on_scores: tuple[Callable, ...] = (), causal: bool = False,
           kv_fn: Callable | None = None, cls: str | None = None) -> str:
    """Multi-head attention of queries from `x` over keys and values from `kv` (Vaswani §3.2.2);
    `pos_q`/`pos_k` are added to the query/key inputs only (DETR §3.2). `on_scores` are the
    mask's edits of the logits, applied after the position scheme's; `kv_fn(b, kv) -> kv'`
    transforms the key/value input inside the attention module (PVT's spatial reduction); `cls`
    names the module's class (Llama 4's ChunkedAttention), else the position scheme's module
    when it has one (the temperature layers' GlobalAttention)."""
    dim, heads, kvh, hd = layer.dim, layer.heads, layer.kv_heads, layer.head_dim
    windowed = window is not None
    self_attn = kv is x
    named = layer.pos.construct.module if self_attn and layer.pos is not None else None  # GlobalAttention: Llama 4's
    cls = cls or named or ("WindowAttention" if windowed else ("CrossAttention" if not self_attn else "Attention"))
    xq = b.emit("add", (x, pos_q), f"{local}_query") if pos_q is not None else x
    xk = kv if pos_k is None else (xq if (self_attn and pos_k is pos_q) else b.emit("add", (kv, pos_k), f"{local}_key"))
    extra = {k: v for k, v in (("kv_heads", kvh), ("head_dim", hd)) if v != (heads if k == "kv_heads" else dim // heads)}
    n = layer.names
    latent = self_attn and layer.qkv is not None
    if latent:  # MLA: its own module class (LatentAttention)
        dims = {k: v for k, v in layer.qkv.args if k != "norm"}  # kv_rank, rope_dim, nope_dim, v_dim, q_rank
        cls, extra = layer.qkv.construct.module, {**extra, "qkv": layer.qkv.name, **dims}
    with b.module(local, cls, dim=dim, heads=heads, window=window, causal=causal, **extra):
        if kv_fn is not None:
            kv = xk = kv_fn(b, kv)
        kv_in = b.shape(kv)[-1]
        norm_all = layer.qk_norm is not None and layer.qk_norm_all  # OLMo-2: over all heads' dims (h·d, kv·d)
        pos = layer.pos
        if latent:  # MLA (graphspec/vocab/mla.py): q, k, v heads from low-rank latents, RoPE inside
            qh, kh, vh, latent_scale = layer.qkv.lower(b, layer, xq)
        else:
            q = b.emit("linear", (xq,), n.q, out_features=heads * hd, bias=layer.qkv_bias, in_features=dim)
            q = norms.apply(b, layer.qk_norm, q, "q_norm") if norm_all else q
            k = b.emit("linear", (xk,), n.k, out_features=kvh * hd, bias=layer.qkv_bias, in_features=kv_in)
            k = norms.apply(b, layer.qk_norm, k, "k_norm") if norm_all else k
            v = b.emit("linear", (kv,), n.v, out_features=kvh * hd, bias=layer.qkv_bias, in_features=kv_in)
            qh = b.emit("split_heads", (q,), "q_heads", heads=heads)  # B, h, N, d
            kh = b.emit("split_heads", (k,), "k_heads", heads=kvh)  # B, kv, S, d
            vh = b.emit("split_heads", (v,), "v_heads", heads=kvh)
            if layer.qk_norm is not None and not layer.qk_norm_all:  # Qwen3, Gemma-3: over each head's dims
                qh = norms.apply(b, layer.qk_norm, qh, "q_norm")
                kh = norms.apply(b, layer.qk_norm, kh, "k_norm")
            if self_attn and pos is not None and pos.hook("qk"):
                qh, kh = pos.hook("qk")(b, pos, layer, qh, kh)
        if kvh != heads:  # GQA: every k/v head serves heads/kv_heads query heads
            groups = heads // kvh if isinstance(heads, int) and isinstance(kvh, int) else sympy.sympify(heads) / kvh
            kh = b.emit("repeat_kv", (kh,), "k_rep", groups=groups)  # B, h, S, d
            vh = b.emit("repeat_kv", (vh,), "v_rep", groups=groups)
        kt = b.emit("transpose", (kh,), "k_t", dims=(-2, -1))  # B, h, d, S
        sc = b.emit("matmul", (qh, kt), "scores")  # B, h, N, S
        default_scale = latent_scale if latent else hd ** -0.5
        sc = b.emit("scale", (sc,), "scaled", k=layer.scale if layer.scale is not None else default_scale)
        if windowed:
            bias = b.emit("rel_pos_bias", (), "rel_pos_bias", window=window, heads=heads, weights=b.path)
            sc = b.emit("add", (sc, bias), "biased")
            if shift:
                m = b.emit("shift_mask", (), "shift_mask", H=grid[0], W=grid[1], window=window, shift=shift)
                sc = b.emit("add_window_mask", (sc, m), "masked")
        if self_attn and pos is not None and pos.hook("scores"):
            sc = pos.hook("scores")(b, pos, layer, sc)
        if layer.softcap:
            sc = b.emit("softcap", (sc,), "capped", cap=layer.softcap)
        for fn in on_scores:
            sc = fn(b, sc)
        if layer.sinks and self_attn:  # gpt-oss: softmax over [scores, sink_h], the sink dropped
            p = b.emit("sink_softmax", (sc,), "probs", heads=heads, weights=b.path)
        else:
            p = b.emit("softmax", (sc,), "probs", dim=-1)
        if layer.attn_dropout:
            p = b.emit("dropout", (p,), "attn_drop", p=layer.attn_dropout)
        o = b.emit("matmul", (p, vh), "context")  # B, h, N, d
        o = b.emit("merge_heads", (o,), "merged")  # B, N, h·d
        return b.emit("linear", (o,), n.o, out_features=dim, bias=layer.out_bias, in_features=b.shape(o)[-1] if latent else heads * hd)


def _plan_none(use, at) -> dict[str, Any]:
    return {}


# A mask's `pos=`: the position scheme of the layers with this mask, in place of the embedding's
# (Gemma-3: `pattern(sliding(1024, pos=rope(10000)), ..., causal)` over a global rope(1000000);
# `causal(pos=none)`: a layer without positions, Llama-4's NoPE layers).
# `causal(pos=temperature(8192, 0.1))`: Llama-4's NoPE layers with attention temperature tuning.
_POS = Arg("pos", "pos", None, doc="this mask's layers' position scheme (rope, alibi, temperature, none) "
           "instead of the embedding's")


def _check_pos(a) -> list:
    p = a.get("pos")
    if p is not None and p.name not in ("rope", "alibi", "temperature", "none"):
        return [("pos", f"pos={p.name} acts at the embedding, not inside attention",
                 "a mask takes pos=rope(theta, ...), pos=alibi, pos=temperature(floor, scale) or pos=none; "
                 "set other schemes in `embed:`")]
    return []


def layer_pos(mask, embed_pos):
    """The position scheme acting inside the attention of a layer with `mask`: the mask's `pos=`
    when it has one (None for `none`), else the embedding's `embed_pos` (None when it acts there)."""
    p = mask.get("pos")
    if p is None:
        return embed_pos
    return None if p.name == "none" else p


@construct("mask", "global", _POS, check=_check_pos, hooks={"plan": _plan_none}, example="attention: global")
def global_(b, use, layer, x, kv, local):
    """Every token attends to every token (Vaswani §3.2.2; encoders)."""
    return attend(b, layer, x, kv, local, pos_q=layer.pos_q, pos_k=layer.pos_k)


def _causal(b, s):
    return b.emit("causal_mask", (s,), "masked")


@construct("mask", "causal", _POS, check=_check_pos, hooks={"plan": _plan_none}, example="attention: causal")
def causal(b, use, layer, x, kv, local):
    """Token i attends to tokens ≤ i (decoders). MACs are counted dense by default; the
    `unmasked` convention counts the N(N+1)/2 pairs per head."""
    return attend(b, layer, x, kv, local, on_scores=(_causal,), causal=True, pos_q=layer.pos_q, pos_k=layer.pos_k)


@construct("mask", "sliding", Arg("window", int, minimum=0, exclusive=True, doc="keys each query sees, itself included"),
           _POS, check=_check_pos, hooks={"plan": _plan_none}, example="attention: sliding(4096)")
def sliding(b, use, layer, x, kv, local):
    """Causal sliding window (Longformer §3.1; Mistral 7B §2): query i sees keys i-W < j ≤ i.
    MACs are counted dense by default; `unmasked` counts Σᵢ min(i+1, W) pairs per head."""
    W = use["window"]
    return attend(b, layer, x, kv, local, pos_q=layer.pos_q, pos_k=layer.pos_k,
                  on_scores=(lambda b, s: b.emit("sliding_mask", (s,), "masked", window=W),))


@construct("mask", "chunked", Arg("chunk", int, minimum=0, exclusive=True,
                                   doc="tokens per chunk (HF's attention_chunk_size)"),
           _POS, check=_check_pos, hooks={"plan": _plan_none}, example="attention: chunked(8192)",
           module="ChunkedAttention", doc_class="Multi-head self-attention within chunks: query i sees keys "
           "j ≤ i of its own chunk (Llama 4's local layers).")
def chunked(b, use, layer, x, kv, local):
    """Chunked causal attention (Llama 4's local layers; HF's chunked_attention): the sequence
    is cut into chunks of C tokens and query i sees keys j ≤ i of its own chunk, ⌊j/C⌋ = ⌊i/C⌋.
    MACs are counted dense by default; `unmasked` counts C(C+1)/2 pairs per whole chunk and
    r(r+1)/2 for the r = N mod C tokens left, per head."""
    C = use["chunk"]
    return attend(b, layer, x, kv, local, pos_q=layer.pos_q, pos_k=layer.pos_k, cls=use.construct.module,
                  on_scores=(lambda b, s: b.emit("chunked_mask", (s,), "masked", chunk=C),))


@construct("mask", "local", Arg("window", int, minimum=0, exclusive=True,
                                 doc="the window's width: query i sees keys |i − j| ≤ window // 2 (HF's local_attention)"),
           _POS, check=_check_pos, hooks={"plan": _plan_none}, example="attention: pattern(global, local(128) * 2)")
def local(b, use, layer, x, kv, local):
    """Bidirectional local window (Longformer §3.1's w, w/2 on each side; ModernBERT's local
    layers, local_attention 128): query i sees keys j with |i − j| ≤ window // 2. MACs are counted
    dense by default; `unmasked` counts N(2w + 1) − w(w + 1) pairs per head, w = window // 2."""
    W = use["window"]
    return attend(b, layer, x, kv, local, pos_q=layer.pos_q, pos_k=layer.pos_k,
                  on_scores=(lambda b, s: b.emit("local_mask", (s,), "masked", window=W),))


def _known(d: Any) -> bool:
    return isinstance(d, int)


def _plan_windows(use, at) -> dict[str, Any]:
    """Swin §3.2: window M, shifted by M//2 in every other block; a map no larger than M is one
    window without shift (official code)."""
    if at.grid is None:
        raise SpecError.at(at.loc, "windowed attention needs a 2-D token map (an image)",
                           "use attention: global, causal or sliding(W) for token inputs")
    window, shift = use["M"], 0
    H, W = at.grid
    if _known(H) and _known(W) and min(H, W) <= window:
        window = min(H, W)
    elif (use.name == "shifted_windows" or use.get("shift")) and at.block % 2 == 1:
        shift = window // 2
    if _known(H) and _known(W) and (H % window or W % window):
        common = math.gcd(H, W)
        divisors = [m for m in range(2, min(common, 4096) + 1) if common % m == 0]
        raise SpecError.at(at.loc, f"window {window} does not divide the {H}×{W} map of stage {at.stage + 1}",
                           f"use a window in {divisors[:8]} (graphspec does not pad windows), or change img_size")
    return {"window": window, "shift": shift}


def windows(b, layer, x, local):
    """Swin §3.2: [cyclic shift] -> window_partition -> attention per window (with the relative
    position bias, and the region mask when shifted) -> window_reverse -> [reverse shift]."""
    H, W = layer.grid
    window, shift = layer.window, layer.shift
    if shift:  # cyclic shift
        x = b.emit("roll", (x,), "shifted", H=H, W=W, shift=-shift)
    x = b.emit("window_partition", (x,), "windows", H=H, W=W, window=window)  # nW*B, M*M, C
    o = attend(b, layer, x, x, local, window=window, shift=shift, grid=layer.grid)
    o = b.emit("window_reverse", (o,), "unwindowed", H=H, W=W, window=window)
    if shift:  # reverse cyclic shift
        o = b.emit("roll", (o,), "unshifted", H=H, W=W, shift=shift)
    return o


@construct("mask", "windowed", Arg("M", int, minimum=1, doc="window side (tokens)"),
           Arg("shift", bool, False, doc="shift every other block by M//2 (SW-MSA)"),
           hooks={"plan": _plan_windows}, example="attention: windowed(7)")
def windowed(b, use, layer, x, kv, local):
    """M×M non-overlapping windows of a 2-D token map with a relative position bias (Swin §3.2,
    W-MSA); with `shift`, blocks 1, 3, 5, … are cyclically shifted (SW-MSA)."""
    return windows(b, layer, x, local)


@construct("mask", "shifted_windows", Arg("M", int, minimum=1, doc="window side (tokens)"),
           hooks={"plan": _plan_windows}, example="attention: shifted_windows(7)")
def shifted_windows(b, use, layer, x, kv, local):
    """windowed(M, shift=true): W-MSA and SW-MSA alternate (Swin §3.2)."""
    return windows(b, layer, x, local)
