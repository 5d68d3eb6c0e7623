"""Pointwise ops and normalisation. None of them is a MAC in the papers' convention; the
`elementwise`, `norms` and `softmax` counting options count one op per output element.
"""

from __future__ import annotations

import numpy as np

from graphspec.ops.registry import (
    ELEMENTWISE,
    HAS_PARAMS,
    IMPURE,
    NORM,
    SOFTMAX,
    F,
    ShapeError,
    Torch,
    broadcast,
    op,
    th,
)


def causal_fill(s):
    """Scores (..., N, S) with -inf above the diagonal: query i sees keys ≤ i (eval rule)."""
    N, S = s.shape[-2:]
    return s.masked_fill(th.ones(N, S, dtype=th.bool, device=s.device).triu(1), float("-inf"))


@op("add", ELEMENTWISE)
class Add:
    """a + b, broadcasting (residual adds, position encodings, attention bias)."""

    def shape(a, b):
        return broadcast(a, b)

    torch = Torch(call="{0} + {1}")

    def eval(w, a, b):
        return a + b

    def onnx(e, a, b):
        return e("Add", a, b)

    def relax(e, a, b):
        return e("add", a, b)


@op("scale", ELEMENTWISE)
class Scale:
    """x * k for a constant k (attention's 1/√d, the Transformer's √d_model on embeddings)."""

    def shape(x, *, k):
        return x

    torch = Torch(call="{0} * {k}")

    def eval(w, x, *, k):
        return x * float(k)

    def onnx(e, x, *, k):
        return e("Mul", x, e.scalar(k))

    def relax(e, x, *, k):
        return e("multiply", x, e.scalar(k))


@op("gelu", ELEMENTWISE)
class Gelu:
    """GELU; `approximate='tanh'` for GPT/GPT-2, exact erf otherwise."""

    defaults = {"approximate": "none"}

    def shape(x, *, approximate="none"):
        return x

    torch = Torch(init=lambda a: "nn.GELU()" if a["approximate"] == "none" else f"nn.GELU(approximate={a['approximate']})",
                  call="self.{mod}({0})")

    def eval(w, x, *, approximate="none"):
        return F.gelu(x, approximate=approximate)

    def onnx(e, x, *, approximate="none"):
        return e("Gelu", x, approximate=approximate)  # opset 20

    def relax(e, x, *, approximate="none"):
        if approximate == "tanh":
            return e("nn.gelu_tanh", x)
        # 0.5·x·(1 + erf(x/√2)) with TOPI's fast_erf (a rational approximation, float32-accurate):
        # relax.op.nn.gelu lowers erf to a scalar libm erff call per element, which LLVM cannot
        # vectorize, and that epilogue made Swin-T's GELU-fused fc1 matmuls 1.6× slower than fc2.
        from tvm import topi

        erf = e.bb.emit_te(topi.fast_erf, e("multiply", x, e.scalar(0.7071067811865476)))
        return e("multiply", e("multiply", x, e.scalar(0.5)), e("add", erf, e.scalar(1.0)))


@op("relu", ELEMENTWISE)
class Relu:
    """max(x, 0)."""

    def shape(x):
        return x

    torch = Torch(call="F.relu({0})")

    def eval(w, x):
        return F.relu(x)

    def onnx(e, x):
        return e("Relu", x)

    def relax(e, x):
        return e("nn.relu", x)


@op("tanh", ELEMENTWISE)
class Tanh:
    """tanh(x) (BERT's pooler)."""

    def shape(x):
        return x

    torch = Torch(call="torch.tanh({0})")

    def eval(w, x):
        return th.tanh(x)

    def onnx(e, x):
        return e("Tanh", x)

    def relax(e, x):
        return e("tanh", x)


@op("softmax", SOFTMAX)
class Softmax:
    """softmax over the last dim. NB: the papers do not count it (Swin footnote 3)."""

    def shape(x, *, dim=-1):
        return x

    torch = Torch(call="{0}.softmax(dim={dim})")

    def eval(w, x, *, dim=-1):
        return x.softmax(dim=dim)

    def onnx(e, x, *, dim=-1):
        return e("Softmax", x, axis=dim)

    def relax(e, x, *, dim=-1):
        return e.softmax(x, axis=dim)


@op("causal_mask", ELEMENTWISE)
class CausalMask:
    """Fill scores (..., N, S) above the diagonal with -inf: token i sees tokens ≤ i."""

    def shape(x):
        return x

    torch = Torch(call="causal_mask({0})", helpers=("causal_mask",))

    def eval(w, x):
        return causal_fill(x)

    def onnx(e, x):
        N, S = e.shape(x)[-2:]
        keep = e.const(np.tril(np.ones((N, S), dtype=bool)), f"causal_{N}x{S}")
        return e("Where", keep, x, e.scalar(float("-inf")))

    def relax(e, x):
        N, S = e.shape(x)[-2:]
        return e("where", e.const(np.tril(np.ones((N, S), dtype=bool))), x, e.scalar(float("-inf")))


@op("dropout", IMPURE)
class Dropout:
    """Dropout with probability p (identity in eval mode)."""

    def shape(x, *, p):
        return x

    torch = Torch(init="nn.Dropout({p})", call="self.{mod}({0})")

    def eval(w, x, **_):
        return x  # NB: identity at inference

    def onnx(e, x, *, p):
        return x  # identity at inference

    def relax(e, x, *, p):
        return x


@op("drop_path", IMPURE)
class DropPath:
    """Stochastic depth (Huang et al. 2016): drop the whole residual branch per sample."""

    def shape(x, *, p):
        return x

    torch = Torch(init="DropPath({p})", call="self.{mod}({0})", helpers=("DropPath",))

    def eval(w, x, **_):
        return x  # NB: identity at inference

    def onnx(e, x, *, p):
        return x  # identity at inference

    def relax(e, x, *, p):
        return x


@op("layer_scale", HAS_PARAMS, ELEMENTWISE)
class LayerScale:
    """x · γ, a learned per-channel scale at the end of a residual branch, γ initialised at
    `init` (CaiT, Touvron et al. 2021 §3; DINOv2's `ls1`, `ls2`)."""

    def shape(x, *, dim, init):
        if x[-1] != dim:
            raise ShapeError(f"layer scale of width {dim} on a tensor of width {x[-1]}")
        return x

    def params(x, *, dim, init):
        return {"gamma": (dim,)}

    torch = Torch(init="LayerScale({dim}, init_values={init})", call="self.{mod}({0})", helpers=("LayerScale",))

    def eval(w, x, **_):
        return x * w["gamma"]

    def onnx(e, x, **_):
        return e("Mul", x, e.param("gamma"))

    def relax(e, x, **_):
        return e("multiply", x, e.param("gamma"))


@op("layer_norm", HAS_PARAMS, NORM)
class LayerNorm:
    """LayerNorm over the last dim, with affine weight and bias (eps from the spec)."""

    defaults = {"eps": 1e-5}

    def shape(x, *, eps=1e-5, weights=None, **_):
        return x

    # `bias=False` (an attribute only when given: OLMo, layer_norm(bias=false)) drops β
    def params(x, *, bias=True, **_):
        return {"weight": (x[-1],), **({"bias": (x[-1],)} if bias else {})}

    torch = Torch(init=lambda a: f"nn.LayerNorm({a['dim']}, eps={a['eps']}"
                  + ("" if a.get("bias", True) == True else ", bias=False") + ")",  # noqa: E712
                  call="self.{mod}({0})")

    def eval(w, x, *, eps=1e-5, **_):
        return F.layer_norm(x, (x.shape[-1],), w["weight"], w.get("bias"), eps)

    def onnx(e, x, *, eps=1e-5, weights=None, bias=True, **_):
        b = e.param("bias") if bias else None
        return e("LayerNormalization", x, e.param("weight"), b, axis=-1, epsilon=float(eps))

    def relax(e, x, *, eps=1e-5, weights=None, bias=True, **_):
        b = e.param("bias") if bias else e("zeros_like", e.param("weight"))
        return e("nn.layer_norm", x, e.param("weight"), b, axes=[-1], epsilon=float(eps))
