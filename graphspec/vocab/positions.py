"""Position schemes (`embed: tokens(..., pos=rope(10000))`).

A scheme acts where it belongs, through the hooks it declares:

- `lower(b, use, ctx, x)`: at the embedding, `ctx` an `EmbedAt` (where: tokens | patches,
  N the sequence length, dim); returns x with positions added (learned, sinusoidal);
- hook `qk(b, use, layer, q, k) -> (q, k)`: on the heads inside every self-attention (rope);
- hook `scores(b, use, layer, s) -> s`: on the attention logits (alibi).

A scheme with an attention hook needs attention (`ATTENTION_ONLY`): the spec reader refuses it on
a model whose blocks have none."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphspec.vocab.registry import Arg, construct


@dataclass(frozen=True)
class EmbedAt:
    where: str  # tokens | patches
    N: Any
    dim: Any
    max_len: Any = None


@construct("pos", "none", example="pos: none")
def none(b, use, ctx, x):
    """No position information (an encoder over a set; DETR's encoder gets it per layer)."""
    return x


@construct("pos", "sinusoidal", example="embed: tokens(1000, dim=64, pos=sinusoidal)")
def sinusoidal(b, use, ctx, x):
    """Fixed sinusoids added to the embedding (Vaswani §3.5)."""
    pe = b.emit("sinusoidal", (), "pos_encoding", length=b.shape(x)[1], dim=ctx.dim)
    return b.emit("add", (x, pe), "with_pos")


@construct("pos", "learned", Arg("max_len", int, None, minimum=1, doc="table size (tokens)"),
           example="embed: tokens(1000, dim=64, pos=learned(512))")
def learned(b, use, ctx, x):
    """A learned table of positions added to the embedding (GPT, BERT; ViT's pos_embed)."""
    if ctx.where == "patches":
        pe = b.emit("parameter", (), "pos_embed", shape=(1, b.shape(x)[1], ctx.dim), init="trunc_normal")
        return b.emit("add", (x, pe), "with_pos")
    pos = b.emit("positions", (), "position_ids", length=ctx.N)
    pe = b.emit("embedding", (pos,), "pos", num=use["max_len"], dim=ctx.dim, weights="embed.pos")
    return b.emit("add", (x, pe), "with_pos")


@construct("pos", "sine2d", example="spec: detr_r50")
def sine2d(b, use, ctx, x):
    """DETR's 2-D sine positions of a feature map, added to queries and keys in every layer
    (built by the `project` embedding, graphspec/lower_cnn.py)."""
    return x


def _check_rope(a):
    if not 0 < a["fraction"] <= 1:
        return [("fraction", f"fraction {a['fraction']} is not in (0, 1]",
                 "write the share of each head's dims that rotate, e.g. fraction=0.4 (Phi-2)")]
    return []


def _rope_qk(b, use, layer, q, k):
    rd = rotary_dim(use, layer.head_dim)
    attrs = dict(theta=float(use["theta"]), rotary_dim=rd, interleaved=use["interleaved"])
    return b.emit("rotary", (q,), "q_rot", **attrs), b.emit("rotary", (k,), "k_rot", **attrs)


def rotary_dim(use, head_dim):
    """The rotated dims of each head: fraction × head_dim (Phi-2: 0.4 × 80 = 32)."""
    r = use["fraction"] * head_dim
    return int(r) if float(r).is_integer() else r


@construct("pos", "rope", Arg("theta", float, 10000.0, minimum=0, exclusive=True, doc="base of the angles"),
           Arg("fraction", float, 1.0, doc="share of each head's dims that rotate (Phi-2: 0.4)"),
           Arg("interleaved", bool, False, doc="rotate pairs (x0, x1) as GPT-J, not halves as Llama"),
           Arg("max_len", int, None, minimum=1,
               doc="context length trained for (HF's max_position_embeddings); no table, no params"),
           check=_check_rope, hooks={"qk": _rope_qk},
           example="embed: tokens(32000, dim=4096, pos=rope(10000))")
def rope(b, use, ctx, x):
    """Rotary position embedding (Su et al. 2021, RoFormer §3.4): q and k of every
    self-attention rotated by position; nothing is added to the embedding. `max_len` records
    the context length the model was trained for (Llama-2: 4096) and changes nothing built;
    `graphspec export --format hf` writes it as max_position_embeddings."""
    return x


def _alibi_scores(b, use, layer, s):
    return b.emit("alibi", (s,), "alibi", heads=layer.heads)


@construct("pos", "alibi", hooks={"scores": _alibi_scores}, example="embed: tokens(1000, dim=64, pos=alibi)")
def alibi(b, use, ctx, x):
    """ALiBi (Press et al. 2022, §3): a fixed per-head linear penalty m_h·(j - i) on the
    attention logits; nothing is added to the embedding."""
    return x


def attention_only(use) -> bool:
    """Whether the scheme acts inside attention only (rope, alibi)."""
    return use is not None and bool(set(use.construct.hooks) & {"qk", "scores"})
