"""A sparse mixture of experts as one op kind (Fedus et al. 2022, "Switch Transformers"; Mixtral,
Jiang et al. 2024, §2.1): a token runs the top_k of E expert MLPs its router scores highest."""

from __future__ import annotations

import numpy as np

from graphspec.ops.registry import HAS_PARAMS, MAC, F, ShapeError, Torch, numel, op, th


@op("moe", HAS_PARAMS, MAC)
class Moe:
    """Mixture of experts (Mixtral §2.1): x (..., d) and router logits (..., E) -> (..., d).
    Each token goes to the `top_k` experts of highest softmax probability, weighted by those
    probabilities (renormalised to sum 1 when `normalize`). A gated expert is
    down(act(gate(x)) ⊙ up(x)), its gate and up stacked as HF's `gate_up_proj` (E, 2·ff, d);
    an ungated one is down(act(up(x))).

    MACs per token: top_k experts (3·d·ff gated, 2·d·ff not); the router is its own `linear`.
    NB: what a token does not use is not counted (`params` counts every expert; analysis's
    `active_param_count` counts top_k of them)."""

    defaults = {"gated": True, "normalize": True, "act": "silu"}

    def shape(x, logits, *, experts, top_k, dim, d_ff, gated=True, normalize=True, act="silu"):
        if logits[-1] != experts or top_k > experts:
            raise ShapeError(f"moe: {experts} experts, top {top_k}, router logits {logits}")
        return x

    def params(x, logits, *, experts, d_ff, gated=True, **_):
        d = x[-1]
        up = {"gate_up_proj": (experts, 2 * d_ff, d)} if gated else {"up_proj": (experts, d_ff, d)}
        return {**up, "down_proj": (experts, d, d_ff)}

    def macs(out, x, logits, *, top_k, d_ff, gated=True, **_):
        return numel(x[:-1]) * top_k * (3 if gated else 2) * x[-1] * d_ff  # NB: unrouted experts not counted

    torch = Torch(init="Experts({experts}, {top_k}, {dim}, {d_ff}, act={act}, gated={gated}, normalize={normalize})",
                  call="self.{mod}({0}, {1})", helpers=("Experts",))

    def eval(w, x, logits, *, experts, top_k, dim, d_ff, gated=True, normalize=True, act="silu"):
        probs = logits.float().softmax(-1)
        weight, index = probs.topk(top_k, dim=-1)  # ..., k
        if normalize:
            weight = weight / weight.sum(-1, keepdim=True)
        fn = {"silu": F.silu, "gelu": F.gelu, "relu": F.relu,
              "gelu_tanh": lambda t: F.gelu(t, approximate="tanh")}[act]
        out = th.zeros_like(x)
        for e in range(experts):
            hit = (index == e)  # ..., k
            if not bool(hit.any()):
                continue
            if gated:
                g, u = F.linear(x, w["gate_up_proj"][e]).chunk(2, -1)
                h = fn(g) * u
            else:
                h = fn(F.linear(x, w["up_proj"][e]))
            y = F.linear(h, w["down_proj"][e])
            out = out + y * (weight * hit).sum(-1, keepdim=True).to(x.dtype)
        return out

    # ONNX and Relax run every expert on every token and weight the results by a combine matrix
    # that is zero outside each token's top_k (the k-th largest probability as threshold).
    # NB: that costs E/top_k times the counted expert MACs (4x for Mixtral); it is the clearest
    # static-shape form, not the fast one.
    def onnx(e, x, logits, *, experts, top_k, dim, d_ff, gated=True, normalize=True, act="silu"):
        probs = e("Softmax", logits, axis=-1)  # ..., E
        kth = e("Gather", e("TopK", probs, e.ints(top_k), axis=-1, outputs=2)[0], e.ints(top_k - 1), axis=-1)
        combine = e("Where", e("GreaterOrEqual", probs, kth), probs, e.scalar(0.0))
        if normalize:
            combine = e("Div", combine, e("ReduceSum", combine, e.ints(-1), keepdims=1))
        xs = e("Unsqueeze", x, e.ints(-3))  # ..., 1, N, d
        up = e.param("gate_up_proj" if gated else "up_proj")
        h = e("MatMul", xs, e("Transpose", up, perm=[0, 2, 1]))  # ..., E, N, (2)ff
        if gated:
            g, u = e("Split", h, e.ints(d_ff, d_ff), axis=-1, outputs=2)
            h = e("Mul", _onnx_act(e, act, g), u)
        else:
            h = _onnx_act(e, act, h)
        y = e("MatMul", h, e("Transpose", e.param("down_proj"), perm=[0, 2, 1]))  # ..., E, N, d
        wts = e("Unsqueeze", e("Transpose", combine, perm=_swap_last(len(e.shape(logits)))), e.ints(-1))
        return e("ReduceSum", e("Mul", y, wts), e.ints(-3), keepdims=0)

    def relax(e, x, logits, *, experts, top_k, dim, d_ff, gated=True, normalize=True, act="silu"):
        probs = e.softmax(logits, axis=-1)
        ranked = e("sort", probs, axis=-1, descending=True)
        kth = e("take", ranked, e.const(np.array([top_k - 1], np.int64)), axis=-1)  # ..., 1
        combine = e("where", e("greater_equal", probs, kth), probs, e.scalar(0.0))
        if normalize:
            combine = e("divide", combine, e("sum", combine, axis=[-1], keepdims=True))
        rank = len(e.shape(logits))
        xs = e("expand_dims", x, axis=rank - 2)  # ..., 1, N, d
        up = e.param("gate_up_proj" if gated else "up_proj")
        h = e("matmul", xs, e("permute_dims", up, [0, 2, 1]))  # ..., E, N, (2)ff
        if gated:
            parts = e("split", h, [d_ff], axis=-1)
            g, u = e.item(parts, 0), e.item(parts, 1)
            h = e("multiply", _relax_act(e, act, g), u)
        else:
            h = _relax_act(e, act, h)
        y = e("matmul", h, e("permute_dims", e.param("down_proj"), [0, 2, 1]))  # ..., E, N, d
        wts = e("expand_dims", e("permute_dims", combine, _swap_last(rank)), axis=rank)
        return e("sum", e("multiply", y, wts), axis=[rank - 2])


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
