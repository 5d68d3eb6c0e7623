"""The IR verifier: the invariants every graph holds, checked after every pass.

`verify(graph)` checks, in this order (like torch.fx's `Graph.lint`):

1. the graph is acyclic;
2. every node's op kind is registered, its operands exist, and its module path is in the
   module tree;
3. every node's shape, re-derived by its op's shape rule from its operands' shapes, equals the
   recorded one (sympy-equal when symbolic);
4. the outputs exist; a node that reaches no output is reported (returned), not an error: DCE
   removes it;
5. parameter names and shapes are consistent (a shared name has one shape; analysis.parameters);
6. with `before`, no parameter was lost or duplicated: the same names and total count, except
   for what the pass declares: `renames` {new: (old, ...)} with the same total size (fuse_qkv),
   `added` names (partition_windows' relative position tables), `removed` names (DCE).

A failure raises `VerifyError` naming the node, the cause chained (`raise ... from e`), with the
graph printed and the node marked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import sympy

from graphspec import analysis
from graphspec.ir import Graph, fmt_node
from graphspec.ops import get, numel

_CONTEXT = 25  # lines of IR shown either side of the offending node in a large graph
_FULL = 300  # graphs up to this many nodes are printed whole


class VerifyError(Exception):
    """An IR invariant does not hold. `node` names the offender (None for graph-wide ones)."""

    def __init__(self, message: str, node: str | None = None, graph: Graph | None = None):
        self.message, self.node = message, node
        text = message if node is None else f"%{node}: {message}"
        if graph is not None:
            text += "\n\n" + listing(graph, node)
        super().__init__(text)


def listing(g: Graph, mark: str | None = None) -> str:
    """The IR, one line per node, with `mark` flagged; a window around it in large graphs."""
    try:
        nodes = list(g)
    except Exception:  # a cycle: no topological order to print
        return "(graph not printable: it has a cycle)"
    lines = [("--> " if n.name == mark else "    ") + fmt_node(n) for n in nodes]
    lines.append("    return " + ", ".join(f"%{o}" for o in g.outputs))
    if len(lines) > _FULL and mark is not None:
        at = next((i for i, n in enumerate(nodes) if n.name == mark), 0)
        lo, hi = max(0, at - _CONTEXT), min(len(lines), at + _CONTEXT + 1)
        lines = ([f"    ... {lo} nodes above"] if lo else []) + lines[lo:hi] + (
            [f"    ... {len(lines) - hi} lines below (print the graph for all)"] if hi < len(lines) else [])
    return f"graph {g.name}:\n" + "\n".join(lines)


def same_dim(a, b) -> bool:
    if a == b:
        return True
    if isinstance(a, sympy.Basic) or isinstance(b, sympy.Basic):
        return sympy.simplify(sympy.sympify(a) - b) == 0
    return False


def same_shape(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(same_dim(x, y) for x, y in zip(a, b, strict=True))


def verify(g: Graph, before: Graph | None = None, *, renames: Mapping[str, Iterable[str]] | None = None,
           added: Iterable[str] = (), removed: Iterable[str] = ()) -> list[str]:
    """Check the invariants above; returns warnings (nodes that reach no output)."""
    if not g.is_dag():
        raise VerifyError("the graph has a cycle; passes must only add edges from earlier nodes", graph=g)
    for n in g:
        try:
            opdef = get(n.op)
        except KeyError as e:
            raise VerifyError(f"op kind {n.op!r} is not registered (declare it in graphspec/ops)",
                              n.name, g) from e
        for i in n.inputs:
            if i not in g:
                raise VerifyError(f"operand %{i} does not exist", n.name, g)
        if n.module and n.module not in g.modules:
            raise VerifyError(f"module path {n.module!r} is not in the module tree "
                              "(a pass that adds modules must record them)", n.name, g)
        in_shapes = [g[i].shape for i in n.inputs]
        try:
            shape = tuple(opdef.shape(*in_shapes, **n.a))
        except Exception as e:
            raise VerifyError(f"the shape rule of {n.op} rejects its operands {in_shapes}: {e}",
                              n.name, g) from e
        if not same_shape(shape, tuple(n.shape)):
            raise VerifyError(f"recorded shape {tuple(n.shape)} but the rule of {n.op} gives {shape}",
                              n.name, g)
    for o in g.outputs:
        if o not in g:
            raise VerifyError(f"output %{o} does not exist", graph=g)
    live = g.ancestors(g.outputs)
    warnings = [f"%{n.name} ({n.op}) reaches no output" for n in g if n.name not in live and n.op != "input"]
    try:
        after_params = analysis.parameters(g)
    except ValueError as e:
        raise VerifyError(f"inconsistent parameters: {e}", graph=g) from e
    if before is not None:
        _check_params(analysis.parameters(before), after_params, dict(renames or {}), set(added),
                      set(removed), g)
    return warnings


def _check_params(old: dict, new: dict, renames: dict, added: set, removed: set, g: Graph) -> None:
    """Parameters neither lost nor duplicated, up to the pass's declarations."""
    expect = set(old) - removed
    for target, sources in renames.items():
        sources = tuple(sources)
        missing = [s for s in sources if s not in old]
        if missing:
            raise VerifyError(f"declared rename {target} <- {sources}: {missing} did not exist", graph=g)
        if target in new:
            size_old = sum(numel(old[s]) for s in sources)
            if not same_dim(numel(new[target]), size_old):
                raise VerifyError(f"renamed parameter {target} {new[target]} does not hold the "
                                  f"{size_old} scalars of {sources}", graph=g)
        expect = (expect - set(sources)) | {target}
    expect |= added
    lost, extra = sorted(expect - set(new)), sorted(set(new) - expect)
    if lost or extra:
        raise VerifyError("parameters changed without being declared: "
                          + (f"lost {lost[:6]}{' ...' if len(lost) > 6 else ''} " if lost else "")
                          + (f"new {extra[:6]}{' ...' if len(extra) > 6 else ''}" if extra else "")
                          + " (a pass must declare renames, additions and removals)", graph=g)
    kept = sum((numel(new[k]) for k in new if k not in added), 0)
    total = sum((numel(s) for k, s in old.items() if k not in removed), 0)
    if not same_dim(kept, total):
        raise VerifyError(f"parameter count changed from {total} to {kept} (not counting declared "
                          "additions)", graph=g)
