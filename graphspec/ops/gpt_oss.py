"""Op kinds of gpt-oss (OpenAI 2025, "gpt-oss-120b & gpt-oss-20b Model Card", arXiv:2508.10925;
Hugging Face's modeling_gpt_oss.py): the attention sinks and the clamped SwiGLU of its experts.

    sink_softmax    softmax over [scores, sink_h] along the keys, the sink's share dropped
                    (HF eager_attention_forward: one learned logit `sinks` per head)
    clamped_swiglu  (clamp(u, -l, l) + 1) · g·σ(α·g), g = clamp(gate, max=l)
                    (HF GptOssExperts._apply_gate: α 1.702, l 7.0)

The experts themselves are graphspec/ops/moe.py's `moe` with act="clamped_swiglu", which calls
`clamped_glu` below.
"""

from __future__ import annotations

from graphspec.ops.registry import ELEMENTWISE, HAS_PARAMS, SOFTMAX, ShapeError, Torch, op, th


def clamped_glu(gate, up, alpha: float, limit: float):
    """gpt-oss's gated unit on torch tensors: (clamp(up, -limit, limit) + 1) · g·σ(α·g) with
    g = clamp(gate, max=limit)."""
    gate = gate.clamp(max=limit)
    up = up.clamp(min=-limit, max=limit)
    return (up + 1) * (gate * th.sigmoid(gate * alpha))


def onnx_clamped_glu(e, gate, up, alpha: float, limit: float):
    g = e("Min", gate, e.scalar(limit))
    u = e("Clip", up, e.scalar(-limit), e.scalar(limit))
    return e("Mul", e("Add", u, e.scalar(1.0)), e("Mul", g, e("Sigmoid", e("Mul", g, e.scalar(alpha)))))


def relax_clamped_glu(e, gate, up, alpha: float, limit: float):
    g = e("minimum", gate, e.scalar(limit))
    u = e("clip", up, -limit, limit)
    return e("multiply", e("add", u, e.scalar(1.0)), e("multiply", g, e("sigmoid", e("multiply", g, e.scalar(alpha)))))


@op("clamped_swiglu", ELEMENTWISE)
class ClampedSwiGLU:
    """gpt-oss's clamped SwiGLU on a gate and an up projection (..., d_ff) -> (..., d_ff):
    (clamp(up, -limit, limit) + 1) · g·σ(alpha·g), g = clamp(gate, max=limit)."""

    defaults = {"alpha": 1.702, "limit": 7.0}

    def shape(g, u, *, alpha=1.702, limit=7.0):
        if tuple(g) != tuple(u):
            raise ShapeError(f"clamped_swiglu: gate {g} and up {u} differ")
        return g

    torch = Torch(call="clamped_swiglu({0}, {1}, {alpha}, {limit})", helpers=("clamped_swiglu",))

    def eval(w, g, u, *, alpha=1.702, limit=7.0):
        return clamped_glu(g, u, alpha, limit)

    def onnx(e, g, u, *, alpha=1.702, limit=7.0):
        return onnx_clamped_glu(e, g, u, alpha, limit)

    def relax(e, g, u, *, alpha=1.702, limit=7.0):
        return relax_clamped_glu(e, g, u, alpha, limit)


@op("sink_softmax", HAS_PARAMS, SOFTMAX)
class SinkSoftmax:
    """Softmax over the keys with an attention sink (gpt-oss; Xiao et al. 2024, "Efficient
    Streaming Language Models with Attention Sinks"): scores (B, h, N, S) and one learned logit
    per head, `sinks` (h,), on the owning attention module: softmax([s, sink_h]) over S + 1, the
    sink's column dropped, so a head's probabilities sum to less than 1.

    NB: no MACs (the sink is a concat and a softmax over one more column); counted as a softmax
    of (B, h, N, S) under the `all` convention."""

    def shape(x, *, heads, weights=None):
        if len(x) != 4 or x[1] != heads:
            raise ShapeError(f"sink_softmax over {heads} heads got scores {x}")
        return x

    def params(x, *, heads, weights=None):
        return {"sinks": (heads,)}

    torch = Torch(call="softmax_with_sinks({0}, self.sinks)",
                  setup=("self.sinks = nn.Parameter(torch.zeros({heads}))", "nn.init.normal_(self.sinks, std=0.02)"),
                  helpers=("softmax_with_sinks",))

    def eval(w, x, *, heads, weights=None):
        sink = w["sinks"].to(x.dtype).view(1, -1, 1, 1).expand(*x.shape[:-1], 1)
        return th.cat([x, sink], -1).softmax(-1)[..., :-1]

    def onnx(e, x, *, heads, weights=None):
        N, S = e.shape(x)[-2:]
        sink = e("Expand", e("Reshape", e.param("sinks"), e.ints(1, heads, 1, 1)), e.batch_shape(x, heads, N, 1))
        probs = e("Softmax", e("Concat", x, sink, axis=-1), axis=-1)
        return e("Slice", probs, e.ints(0), e.ints(S), e.ints(-1))

    def relax(e, x, *, heads, weights=None):
        B, h, N, S = e.dims(x)
        sink = e("broadcast_to", e("reshape", e.param("sinks"), [1, heads, 1, 1]), [B, h, N, 1])
        probs = e.softmax(e("concat", [x, sink], axis=-1), axis=-1)
        return e("strided_slice", probs, axes=[3], begin=[0], end=[S])
