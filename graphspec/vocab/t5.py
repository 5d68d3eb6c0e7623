"""T5's relative position buckets (`embed: tokens(..., pos=relative_buckets(32, 128))`).

Raffel et al. 2020 ("Exploring the Limits of Transfer Learning with a Unified Text-to-Text
Transformer", JMLR 21, §2.1): each head adds a learned scalar, chosen by the bucket of the
relative position j − i, to its attention logits. One `num_buckets × heads` table per stack
(`encoder.relative_attention_bias`), computed once from the stack's input by the `stack` hook
and added by every layer's self-attention (`scores`), as Hugging Face's T5Stack passes layer 0's
bias on. Bidirectional in an encoder, unidirectional under a causal (or sliding) mask."""

from __future__ import annotations

from graphspec import pyramid
from graphspec.vocab.registry import Arg, construct

UNIDIRECTIONAL = ("causal", "sliding")


def _stack_bias(b, use, mask, heads, x):
    """The stack's bias (h, N, N) of its input x, before the first block."""
    return pyramid.bucket_bias(b, x, heads, use["num_buckets"], use["max_distance"],
                               bidirectional=mask.name not in UNIDIRECTIONAL)


def _add_bias(b, use, layer, s):
    return b.emit("add", (s, layer.pos_state), "biased")


def _check(a):
    """The logarithmic buckets start at max_exact = num_buckets/2 (/4 when bidirectional) and
    end at max_distance, which must lie beyond."""
    if a["max_distance"] <= a["num_buckets"] // 2:
        return [("max_distance", f"max_distance {a['max_distance']} does not exceed the {a['num_buckets'] // 2} "
                 "exact buckets", f"use a max_distance above {a['num_buckets'] // 2} (T5: 128 with 32 buckets)")]
    return []


@construct("pos", "relative_buckets", Arg("num_buckets", int, 32, minimum=4, doc="buckets (both directions)"),
           Arg("max_distance", int, 128, minimum=1, doc="distances beyond share the last bucket"),
           check=_check, hooks={"stack": _stack_bias, "scores": _add_bias},
           example="pos: relative_buckets(32, 128)")
def relative_buckets(b, use, ctx, x):
    """T5's relative position bias (Raffel et al. 2020, §2.1): a learned scalar per head and
    bucket of j − i on the attention logits, one table per stack shared by its layers; nothing
    is added to the embedding."""
    return x
