"""fold_constants: values known at build time become `constant` nodes holding their recipe.

A node is constant when its op is CONSTANT (sinusoids, shift masks, position ids) or when it is
pure (not IMPURE, no parameters, not a graph input) and all its operands are constant. Each
constant that a non-constant node reads becomes one `constant(recipe=(op, attrs, operands))`
node; the constants only it read go. A backend computes a recipe once, as a buffer.

Before (Vaswani §3.5):

    %embed.pos_encoding = sinusoidal(length=128, dim=512) : f32[1,128,512]
    %embed.with_pos = add(%embed.scaled, %embed.pos_encoding) : f32[1,128,512]

After:

    %embed.pos_encoding = constant(recipe=(sinusoidal, {length=128, dim=512}, ())) : f32[1,128,512]
    %embed.with_pos = add(%embed.scaled, %embed.pos_encoding) : f32[1,128,512]
"""

from __future__ import annotations

from graphspec.ir import Graph, Node
from graphspec.ops import CONSTANT, HAS_PARAMS, IMPURE, get
from graphspec.passes.base import PassResult
from graphspec.passes.manager import register


def _is_const(n: Node, const: dict[str, tuple]) -> bool:
    d = get(n.op)
    if n.op == "constant":
        return True
    if d.has(CONSTANT):
        return all(i in const for i in n.inputs)
    if n.op == "input" or d.has(IMPURE) or d.has(HAS_PARAMS) or not n.inputs:
        return False
    return all(i in const for i in n.inputs)


@register("fold_constants")
def fold_constants(g: Graph) -> PassResult:
    """Replace build-time values by `constant` nodes holding their recipes."""
    recipe: dict[str, tuple] = {}
    for n in g:
        if _is_const(n, recipe):
            recipe[n.name] = n.a["recipe"] if n.op == "constant" else (
                n.op, n.attrs, tuple(recipe[i] for i in n.inputs))
    needed = {i for n in g if n.name not in recipe for i in n.inputs if i in recipe}
    needed |= {o for o in g.outputs if o in recipe}
    nodes, folded = [], []
    for n in g:
        if n.name not in recipe:
            nodes.append(n)
        elif n.name in needed:
            if n.op != "constant":
                folded.append(n.name)
                n = n.evolve(op="constant", inputs=(), attrs={"recipe": recipe[n.name]})
            nodes.append(n)
    dropped = len(recipe) - len(needed)
    return PassResult(g.copy_with(nodes), matched=len(folded), applied=len(folded),
                      notes=[f"folded {len(folded)} constants, dropped {dropped} interior nodes"])
