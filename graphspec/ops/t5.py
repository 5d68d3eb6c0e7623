"""T5's relative position bias (Raffel et al. 2020, "Exploring the Limits of Transfer Learning
with a Unified Text-to-Text Transformer", §2.1; Mesh TensorFlow's `_relative_position_bucket`).

Each head adds a learned scalar to the attention score of a (query i, key j) pair, chosen by
the bucket of the relative position j − i: distances below `max_exact` = buckets/2 (of the
half a direction gets, when bidirectional) get a bucket each, longer ones share
logarithmically wider buckets up to `max_distance`, beyond which all share the last. The
encoder is bidirectional (half the buckets for j > i); the decoder is unidirectional (j > i
never happens under the causal mask, so all buckets go to j ≤ i). One table of
`num_buckets × heads` serves every layer of a stack: Hugging Face keeps it on layer 0
(`block.0.layer.0.SelfAttention.relative_attention_bias`) and passes the bias on.
"""

from __future__ import annotations

import math

import numpy as np

from graphspec.ops.registry import HAS_PARAMS, Torch, op, th


def relative_buckets(length: int, bidirectional: bool, num_buckets: int, max_distance: int):
    """(N, N) int64: the bucket of key j relative to query i (T5 §2.1, Mesh TensorFlow's
    `_relative_position_bucket`), in float32 arithmetic as the reference computes it, so that a
    distance on a bucket boundary falls on the same side."""
    rel = np.arange(length)[None, :] - np.arange(length)[:, None]  # j - i
    bucket = np.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        bucket += (rel > 0) * num_buckets
        rel = np.abs(rel)
    else:
        rel = -np.minimum(rel, 0)
    max_exact = num_buckets // 2
    ratio = np.maximum(rel, 1).astype(np.float32) / np.float32(max_exact)
    large = max_exact + (np.log(ratio) / np.float32(math.log(max_distance / max_exact))
                         * np.float32(num_buckets - max_exact)).astype(np.int64)
    large = np.minimum(large, num_buckets - 1)
    return (bucket + np.where(rel < max_exact, rel, large)).astype(np.int64)


@op("relative_bucket_bias", HAS_PARAMS)
class RelativeBucketBias:
    """T5's relative position bias for the self-attention of a sequence x (B, N, C): a
    `num_buckets × heads` table looked up by the bucket of each (i, j) -> bias (h, N, N).
    Only x's length is read. A gather: no MACs."""

    defaults = {"bidirectional": True, "num_buckets": 32, "max_distance": 128}

    def shape(x, *, heads, bidirectional=True, num_buckets=32, max_distance=128):
        return (heads, x[1], x[1])

    def params(x, *, heads, num_buckets=32, **_):
        return {"weight": (num_buckets, heads)}

    torch = Torch(init="nn.Embedding({num_buckets}, {heads})",
                  call="relative_bias(self.{mod}, {0}.shape[1], {bidirectional}, {max_distance})",
                  helpers=("relative_bias", "relative_buckets"))

    def eval(w, x, *, heads, bidirectional=True, num_buckets=32, max_distance=128):
        idx = th.from_numpy(relative_buckets(x.shape[1], bidirectional, num_buckets, max_distance))
        return w["weight"][idx].permute(2, 0, 1)  # h, N, N

    def onnx(e, x, *, heads, bidirectional=True, num_buckets=32, max_distance=128):
        N = e.shape(x)[1]
        idx = e.const(relative_buckets(N, bidirectional, num_buckets, max_distance), f"relative_buckets_{N}")
        t = e("Gather", e.param("weight"), idx, axis=0)  # N, N, h
        return e("Transpose", t, perm=[2, 0, 1])  # h, N, N

    def relax(e, x, *, heads, bidirectional=True, num_buckets=32, max_distance=128):
        N = e.shape(x)[1]
        idx = e.const(relative_buckets(N, bidirectional, num_buckets, max_distance))
        t = e("take", e.param("weight"), idx, axis=0, mode="clip")  # N, N, h
        return e("permute_dims", t, [2, 0, 1])
