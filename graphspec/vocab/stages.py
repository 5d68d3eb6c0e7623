"""Downsampling between the stages of a hierarchical stack (`downsample: patch_merging`).

Context of the lowering: `StageAt(dim, grid, eps)`; it returns (x, grid, dim) after the stage
(a `none` downsampling returns them unchanged)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphspec.vocab.registry import construct


@dataclass(frozen=True)
class StageAt:
    dim: Any
    grid: tuple | None
    eps: float = 1e-5
    stage: int = 0  # the stage that just ended (0-based)
    stages: int = 1
    next_dim: Any = None  # the next stage's width when the spec lists one per stage
    norm: Any = None  # the stack's norm kind (a Use)


def _half(d: Any) -> Any:
    return d // 2 if isinstance(d, int) else d / 2


@construct("downsample", "none", example="downsample: none")
def none(b, use, at, x):
    """No downsampling: one resolution throughout."""
    return x, at.grid, at.dim


@construct("downsample", "patch_merging", example="downsample: patch_merging", module="PatchMerging",
           attr="downsample", doc_class="Patch merging (Swin §3.3): 2×2 neighbouring tokens concatenated, "
                                        "normalized, reduced from 4C to 2C.")
def patch_merging(b, use, at, x):
    """Swin §3.3: 2×2 neighbouring tokens concatenated (4C), LayerNorm, Linear 4C -> 2C."""
    dim, (H, W) = at.dim, at.grid
    with b.module("downsample", "PatchMerging", dim=dim, grid=at.grid):
        x = b.emit("patch_merge", (x,), "merge", H=H, W=W)
        x = b.emit("layer_norm", (x,), "norm", dim=4 * dim, eps=at.eps)
        x = b.emit("linear", (x,), "reduction", out_features=2 * dim, bias=False, in_features=4 * dim)
    return x, (_half(H), _half(W)), 2 * dim
