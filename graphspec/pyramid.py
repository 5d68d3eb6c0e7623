"""Lowering pieces of the pyramid vision transformers and of T5's relative positions, emitted
into a `lower.Builder` under its current module scope.

- PVT's spatial-reduction attention (Wang et al. 2021, arXiv:2102.12122, §3.3, Eq. 3-4): keys
  and values come from the token map reduced by a stride-R conv (kernel R) and a LayerNorm,
  `SR(x) = Norm(Reshape(x, R) W_S)`, so attention costs 2·hw·(hw/R²)·C instead of 2(hw)²C.
  Official names (whai362/PVT `Attention`): `sr`, `norm`.
- PVT's patch embedding at the start of stages 2-4 (§3.1): the token map as an image, a
  kernel-k stride-s conv to the stage's width, LayerNorm, and the stage's own learned position
  table (with the class token in the last stage, PVT v1, as a child `cls` of one input and one
  output so that every stage keeps one class in generated code). Official names: `proj`, `norm`.
- CPVT's position encoding generator (Chu et al. 2021, arXiv:2102.10882, §3.2) as Twins uses it
  (arXiv:2104.13840, §2.1): after the first block of a stage, x + DWConv3×3(x) on the token map.
  Twins' names: `pos_block.proj`.
- T5's relative position bias (Raffel et al. 2020, §2.1): one table per stack, computed once
  and added to the scores of every layer's self-attention.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from graphspec.spec.errors import Loc, SpecError
from graphspec.spec.errors import divisors as all_divisors


def divisors(n: int, limit: int = 8) -> list[int]:
    return all_divisors(n)[:limit]


def check_reduction(loc: Loc | None, grid: tuple, R: int, stage: int) -> None:
    """R must tile the stage's map exactly (the official code reshapes, it does not pad)."""
    H, W = grid
    if isinstance(H, int) and isinstance(W, int) and (H % R or W % R):
        common = math.gcd(H, W)
        raise SpecError.at(loc, f"reduction ratio R={R} does not divide the {H}×{W} map of stage {stage}",
                           f"use R in {divisors(common)}, or change img_size")


def reduce_kv(b: Any, x: str, grid: tuple, R: int, dim: int, norm: Callable[[Any, str], str]) -> str:
    """SR(x): (B, h·w, C) -> (B, h·w/R², C), as the attention's child module `sr` (its conv
    `sr.proj`, its norm `sr.norm`, made by `norm(b, x)`): one input, one output, so that codegen
    keeps one attention class for the stages with and without reduction (R = 1)."""
    H, W = grid
    with b.module("sr", "SpatialReduction", dim=dim, ratio=R):
        m = b.emit("to_map", (x,), "map", H=H, W=W)  # B, C, h, w
        m = b.emit("conv2d", (m,), "proj", out_channels=dim, kernel=R, stride=R, in_channels=dim)  # B, C, h/R, w/R
        t = b.emit("to_tokens", (m,), "tokens")  # B, hw/R², C
        return norm(b, t)


def peg(b: Any, x: str, grid: tuple, dim: int) -> str:
    """CPVT's PEG: x + DWConv3×3(x) over the h×w token map (B, h·w, C), as module `pos_block`."""
    H, W = grid
    with b.module("pos_block", "PosConv", dim=dim):
        m = b.emit("to_map", (x,), "map", H=H, W=W)
        m = b.emit("depthwise_conv2d", (m,), "proj", channels=dim, kernel=3, padding=1)
        y = b.emit("to_tokens", (m,), "tokens")
        return b.emit("add", (y, x), "residual")


def patch_embed(b: Any, x: str, grid: tuple, kernel: int, stride: int, dim_in: int, dim: int,
                norm: Callable[[Any, str], str], pos: str = "none", cls_token: bool = False) -> tuple[str, tuple]:
    """PVT's patch embedding between stages, as module `downsample`: (B, h·w, C_in) ->
    (B, h'·w', C) with h' = (h − k)/s + 1, then the learned position table (and class token)."""
    H, W = grid
    with b.module("downsample", "StagePatchEmbed", kernel=kernel, stride=stride, in_chans=dim_in, dim=dim):
        m = b.emit("to_map", (x,), "map", H=H, W=W)
        m = b.emit("conv2d", (m,), "proj", out_channels=dim, kernel=kernel, stride=stride, in_channels=dim_in)
        grid = tuple(b.shape(m)[2:])
        t = b.emit("to_tokens", (m,), "tokens")
        t = norm(b, t)
        if cls_token:
            with b.module("cls", "ClassToken", dim=dim):
                tok = b.emit("parameter", (), "token", shape=(1, 1, dim), init="trunc_normal")
                t = b.emit("prepend", (tok, t), "with_cls")
        if pos == "learned":
            pe = b.emit("parameter", (), "pos_embed", shape=(1, b.shape(t)[1], dim), init="trunc_normal")
            t = b.emit("add", (t, pe), "with_pos")
    return t, grid


def bucket_bias(b: Any, x: str, heads: int, num_buckets: int, max_distance: int, bidirectional: bool) -> str:
    """T5's relative position bias (h, N, N) of the sequence x, shared by a stack's layers."""
    return b.emit("relative_bucket_bias", (x,), "relative_attention_bias", heads=heads, num_buckets=num_buckets,
                  max_distance=max_distance, bidirectional=bidirectional)
