"""Norm kinds (`norm: rms_norm(1e-6)`), separate from where a block places them (blocks.py).

Context of a norm's lowering: `NormAt(local, attrs)`, the attribute name and extra IR attributes
(a shared `weights=` for DETR's per-layer final norm)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphspec.vocab.registry import Arg, construct


@dataclass(frozen=True)
class NormAt:
    local: str
    attrs: dict[str, Any] = field(default_factory=dict)


def apply(b, use, x: str, local: str, **attrs: Any) -> str:
    """`use` (a norm construct) over the last dim of `x`, as module attribute `local`."""
    return use.lower(b, NormAt(local, attrs), x)


@construct("norm", "layer_norm", Arg("eps", float, 1e-5, minimum=0, doc="added to the variance"),
           Arg("bias", bool, True, doc="a learned shift β"),
           example="norm: layer_norm(1e-5)")
def layer_norm(b, use, ctx, x):
    """LayerNorm (Ba et al. 2016): (x - mean) / √(var + ε) · γ + β over the last dim."""
    extra = {} if use["bias"] else {"bias": False}
    return b.emit("layer_norm", (x,), ctx.local, dim=b.shape(x)[-1], eps=use["eps"], **extra, **ctx.attrs)


@construct("norm", "rms_norm", Arg("eps", float, 1e-6, minimum=0, doc="added to mean(x²)"),
           Arg("offset", float, 0, doc="scale is offset + w; Gemma's (1 + w) is offset=1"),
           example="norm: rms_norm(1e-6)")
def rms_norm(b, use, ctx, x):
    """RMSNorm (Zhang & Sennrich 2019, Eq. 4): x / √(mean(x²) + ε) · (offset + w); no mean, no shift."""
    offset = use["offset"]
    offset = int(offset) if float(offset).is_integer() else offset
    return b.emit("rms_norm", (x,), ctx.local, dim=b.shape(x)[-1], eps=use["eps"], offset=offset, **ctx.attrs)


@construct("norm", "l2_norm", Arg("eps", float, 1e-6, minimum=0, doc="added to mean(x²)"),
           example="norm: l2_norm(1e-5)")
def l2_norm(b, use, ctx, x):
    """x / √(mean(x²) + ε) without a weight (Llama 4's L2 norm of q and k, `qk_norm: l2`)."""
    return b.emit("l2_norm", (x,), ctx.local, dim=b.shape(x)[-1], eps=use["eps"], **ctx.attrs)
