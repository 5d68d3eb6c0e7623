"""A sparse mixture of experts as two op kinds (Fedus et al. 2022, "Switch Transformers"; Mixtral,
Jiang et al. 2024, §2.1): a `router` (HF's `gate`) chooses each token's top_k of E experts and
their weights, and `moe` (HF's `experts`) runs those expert MLPs and sums them, weighted."""

from __future__ import annotations

import numpy as np

from graphspec.ops.gpt_oss import clamped_glu, onnx_clamped_glu, relax_clamped_glu
from graphspec.ops.registry import HAS_PARAMS, MAC, F, ShapeError, Torch, numel, op, th


@op("router", HAS_PARAMS, MAC)
class Router:
    """The router of a mixture (HF's TopKRouter, `gate`): x (..., d) -> routing weights (..., E),
    zero outside each token's top_k experts. Scores s = softmax(x Wᵀ) (Mixtral §2.1, Qwen) or
    sigmoid(x Wᵀ) (DeepSeek-V3, arXiv:2412.19437 §2.1.2, Eq. 15). The choice ranks s, plus the
    buffer `e_score_correction_bias` when `bias` (V3's auxiliary-loss-free balancing: the bias
    moves the choice, never the weights), and with `groups` > 1 only among the experts of the
    `topk_groups` best of `groups` equal groups (device-limited routing: a group ranks by its
    best expert under softmax, DeepSeek-V2 §2.1.3 `group_limited_greedy`, by the sum of its
    best two under sigmoid, V3). The weights are the chosen s, renormalised to sum 1 when
    `normalize`, times `scale` (routed_scaling_factor). score "topk_softmax" is gpt-oss's
    (HF GptOssTopKRouter): logits x Wᵀ + b (`linear_bias`), the top_k logits softmaxed.

    MACs per token: d·E (the scores); the choice (top-k, groups) is not counted."""

    defaults = {"score": "softmax", "normalize": True, "scale": 1.0, "groups": 1, "topk_groups": 1, "bias": False,
                "linear_bias": False}

    def shape(x, *, experts, top_k, dim, score="softmax", normalize=True, scale=1.0, groups=1, topk_groups=1, bias=False,
              linear_bias=False):
        if top_k > experts or experts % groups or topk_groups > groups or top_k > experts // groups * topk_groups:
            raise ShapeError(f"router: {experts} experts in {groups} groups, top {topk_groups} groups, top {top_k}")
        return (*x[:-1], experts)

    def params(x, *, experts, linear_bias=False, **_):
        return {"weight": (experts, x[-1]), **({"bias": (experts,)} if linear_bias else {})}

    def buffers(x, *, experts, bias=False, **_):
        return {"e_score_correction_bias": (experts,)} if bias else {}

    def macs(out, x, *, experts, **_):
        return numel(x[:-1]) * x[-1] * experts

    torch = Torch(init=lambda a: f"SoftmaxTopKRouter({a['dim']}, {a['experts']}, {a['top_k']}"
                  + ("" if a["linear_bias"] else ", bias=False") + ")"
                  if a["score"] == "topk_softmax" else f"TopKRouter({a['dim']}, {a['experts']}, {a['top_k']}" + "".join(
                      f", {k}={a[k]}" for k, v in Router.defaults.items() if a[k] != v) + ")",
                  call="self.{mod}({0})", helpers=("TopKRouter", "SoftmaxTopKRouter"))

    def eval(w, x, *, experts, top_k, score="softmax", normalize=True, scale=1.0, groups=1, topk_groups=1,
             bias=False, linear_bias=False, **_):
        if score == "topk_softmax":  # gpt-oss (HF GptOssTopKRouter): softmax over the top_k logits
            logits = F.linear(x.float(), w["weight"].float(), w["bias"].float() if linear_bias else None)
            top, index = logits.topk(top_k, dim=-1)
            return th.zeros_like(logits).scatter(-1, index, top.softmax(-1)).to(x.dtype)
        logits = F.linear(x.float(), w["weight"].float())
        s = logits.softmax(-1) if score == "softmax" else logits.sigmoid()
        choice = s + w["e_score_correction_bias"].float() if bias else s
        if groups > 1:
            g = choice.unflatten(-1, (groups, experts // groups))  # ..., groups, E/groups
            best = g.amax(-1) if score == "softmax" else g.topk(2, dim=-1).values.sum(-1)
            keep = th.zeros_like(best).scatter(-1, best.topk(topk_groups, dim=-1).indices, 1.0)
            choice = choice.masked_fill(keep.repeat_interleave(experts // groups, -1) == 0, float("-inf"))
        index = choice.topk(top_k, dim=-1).indices
        weight = s.gather(-1, index)
        if normalize:
            weight = weight / weight.sum(-1, keepdim=True)
        return th.zeros_like(s).scatter(-1, index, weight * scale).to(x.dtype)

    # ONNX and Relax keep what reaches the k-th largest choice score (per group, then per expert)
    # NB: a tie at the k-th score keeps more than k experts, where torch's topk keeps k
    # topk_softmax (gpt-oss) is softmax renormalised over the top_k: the same weights
    def onnx(e, x, *, experts, top_k, score="softmax", normalize=True, scale=1.0, groups=1, topk_groups=1,
             bias=False, linear_bias=False, **_):
        logits = e("MatMul", x, e("Transpose", e.param("weight"), perm=[1, 0]))
        logits = e("Add", logits, e.param("bias")) if linear_bias else logits
        s = e("Softmax", logits, axis=-1) if score != "sigmoid" else e("Sigmoid", logits)
        choice = e("Add", s, e.param("e_score_correction_bias")) if bias else s
        if groups > 1:
            rank = len(e.shape(x))
            g = e("Reshape", choice, e.ints(*[0] * (rank - 1), groups, experts // groups))
            if score == "softmax":
                best = e("ReduceMax", g, e.ints(-1), keepdims=0)
            else:
                best = e("ReduceSum", e("TopK", g, e.ints(2), axis=-1, outputs=2)[0], e.ints(-1), keepdims=0)
            kth = e("Gather", e("TopK", best, e.ints(topk_groups), axis=-1, outputs=2)[0], e.ints(topk_groups - 1),
                    axis=-1)
            keep = e("Unsqueeze", e("GreaterOrEqual", best, kth), e.ints(-1))  # ..., groups, 1
            g = e("Where", keep, g, e.scalar(float("-inf")))
            choice = e("Reshape", g, e.ints(*[0] * (rank - 1), experts))
        kth = e("Gather", e("TopK", choice, e.ints(top_k), axis=-1, outputs=2)[0], e.ints(top_k - 1), axis=-1)
        combine = e("Where", e("GreaterOrEqual", choice, kth), s, e.scalar(0.0))
        if normalize:
            combine = e("Div", combine, e("ReduceSum", combine, e.ints(-1), keepdims=1))
        return e("Mul", combine, e.scalar(scale)) if scale != 1.0 else combine

    def relax(e, x, *, experts, top_k, score="softmax", normalize=True, scale=1.0, groups=1, topk_groups=1,
              bias=False, linear_bias=False, **_):
        logits = e("linear", x, e.param("weight"), e.param("bias") if linear_bias else None)
        s = e.softmax(logits, axis=-1) if score != "sigmoid" else e("sigmoid", logits)
        choice = e("add", s, e.param("e_score_correction_bias")) if bias else s
        if groups > 1:
            lead = e.dims(x)[:-1]
            g = e("reshape", choice, [*lead, groups, experts // groups])
            if score == "softmax":
                best = e("max", g, axis=[-1])
            else:
                top2 = e("take", e("sort", g, axis=-1, descending=True), e.const(np.array([0, 1], np.int64)), axis=-1)
                best = e("sum", top2, axis=[-1])
            kth = _kth(e, best, topk_groups)
            keep = e("expand_dims", e("greater_equal", best, kth), axis=len(lead) + 1)  # ..., groups, 1
            g = e("where", keep, g, e.scalar(float("-inf")))
            choice = e("reshape", g, [*lead, experts])
        combine = e("where", e("greater_equal", choice, _kth(e, choice, top_k)), s, e.scalar(0.0))
        if normalize:
            combine = e("divide", combine, e("sum", combine, axis=[-1], keepdims=True))
        return e("multiply", combine, e.scalar(scale)) if scale != 1.0 else combine


def _kth(e, x, k):
    """The k-th largest entry along the last axis of a Relax tensor, kept as a length-1 axis."""
    return e("take", e("sort", x, axis=-1, descending=True), e.const(np.array([k - 1], np.int64)), axis=-1)


@op("moe", HAS_PARAMS, MAC)
class Moe:
    """The experts of a mixture (Mixtral §2.1): x (..., d) and routing weights (..., E) from a
    `router` (zero outside each token's top_k) -> (..., d), Σₑ weightₑ · expertₑ(x). A gated
    expert is down(act(gate(x)) ⊙ up(x)), its gate and up stacked as HF's `gate_up_proj`
    (E, 2·ff, d); an ungated one is down(act(up(x))). act "clamped_swiglu" is gpt-oss's expert
    in HF's GptOssExperts layout: gate_up_proj (E, d, 2·ff) with gate and up interleaved in its
    columns, down_proj (E, ff, d), with `bias` their biases (E, 2·ff) and (E, d), and the unit
    graphspec/ops/gpt_oss.py's clamped_glu(gate, up, alpha, limit).

    With weigh "input" (Llama 4, HF Llama4TextMoe) the weight multiplies the expert's input
    instead, Σₑ expertₑ(weightₑ · x).

    MACs per token: top_k experts (3·d·ff gated, 2·d·ff not); the router is its own op.
    NB: what a token does not use is not counted (`params` counts every expert; analysis's
    `active_param_count` counts top_k of them)."""

    defaults = {"gated": True, "act": "silu", "alpha": 1.702, "limit": 7.0, "bias": False}

    def shape(x, routing, *, experts, top_k, dim, d_ff, gated=True, act="silu", alpha=1.702, limit=7.0, bias=False,
              weigh="output"):
        if routing[-1] != experts or top_k > experts:
            raise ShapeError(f"moe: {experts} experts, top {top_k}, routing weights {routing}")
        return x

    def params(x, routing, *, experts, d_ff, gated=True, act="silu", bias=False, **_):
        d = x[-1]
        if act == "clamped_swiglu":  # gpt-oss: (E, in, out), as HF's GptOssExperts
            biases = {"gate_up_proj_bias": (experts, 2 * d_ff), "down_proj_bias": (experts, d)} if bias else {}
            return {"gate_up_proj": (experts, d, 2 * d_ff), "down_proj": (experts, d_ff, d), **biases}
        up = {"gate_up_proj": (experts, 2 * d_ff, d)} if gated else {"up_proj": (experts, d_ff, d)}
        return {**up, "down_proj": (experts, d, d_ff)}

    def macs(out, x, routing, *, top_k, d_ff, gated=True, **_):
        return numel(x[:-1]) * top_k * (3 if gated else 2) * x[-1] * d_ff  # NB: unrouted experts not counted

    torch = Torch(init=lambda a: f"ClampedSwiGLUExperts({a['experts']}, {a['top_k']}, {a['dim']}, {a['d_ff']}"
                  + "".join(f", {k}={a[k]}" for k in ("alpha", "limit") if a[k] != Moe.defaults[k])
                  + ("" if a["bias"] else ", bias=False") + ")"
                  if a["act"] == "clamped_swiglu" else
                  f"Experts({a['experts']}, {a['top_k']}, {a['dim']}, {a['d_ff']}, act={a['act']!r}, gated={a['gated']}"
                  + (', weigh="input"' if a.get("weigh") == "input" else "") + ")",
                  call="self.{mod}({0}, {1})", helpers=("Experts", "ClampedSwiGLUExperts"))

    def eval(w, x, routing, *, experts, top_k, dim, d_ff, gated=True, act="silu", alpha=1.702, limit=7.0, bias=False,
             weigh="output"):
        if act == "clamped_swiglu":
            return _clamped_eval(w, x, routing, experts, alpha, limit, bias)
        fn = {"silu": F.silu, "gelu": F.gelu, "relu": F.relu,
              "gelu_tanh": lambda t: F.gelu(t, approximate="tanh")}[act]
        out = th.zeros_like(x)
        for e in range(experts):
            weight = routing[..., e:e + 1]
            if not bool((weight != 0).any()):
                continue
            xe = x * weight.to(x.dtype) if weigh == "input" else x  # Llama 4: the expert's input weighted
            if gated:
                g, u = F.linear(xe, w["gate_up_proj"][e]).chunk(2, -1)
                h = fn(g) * u
            else:
                h = fn(F.linear(xe, w["up_proj"][e]))
            y = F.linear(h, w["down_proj"][e])
            out = out + (y if weigh == "input" else y * weight.to(x.dtype))
        return out

    # ONNX and Relax run every expert on every token and weight the results by the routing
    # weights (zero outside each token's top_k).
    # NB: that costs E/top_k times the counted expert MACs (4x for Mixtral); it is the clearest
    # static-shape form, not the fast one.
    def onnx(e, x, routing, *, experts, top_k, dim, d_ff, gated=True, act="silu", alpha=1.702, limit=7.0, bias=False,
             weigh="output"):
        xs = e("Unsqueeze", x, e.ints(-3))  # ..., 1, N, d
        if act == "clamped_swiglu":  # gpt-oss: (E, in, out) weights, gate/up interleaved, biases
            h = e("MatMul", xs, e.param("gate_up_proj"))  # ..., E, N, 2ff
            h = e("Add", h, e("Unsqueeze", e.param("gate_up_proj_bias"), e.ints(-2))) if bias else h
            even = e.ints(*range(0, 2 * d_ff, 2))
            odd = e.ints(*range(1, 2 * d_ff, 2))
            h = onnx_clamped_glu(e, e("Gather", h, even, axis=-1), e("Gather", h, odd, axis=-1), alpha, limit)
            y = e("MatMul", h, e.param("down_proj"))  # ..., E, N, d
            y = e("Add", y, e("Unsqueeze", e.param("down_proj_bias"), e.ints(-2))) if bias else y
            wts = e("Unsqueeze", e("Transpose", routing, perm=_swap_last(len(e.shape(routing)))), e.ints(-1))
            return e("ReduceSum", e("Mul", y, wts), e.ints(-3), keepdims=0)
        wts = e("Unsqueeze", e("Transpose", routing, perm=_swap_last(len(e.shape(routing)))), e.ints(-1))  # ..., E, N, 1
        xs = e("Mul", xs, wts) if weigh == "input" else xs  # Llama 4: each expert's input weighted
        up = e.param("gate_up_proj" if gated else "up_proj")
        h = e("MatMul", xs, e("Transpose", up, perm=[0, 2, 1]))  # ..., E, N, (2)ff
        if gated:
            g, u = e("Split", h, e.ints(d_ff, d_ff), axis=-1, outputs=2)
            h = e("Mul", _onnx_act(e, act, g), u)
        else:
            h = _onnx_act(e, act, h)
        y = e("MatMul", h, e("Transpose", e.param("down_proj"), perm=[0, 2, 1]))  # ..., E, N, d
        return e("ReduceSum", y if weigh == "input" else e("Mul", y, wts), e.ints(-3), keepdims=0)

    def relax(e, x, routing, *, experts, top_k, dim, d_ff, gated=True, act="silu", alpha=1.702, limit=7.0, bias=False,
              weigh="output"):
        rank = len(e.shape(routing))
        xs = e("expand_dims", x, axis=rank - 2)  # ..., 1, N, d
        if act == "clamped_swiglu":  # gpt-oss: (E, in, out) weights, gate/up interleaved, biases
            h = e("matmul", xs, e.param("gate_up_proj"))  # ..., E, N, 2ff
            h = e("add", h, e("expand_dims", e.param("gate_up_proj_bias"), axis=1)) if bias else h
            g = e("strided_slice", h, axes=[rank], begin=[0], end=[2 * d_ff], strides=[2])
            u = e("strided_slice", h, axes=[rank], begin=[1], end=[2 * d_ff], strides=[2])
            y = e("matmul", relax_clamped_glu(e, g, u, alpha, limit), e.param("down_proj"))  # ..., E, N, d
            y = e("add", y, e("expand_dims", e.param("down_proj_bias"), axis=1)) if bias else y
            wts = e("expand_dims", e("permute_dims", routing, _swap_last(rank)), axis=rank)
            return e("sum", e("multiply", y, wts), axis=[rank - 2])
        wts = e("expand_dims", e("permute_dims", routing, _swap_last(rank)), axis=rank)  # ..., E, N, 1
        xs = e("multiply", xs, wts) if weigh == "input" else xs  # Llama 4: each expert's input weighted
        up = e.param("gate_up_proj" if gated else "up_proj")
        h = e("matmul", xs, e("permute_dims", up, [0, 2, 1]))  # ..., E, N, (2)ff
        if gated:
            parts = e("split", h, [d_ff], axis=-1)
            g, u = e.item(parts, 0), e.item(parts, 1)
            h = e("multiply", _relax_act(e, act, g), u)
        else:
            h = _relax_act(e, act, h)
        y = e("matmul", h, e("permute_dims", e.param("down_proj"), [0, 2, 1]))  # ..., E, N, d
        return e("sum", y if weigh == "input" else e("multiply", y, wts), axis=[rank - 2])


def _clamped_eval(w, x, routing, experts, alpha, limit, bias):
    """gpt-oss's experts (HF GptOssExperts): gate_up = x·W + b, gate/up interleaved in its columns."""
    out = th.zeros_like(x)
    for e in range(experts):
        weight = routing[..., e:e + 1]
        if not bool((weight != 0).any()):
            continue
        h = x @ w["gate_up_proj"][e] + (w["gate_up_proj_bias"][e] if bias else 0)
        h = clamped_glu(h[..., ::2], h[..., 1::2], alpha, limit) @ w["down_proj"][e]
        out = out + (h + (w["down_proj_bias"][e] if bias else 0)) * weight.to(x.dtype)
    return out


def _swap_last(rank: int) -> list[int]:
    """(..., N, E) -> (..., E, N)."""
    return [*range(rank - 2), rank - 1, rank - 2]


def _onnx_act(e, act, x):
    if act == "silu":
        return e("Mul", x, e("Sigmoid", x))
    if act == "relu":
        return e("Relu", x)
    return e("Gelu", x, approximate="tanh" if act == "gelu_tanh" else "none")


def _relax_act(e, act, x):
    if act == "silu":
        return e("nn.silu", x)
    if act == "relu":
        return e("nn.relu", x)
    return e("nn.gelu_tanh", x) if act == "gelu_tanh" else e("nn.gelu", x)
