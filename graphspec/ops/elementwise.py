"""Pointwise ops and normalisation. None of them is a MAC in the papers' convention; the
`elementwise`, `norms` and `softmax` counting options count one op per output element.
"""

from __future__ import annotations

from graphspec.ops.registry import ELEMENTWISE, HAS_PARAMS, IMPURE, NORM, SOFTMAX, Torch, broadcast, op


@op("add", ELEMENTWISE)
class Add:
    """a + b, broadcasting (residual adds, position encodings, attention bias)."""

    def shape(a, b):
        return broadcast(a, b)

    torch = Torch(call="{0} + {1}")


@op("scale", ELEMENTWISE)
class Scale:
    """x * k for a constant k (attention's 1/√d, the Transformer's √d_model on embeddings)."""

    def shape(x, *, k):
        return x

    torch = Torch(call="{0} * {k}")


@op("gelu", ELEMENTWISE)
class Gelu:
    """GELU; `approximate='tanh'` for GPT/GPT-2, exact erf otherwise."""

    defaults = {"approximate": "none"}

    def shape(x, *, approximate="none"):
        return x

    torch = Torch(call="F.gelu({0}, approximate={approximate!r})")


@op("relu", ELEMENTWISE)
class Relu:
    """max(x, 0)."""

    def shape(x):
        return x

    torch = Torch(call="F.relu({0})")


@op("tanh", ELEMENTWISE)
class Tanh:
    """tanh(x) (BERT's pooler)."""

    def shape(x):
        return x

    torch = Torch(call="torch.tanh({0})")


@op("softmax", SOFTMAX)
class Softmax:
    """softmax over the last dim. NB: the papers do not count it (Swin footnote 3)."""

    def shape(x, *, dim=-1):
        return x

    torch = Torch(call="{0}.softmax(dim={dim})")


@op("causal_mask", ELEMENTWISE)
class CausalMask:
    """Fill scores (..., N, S) above the diagonal with -inf: token i sees tokens ≤ i."""

    def shape(x):
        return x

    torch = Torch(call="causal_mask({0})", helpers=("causal_mask",))


@op("dropout", IMPURE)
class Dropout:
    """Dropout with probability p (identity in eval mode)."""

    def shape(x, *, p):
        return x

    torch = Torch(init="nn.Dropout({p})", call="self.{mod}({0})")


@op("drop_path", IMPURE)
class DropPath:
    """Stochastic depth (Huang et al. 2016): drop the whole residual branch per sample."""

    def shape(x, *, p):
        return x

    torch = Torch(init="DropPath({p})", call="self.{mod}({0})", helpers=("DropPath",))


@op("layer_norm", HAS_PARAMS, NORM)
class LayerNorm:
    """LayerNorm over the last dim, with affine weight and bias (eps from the spec)."""

    defaults = {"eps": 1e-5}

    def shape(x, *, eps=1e-5, weights=None, **_):
        return x

    def params(x, **_):
        return {"weight": (x[-1],), "bias": (x[-1],)}

    torch = Torch(init="nn.LayerNorm({dim}, eps={eps})", call="self.{mod}({0})")
