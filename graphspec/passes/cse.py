"""cse: common-subexpression elimination. Two nodes with the same op, operands, attributes and
type compute the same value: the later one goes and its users read the first.

Never merged: IMPURE nodes (dropout, drop path: two draws of the noise are two values), graph
inputs, and nodes with parameters unless they name the same weights (two `linear`s with their
own weights differ even when everything else agrees).

Before (the Transformer's encoder and decoder embeddings, Vaswani §3.5):

    %embed.pos_encoding = sinusoidal(length=128, dim=512) : f32[1,128,512]
    %embed.pos_encoding_1 = sinusoidal(length=128, dim=512) : f32[1,128,512]
    %embed.with_pos_1 = add(%embed.scaled_1, %embed.pos_encoding_1) : f32[1,128,512]

After:

    %embed.pos_encoding = sinusoidal(length=128, dim=512) : f32[1,128,512]
    %embed.with_pos_1 = add(%embed.scaled_1, %embed.pos_encoding) : f32[1,128,512]

Swin's shift masks of one stage (same H, W, M, shift) become one node the same way.
"""

from __future__ import annotations

from graphspec import analysis
from graphspec.ir import Graph
from graphspec.ops import IMPURE, get
from graphspec.passes.base import PassResult
from graphspec.passes.manager import register


@register("cse")
def cse(g: Graph) -> PassResult:
    """Merge nodes that compute the same value (never IMPURE ones, nor distinct weights)."""
    seen: dict[tuple, str] = {}
    alias: dict[str, str] = {}
    nodes = []
    for n in g:
        n = n.evolve(inputs=tuple(alias.get(i, i) for i in n.inputs))
        if n.op != "input" and not get(n.op).has(IMPURE):
            weights = tuple(sorted(analysis.node_params(g, n)))
            key = (n.op, n.inputs, n.attrs, tuple(str(d) for d in n.shape), n.dtype, weights)
            first = seen.setdefault(key, n.name)
            if first != n.name:
                alias[n.name] = first
                continue
        nodes.append(n)
    out = g.copy_with(nodes, tuple(alias.get(o, o) for o in g.outputs))
    return PassResult(out, matched=len(alias), applied=len(alias),
                      notes=[f"%{a} -> %{b}" for a, b in list(alias.items())[:10]])
