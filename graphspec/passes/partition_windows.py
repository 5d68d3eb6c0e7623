"""partition_windows(M, shift=False): global self-attention over an H×W token grid becomes
attention within non-overlapping M×M windows (Swin §3.2, "Self-attention in non-overlapped
windows", Eq. 1-2), with a new relative position bias per window (Swin §3.2, "Relative position
bias": a (2M-1)² × heads table, a new parameter that the pass declares). With `shift=True`,
every other block of a stage shifts the map cyclically by M//2 first, masks attention across
the wrapped regions with the official mask, and shifts back (Swin §3.2, "Shifted window
partitioning in successive blocks" and "Efficient batch computation for shifted
configuration"). This changes the model, as in the paper: Ω(MSA) = 4hwC² + 2(hw)²C becomes
Ω(W-MSA) = 4hwC² + 2M²hwC.

Before (one block):

    %blocks.1.norm1 = layer_norm(%blocks.0.residual_1, dim=96) : f32[1,3136,96]
    %blocks.1.attn.q = linear(%blocks.1.norm1, out_features=96) : f32[1,3136,96]
    ...
    %blocks.1.attn.scaled = scale(%blocks.1.attn.scores, k=0.176777) : f32[1,3,3136,3136]
    %blocks.1.attn.probs = softmax(%blocks.1.attn.scaled, dim=-1) : f32[1,3,3136,3136]
    ...
    %blocks.1.attn.proj = linear(%blocks.1.attn.merged, out_features=96) : f32[1,3136,96]

After (`partition_windows(M=7, shift=true)`, an odd block):

    %blocks.1.shifted = roll(%blocks.1.norm1, H=56, W=56, shift=-3) : f32[1,3136,96]
    %blocks.1.windows = window_partition(%blocks.1.shifted, H=56, W=56, window=7) : f32[64,49,96]
    %blocks.1.attn.q = linear(%blocks.1.windows, out_features=96) : f32[64,49,96]
    ...
    %blocks.1.attn.scaled = scale(%blocks.1.attn.scores, k=0.176777) : f32[64,3,49,49]
    %blocks.1.attn.rel_pos_bias = rel_pos_bias(window=7, heads=3, weights=blocks.1.attn) : f32[3,49,49]
    %blocks.1.attn.biased = add(%blocks.1.attn.scaled, %blocks.1.attn.rel_pos_bias) : f32[64,3,49,49]
    %blocks.1.attn.shift_mask = shift_mask(H=56, W=56, window=7, shift=3) : f32[64,49,49]
    %blocks.1.attn.masked = add_window_mask(%blocks.1.attn.biased, %blocks.1.attn.shift_mask) : f32[64,3,49,49]
    %blocks.1.attn.probs = softmax(%blocks.1.attn.masked, dim=-1) : f32[64,3,49,49]
    ...
    %blocks.1.attn.proj = linear(%blocks.1.attn.merged, out_features=96) : f32[64,49,96]
    %blocks.1.unwindowed = window_reverse(%blocks.1.attn.proj, H=56, W=56, window=7) : f32[1,3136,96]
    %blocks.1.unshifted = roll(%blocks.1.unwindowed, H=56, W=56, shift=3) : f32[1,3136,96]

which is what lowering emits for `attention: shifted_windows(M)`. As in the official code, a
map no larger than the window (min(H, W) ≤ M) is one window of size min(H, W), unshifted. A
window that does not divide the map is refused (PassError naming the stage and the sizes):
graphspec does not pad. Declined, with the reason: attention without an H×W grid (text, or
ViT's class token), causal or cross-attention, attention already windowed or biased. Works on
unfused or fused attention, before or after fuse_qkv.
"""

from __future__ import annotations

import re

import sympy

from graphspec.ir import Graph
from graphspec.ops.registry import exact_div, is_int
from graphspec.passes.base import PassError
from graphspec.passes.fuse_attention import attention_pattern, fused_attention_pattern
from graphspec.passes.manager import register
from graphspec.passes.pattern import Alt, Match, Rule, rewrite_graph


def _where(block: str) -> str:
    """`layers.0.blocks.1` -> "stage 1 (layers.0.blocks.1)"."""
    m = re.search(r"(?:^|\.)layers\.(\d+)(?:\.|$)", block)
    return f"stage {int(m[1]) + 1} ({block})" if m else block or "the model"


def _window(m: Match, M: int, shift: bool):
    core = m.root
    fused = core.op == "attention"
    attn = core.module
    if fused and (core.a["has_bias"] or core.a["has_mask"]) or not fused and ("bias" in m or "mask" in m):
        return m.decline("attention already has a bias or mask (already windowed?)")
    if fused and core.a["causal"] or not fused and "causal" in m:
        return m.decline("causal attention: windows would break the causal order")
    block = attn.rpartition(".")[0]
    info = m.g.modules.get(block)
    grid = info.a.get("grid") if info is not None else None
    if not grid:
        return m.decline(f"{block or attn}: no H×W token grid (token input)")
    region = [n for n in m.g if n.module == attn or n.module.startswith(attn + ".")]
    inside = {n.name for n in region}
    if any(n.op == "to_map" for n in region):
        return m.decline(f"{attn} reshapes its input to a map (PVT's spatial reduction): its keys and values "
                         "are not tokens of the query's windows")
    ext = list(dict.fromkeys(i for n in region for i in n.inputs if i not in inside))
    if len(ext) != 1:
        return m.decline(f"{attn} reads {len(ext)} tensors ({', '.join(ext)}), not one token map "
                         "(cross-attention, or positions added to q/k only)")
    x = m.g[ext[0]]
    outs = [n for n in region if n.name in m.g.outputs
            or any(u.name not in inside for u in m.g.users(n.name))]
    if len(outs) != 1 or len(x.shape) != 3:
        return m.decline(f"{attn} is not one (B, N, C) -> (B, N, C) module")
    out = outs[0]
    H, W = grid
    B, N, C = x.shape
    if N != H * W:
        return m.decline(f"{N} tokens are not the {H}×{W} grid (a class token? windows need "
                         "patch tokens only)")
    index = int(block.rpartition(".")[2]) if block.rpartition(".")[2].isdigit() else 0
    M_, s = M, (M // 2 if shift and index % 2 == 1 else 0)
    known = is_int(H) and is_int(W) and is_int(M)
    if known and min(H, W) <= M:  # official: one window, no shift
        M_, s = min(H, W), 0
        m.notes.append(f"{_where(block)}: the {H}×{W} map is one window of {M_}×{M_}, no shift (official)")
    if known and (H % M_ or W % M_):
        fits = [d for d in range(2, min(H, W) + 1) if H % d == 0 and W % d == 0]
        raise PassError(f"partition_windows(M={M}): window {M_} does not divide the {H}×{W} map of "
                        f"{_where(block)}; use M in {fits} (graphspec does not pad windows)")
    heads = m["q"].shape[1]
    nW = exact_div(H, M_, "map height / window") * exact_div(W, M_, "map width / window")

    # cyclic shift, then windows: (B, H·W, C) -> (B·nW, M², C)
    xin = x.name
    if s:
        xin = m.emit("roll", (xin,), m.fresh(f"{block}.shifted"), module=block, like=x, H=H, W=W, shift=-s)
    win = m.emit("window_partition", (xin,), m.fresh(f"{block}.windows"), module=block, like=x, H=H, W=W,
                 window=M_)
    sub = {x.name: win}
    anchor = m.get("scaled") or m.get("scores")
    for n in region:  # the module again, per window: shapes re-derived
        ins = tuple(sub.get(i, i) for i in n.inputs)
        if n.name == core.name and fused:
            bias = _bias(m, attn, n, M_, heads, after=ins[-1])
            mask = _mask(m, attn, n, H, W, M_, s, after=bias) if s else None
            m.rebuild(n, (*ins, bias, *([mask] if mask else [])), has_bias=True, has_mask=bool(mask),
                      windows=nW if mask else 1)
            continue
        m.rebuild(n, ins)
        if not fused and n.name == anchor.name:
            bias = _bias(m, attn, n, M_, heads, after=n.name)
            y = m.emit("add", (n.name, bias), m.fresh(f"{attn}.biased"), like=n)
            if s:
                mask = _mask(m, attn, n, H, W, M_, s, after=y)
                y = m.emit("add_window_mask", (y, mask), m.fresh(f"{attn}.masked"), like=n)
            sub[n.name] = y
    # windows back, reverse shift: (B·nW, M², C) -> (B, H·W, C)
    y = m.emit("window_reverse", (out.name,), m.fresh(f"{block}.unwindowed"), module=block, like=x,
               H=H, W=W, window=M_)
    if s:
        y = m.emit("roll", (y,), m.fresh(f"{block}.unshifted"), module=block, like=x, H=H, W=W, shift=s)
    m.nodes |= inside  # consumed: no other row may touch the module
    if attn in m.g.modules:
        m.set_module(attn, "WindowAttention", **{**m.g.modules[attn].a, "window": M_})
    m.set_module(block, info.cls, **{**info.a, "window": M_, "shift": s})
    return {out.name: y}


def _bias(m: Match, attn: str, like, M_, heads, after: str) -> str:
    """The new relative position bias (h, M², M²) of `attn`, a declared new parameter."""
    m.add_params(f"{attn}.relative_position_bias_table")
    return m.emit("rel_pos_bias", (), m.fresh(f"{attn}.rel_pos_bias"), like=like, after=after,
                  window=M_, heads=heads, weights=attn)


def _mask(m: Match, attn: str, like, H, W, M_, s, after: str) -> str:
    """The official SW-MSA mask (nW, M², M²) for a shift of s."""
    return m.emit("shift_mask", (), m.fresh(f"{attn}.shift_mask"), like=like, after=after, H=H, W=W,
                  window=M_, shift=s)


@register("partition_windows")
def partition_windows(g: Graph, M: int, shift: bool = False):
    """Window global self-attention over the token grid (Swin §3.2): W-MSA, SW-MSA with shift."""
    if not (is_int(M) and M >= 1 or isinstance(M, sympy.Symbol)):
        raise PassError(f"partition_windows: M must be a positive integer, got {M!r}")
    rows = [Rule(Alt(attention_pattern(), fused_attention_pattern()), lambda m: _window(m, M, shift),
                 anchor="softmax")]
    return rewrite_graph(g, rows)
