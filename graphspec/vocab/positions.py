"""Position schemes (`embed: tokens(..., pos=rope(10000))`).

A scheme acts where it belongs, through the hooks it declares:

- `lower(b, use, ctx, x)`: at the embedding, `ctx` an `EmbedAt` (where: tokens | patches,
  N the sequence length, dim); returns x with positions added (learned, sinusoidal);
- hook `qk(b, use, layer, q, k) -> (q, k)`: on the heads inside every self-attention (rope;
  temperature scales q alone);
- hook `scores(b, use, layer, s) -> s`: on the attention logits (alibi).

A scheme with an attention hook needs attention (`ATTENTION_ONLY`): the spec reader refuses it on
a model whose blocks have none."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import sympy

from graphspec.vocab.registry import FLOATS, Arg, construct


@dataclass(frozen=True)
class EmbedAt:
    where: str  # tokens | patches
    N: Any
    dim: Any
    max_len: Any = None
    ids: Any = None  # tokens: the token ids' node (learned(padding_idx=...) counts the tokens that are not padding)


@construct("pos", "none", example="pos: none")
def none(b, use, ctx, x):
    """No position information (an encoder over a set; DETR's encoder gets it per layer)."""
    return x


@construct("pos", "sinusoidal", example="embed: tokens(1000, dim=64, pos=sinusoidal)")
def sinusoidal(b, use, ctx, x):
    """Fixed sinusoids added to the embedding (Vaswani §3.5)."""
    pe = b.emit("sinusoidal", (), "pos_encoding", length=b.shape(x)[1], dim=ctx.dim)
    return b.emit("add", (x, pe), "with_pos")


def _check_learned(a):
    pad, n = a["padding_idx"], a["max_len"]
    if pad is not None and n is not None and pad + 1 >= n:
        return [("padding_idx", f"positions start after padding_idx={pad}, and the table has {n} rows",
                 f"write a table of more than {pad + 1} rows, e.g. learned({pad + 1 + 512}, padding_idx={pad})")]
    return []


@construct("pos", "learned", Arg("max_len", int, None, minimum=1, doc="table size (tokens)"),
           Arg("grid", int, None, minimum=1, doc="patches: the table's grid side, resampled to the image's"),
           Arg("padding_idx", int, None, minimum=0, doc="tokens: positions count the tokens that are not this "
               "id, from padding_idx + 1, and padding reads row padding_idx (RoBERTa, XLM-R: 1)"),
           check=_check_learned, example="embed: tokens(1000, dim=64, pos=learned(512))")
def learned(b, use, ctx, x):
    """A learned table of positions added to the embedding (GPT, BERT; ViT's pos_embed). On
    patches, `grid=g` keeps a table for g × g patches (and the class token) whatever the image,
    resampled bicubically to its patch grid when that differs (DINOv2's 37 × 37 table at 224). On
    tokens, `padding_idx=P`: fairseq's positions (RoBERTa, XLM-R), P + 1, P + 2, ... over the tokens
    that are not P, and P for padding, so a row reads the same positions however it is padded."""
    from graphspec.spec.errors import SpecError

    if ctx.where == "patches" and use["padding_idx"] is not None:
        raise SpecError.at(use.loc or b.loc, "padding_idx= counts the tokens that are not padding, and patches "
                           "have no token ids", "leave padding_idx out")
    if ctx.where == "patches":
        N, g = b.shape(x)[1], use["grid"]
        H, W = b.g.meta["grid"]
        if g is None or (H, W) == (g, g):  # the table is the image's
            pe = b.emit("parameter", (), "pos_embed", shape=(1, N, ctx.dim), init="trunc_normal")
        else:
            prefix = int(sympy.simplify(N - H * W))  # the class token
            pe = b.emit("parameter", (), "pos_embed", shape=(1, prefix + g * g, ctx.dim), init="trunc_normal")
            pe = b.emit("interpolate_pos", (pe,), "pos_embed_resampled", grid=g, H=H, W=W, prefix=prefix)
        return b.emit("add", (x, pe), "with_pos")
    if use["padding_idx"] is None:
        pos = b.emit("positions", (), "position_ids", length=ctx.N)
    else:
        pos = b.emit("padded_positions", (ctx.ids,), "positions", pad=use["padding_idx"])
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
    s = a["scaling"]
    if s is not None and s.name == "longrope" and s["factor"] is None and s["attention_factor"] is None \
            and a["max_len"] is None:
        return [("scaling", "longrope's attention factor needs the context length it extends to",
                 "give rope(..., max_len=131072) (HF's max_position_embeddings), or longrope(..., factor=32)")]
    return []


def _rope_qk(b, use, layer, q, k):
    rd = rotary_dim(use, layer.head_dim)
    attrs = dict(theta=float(use["theta"]), rotary_dim=rd, interleaved=use["interleaved"], scaling=scaling(use))
    return b.emit("rotary", (q,), "q_rot", **attrs), b.emit("rotary", (k,), "k_rot", **attrs)


def scaling(use) -> tuple | None:
    """The `rotary` op's `scaling` attribute of a rope use: its scaling construct lowered."""
    s = use.get("scaling")
    return None if s is None else s.lower(None, use)  # ctx: the rope use (longrope reads max_len)


def rotary_dim(use, head_dim):
    """The rotated dims of each head: fraction × head_dim (Phi-2: 0.4 × 80 = 32)."""
    r = use["fraction"] * head_dim
    n = round(r)  # 30/44 · 44 is 29.999999999999996 in floats: a whole count within rounding is that count
    return int(n) if abs(r - n) <= 1e-9 * max(1.0, abs(r)) else r


@construct("pos", "rope", Arg("theta", float, 10000.0, minimum=0, exclusive=True, doc="base of the angles"),
           Arg("fraction", float, 1.0, doc="share of each head's dims that rotate (Phi-2: 0.4)"),
           Arg("interleaved", bool, False, doc="rotate pairs (x0, x1) as GPT-J, not halves as Llama"),
           Arg("max_len", int, None, minimum=1,
               doc="context length trained for (HF's max_position_embeddings); no table, no params"),
           Arg("scaling", "rope_scaling", None, doc="frequencies rescaled for a longer context: linear(8), "
               "llama3(8), yarn(40, original=4096)"),
           check=_check_rope, hooks={"qk": _rope_qk},
           example="embed: tokens(32000, dim=4096, pos=rope(10000))")
def rope(b, use, ctx, x):
    """Rotary position embedding (Su et al. 2021, RoFormer §3.4): q and k of every
    self-attention rotated by position; nothing is added to the embedding. `max_len` records
    the context length the model was trained for (Llama-2: 4096) and changes nothing built;
    `graphspec export --format hf` writes it as max_position_embeddings."""
    return x


# -- RoPE scaling: `rope(500000, scaling=llama3(8, low=1, high=4, original=8192))` ---------------------
# Each lowers to the `rotary` op's `scaling` attribute, a tuple that graphspec.ops.llm.rope_frequencies
# reads (the generated code's helper of the same name): the formulas of Hugging Face's
# modeling_rope_utils, whose `rope_parameters` / `rope_scaling` name the same numbers.

@construct("rope_scaling", "none", example="embed: tokens(1000, dim=64, pos=rope(10000, scaling=none))")
def no_scaling(b, use, ctx):
    """The angles as RoFormer defines them (HF's rope_type "default")."""
    return None


@construct("rope_scaling", "linear", Arg("factor", float, minimum=1, doc="positions ÷ factor"),
           example="embed: tokens(1000, dim=64, pos=rope(1000000, scaling=linear(8)))")
def linear_scaling(b, use, ctx):
    """Position interpolation (Chen et al. 2023, arXiv:2306.15595, §2.3): every frequency ÷ factor,
    so factor × the trained length spans the trained angles (Gemma-3's global layers: 8)."""
    return ("linear", float(use["factor"]))


def _check_llama3(a):
    if a["high"] <= a["low"]:
        return [("high", f"high {a['high']:g} is not above low {a['low']:g}",
                 "write llama3(8, low=1, high=4, original=8192) (Llama 3.1's values)")]
    return []


@construct("rope_scaling", "llama3", Arg("factor", float, minimum=1, doc="long wavelengths ÷ factor"),
           Arg("low", float, 1.0, minimum=0, exclusive=True, doc="HF's low_freq_factor"),
           Arg("high", float, 4.0, minimum=0, exclusive=True, doc="HF's high_freq_factor"),
           Arg("original", int, 8192, minimum=1, doc="context length before scaling (original_max_position_embeddings)"),
           check=_check_llama3,
           example="embed: tokens(1000, dim=64, pos=rope(500000, scaling=llama3(8, low=1, high=4, original=8192)))")
def llama3(b, use, ctx):
    """Llama 3.1's frequency-dependent scaling (Meta 2024, "The Llama 3 Herd of Models", and its
    reference code): wavelengths longer than original/low are ÷ factor, shorter than original/high
    kept, and blended smoothly in between."""
    return ("llama3", float(use["factor"]), float(use["low"]), float(use["high"]), int(use["original"]))


def _check_yarn(a):
    if a["beta_fast"] <= a["beta_slow"]:
        return [("beta_fast", f"beta_fast {a['beta_fast']:g} is not above beta_slow {a['beta_slow']:g}",
                 "write yarn(factor, original=..., beta_fast=32, beta_slow=1) (the paper's values)")]
    return []


def yarn_mscale(factor: float, mscale: float = 1.0) -> float:
    """YaRN's attention temperature √(1/t) = 0.1·mscale·ln(factor) + 1 (Peng et al. 2023, Eq. 22)."""
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


@construct("rope_scaling", "yarn", Arg("factor", float, minimum=1, doc="context length ÷ original"),
           Arg("original", int, minimum=1, doc="context length before scaling (original_max_position_embeddings)"),
           Arg("beta_fast", float, 32.0, minimum=0, exclusive=True, doc="dims turning more often keep their angles"),
           Arg("beta_slow", float, 1.0, minimum=0, exclusive=True, doc="dims turning less often are ÷ factor"),
           Arg("attention_factor", float, None, minimum=0, exclusive=True,
               doc="cos/sin multiplier; default from factor (and mscale / mscale_all_dim)"),
           Arg("mscale", float, None, minimum=0, doc="DeepSeek's mscale (the factor's numerator)"),
           Arg("mscale_all_dim", float, None, minimum=0, doc="DeepSeek's mscale_all_dim (its denominator)"),
           Arg("truncate", bool, True, doc="round the ramp's ends to whole dims (HF's default)"),
           check=_check_yarn, example="embed: tokens(1000, dim=64, pos=rope(10000, scaling=yarn(4, original=4096)))")
def yarn(b, use, ctx):
    """YaRN (Peng et al. 2023, arXiv:2309.00071, §3.2-3.4): "NTK-by-parts" — dims that turn fewer
    than beta_slow times over the original context are interpolated (÷ factor), those turning more
    than beta_fast times kept, a linear ramp between; cos and sin are multiplied by the attention
    factor 0.1·ln(factor) + 1 (Qwen2.5's long context, DeepSeek-V2/V3)."""
    af = use["attention_factor"]
    if af is None:
        f, m, m_all = float(use["factor"]), use["mscale"], use["mscale_all_dim"]
        af = yarn_mscale(f, m) / yarn_mscale(f, m_all) if m and m_all else yarn_mscale(f)
    return ("yarn", float(use["factor"]), int(use["original"]), float(use["beta_fast"]), float(use["beta_slow"]),
            float(af), bool(use["truncate"]))


def _longrope_dims(use, rotary_dim):
    """Located problems of a longrope use on heads that rotate `rotary_dim` dims (stack.check_vocab)."""
    n = rotary_dim // 2
    return [(f"longrope's {k} has {len(use[k])} factors, but rope rotates {rotary_dim} dims of each head "
             f"({n} frequencies)", f"give {k} as a list of {n} numbers, one per rotated pair of dims")
            for k in ("short", "long") if len(use[k]) != n]


def longrope_attention_factor(factor: float, original: int) -> float:
    """LongRoPE's cos/sin multiplier √(1 + ln(factor) / ln(original)) (1 for factor ≤ 1; HF's
    _compute_longrope_parameters, Microsoft's Phi-3 code)."""
    return 1.0 if factor <= 1 else math.sqrt(1 + math.log(factor) / math.log(original))


@construct("rope_scaling", "longrope",
           Arg("short", FLOATS, minimum=0, exclusive=True, doc="per-frequency divisors up to `original` tokens"),
           Arg("long", FLOATS, minimum=0, exclusive=True, doc="per-frequency divisors beyond `original` tokens"),
           Arg("original", int, 4096, minimum=1, doc="context length before scaling (original_max_position_embeddings)"),
           Arg("factor", float, None, minimum=0, exclusive=True,
               doc="context length ÷ original; default rope's max_len ÷ original"),
           Arg("attention_factor", float, None, minimum=0, exclusive=True,
               doc="cos/sin multiplier; default √(1 + ln(factor) / ln(original))"),
           hooks={"dims": _longrope_dims},
           example="embed: tokens(1000, dim=64, pos=rope(10000, max_len=512, "
                   "scaling=longrope(short=[1, 1.1, 1.5, 2], long=[1, 2, 4, 8], original=64)))")
def longrope(b, use, ctx):
    """LongRoPE (Ding et al. 2024, arXiv:2402.13753; Phi-3 report arXiv:2404.14219): each of the
    rotary_dim/2 frequencies ÷ its own searched factor, the `short` list while the sequence is at
    most `original` tokens and the `long` list beyond; cos and sin × √(1 + ln(factor)/ln(original))
    (Phi-3-mini-128k, Phi-3.5-mini, Phi-4-mini)."""
    af = use["attention_factor"]
    if af is None:
        factor = use["factor"]
        if factor is None:  # HF: max_position_embeddings / original_max_position_embeddings
            factor = ctx["max_len"] / use["original"]
        af = longrope_attention_factor(float(factor), int(use["original"]))
    return ("longrope", use["short"], use["long"], int(use["original"]), float(af))


def _temperature_qk(b, use, layer, q, k):
    return b.emit("attn_temperature", (q,), "q_scaled", floor=float(use["floor"]), scale=float(use["scale"])), k


@construct("pos", "temperature", Arg("floor", float, 8192.0, minimum=0, exclusive=True,
                                     doc="HF's floor_scale: tokens per step of the temperature"),
           Arg("scale", float, 0.1, minimum=0, doc="HF's attn_scale: the log's weight"),
           hooks={"qk": _temperature_qk}, example="attention: pattern(chunked(8192) * 3, "
           "causal(pos=temperature(8192, 0.1)))", module="GlobalAttention",
           doc_class="Multi-head self-attention over the whole context without positions, the queries scaled "
                     "by the attention temperature (Llama 4's global NoPE layers).")
def temperature(b, use, ctx, x):
    """Attention temperature tuning (Llama 4's NoPE layers, HF's attn_temperature_tuning; after
    Nakanishi 2025, arXiv:2501.19399): no positions, but the query at position i is scaled by
    ln(⌊(i+1)/floor⌋ + 1)·scale + 1, sharper attention far into a long context (1 below floor − 1)."""
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
