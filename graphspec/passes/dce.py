"""dce: drop the nodes that reach no output (graph inputs stay: they are the signature).

Before:

    %pooler.first = select(%blocks.11.norm2, index=0) : f32[1,768]
    %pooler.dense = linear(%pooler.first, out_features=768) : f32[1,768]   # nobody reads it
    return %blocks.11.norm2

After:

    return %blocks.11.norm2

Parameters of dropped nodes are declared removed (unless a live node shares them).
"""

from __future__ import annotations

from graphspec import analysis
from graphspec.ir import Graph
from graphspec.passes.base import PassResult
from graphspec.passes.manager import register


@register("dce")
def dce(g: Graph) -> PassResult:
    """Dead-code elimination: keep what the outputs need, and the graph inputs."""
    live = g.ancestors(g.outputs)
    keep = [n for n in g if n.name in live or n.op == "input"]
    dead = [n for n in g if n.name not in live and n.op != "input"]
    out = g.copy_with(keep)
    kept_params = set(analysis.parameters(out))
    removed = sorted({p for n in dead for p in analysis.node_params(g, n)} - kept_params)
    return PassResult(out, matched=len(dead), applied=len(dead), removed=removed,
                      notes=[f"removed %{n.name}" for n in dead[:10]])
