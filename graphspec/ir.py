"""The graphspec IR: a typed dataflow graph over networkx.

A `Graph` wraps an `nx.DiGraph` whose nodes carry a frozen `Node`: the op kind, the ordered
operands (edges alone lose operand order and `x @ x`), attributes, the output shape and dtype,
the module path that owns it and the spec location it came from. Only this module touches
networkx attributes; everything else goes through `Graph`.

    %blocks.0.attn.qk = matmul(%blocks.0.attn.q, %blocks.0.attn.kT) : f32[B,12,197,197]  # vit_b16.yaml:14:3

Shapes are tuples of ints or sympy expressions (batch, sequence length, image size may be
symbols). `Graph.modules` records the module tree (path -> class name and constructor args) so
that codegen can rebuild nested `nn.Module`s and analysis can report per block and stage.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import networkx as nx
import sympy

Dim = Any  # int | sympy.Expr
Shape = tuple


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple((k, _freeze(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


@dataclass(frozen=True)
class Node:
    """One op of the IR. Immutable: passes build new nodes with `replace` / `Node.evolve`."""

    name: str
    op: str
    inputs: tuple[str, ...] = ()
    attrs: tuple[tuple[str, Any], ...] = ()
    shape: Shape = ()
    dtype: str = "f32"
    module: str = ""  # owning module path, e.g. "layers.0.blocks.1.attn"
    loc: str | None = None  # "swin_t.yaml:15:5"

    @property
    def a(self) -> dict[str, Any]:
        """Attributes as a dict (read-only use)."""
        return dict(self.attrs)

    @property
    def local(self) -> str:
        """Name inside the owning module (`qkv` for `blocks.0.attn.qkv`)."""
        prefix = self.module + "." if self.module else ""
        return self.name[len(prefix):] if self.name.startswith(prefix) else self.name

    def evolve(self, **changes: Any) -> Node:
        if "attrs" in changes and isinstance(changes["attrs"], Mapping):
            changes["attrs"] = _freeze(changes["attrs"])
        return replace(self, **changes)


@dataclass(frozen=True)
class ModuleInfo:
    """A node of the module tree: `path` is an instance of class `cls` built with `args`."""

    path: str
    cls: str
    args: tuple[tuple[str, Any], ...] = ()

    @property
    def a(self) -> dict[str, Any]:
        return dict(self.args)


@dataclass
class Graph:
    """A DAG of `Node`s kept in topological (insertion) order, plus the module tree."""

    name: str = "model"
    _g: nx.DiGraph = field(default_factory=nx.DiGraph, repr=False)
    outputs: tuple[str, ...] = ()
    modules: dict[str, ModuleInfo] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    # fresh(): per base name, the least suffix k not known to be taken
    _suffix: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    # -- building -------------------------------------------------------------------------
    def add(self, node: Node) -> Node:
        if node.name in self._g:
            raise ValueError(f"duplicate node name %{node.name}")
        for i in node.inputs:
            if i not in self._g:
                raise ValueError(f"%{node.name} uses %{i}, which is not defined before it")
        self._g.add_node(node.name, node=node)
        for i in node.inputs:
            self._g.add_edge(i, node.name)
        return node

    def fresh(self, base: str) -> str:
        """A node name not used yet: `base`, else `base_1`, `base_2`, ..."""
        if base not in self._g:
            return base
        k = self._suffix.get(base, 1)  # nodes are never removed: every base_j below k is taken
        while f"{base}_{k}" in self._g:
            k += 1
        self._suffix[base] = k
        return f"{base}_{k}"

    def set_module(self, path: str, cls: str, **args: Any) -> None:
        self.modules[path] = ModuleInfo(path, cls, _freeze(args))

    # -- reading --------------------------------------------------------------------------
    def __contains__(self, name: str) -> bool:
        return name in self._g

    def __getitem__(self, name: str) -> Node:
        return self._g.nodes[name]["node"]

    def __iter__(self) -> Iterator[Node]:
        """Nodes in topological order (ties broken by insertion order): the insertion order itself,
        since `add` takes a node only after its inputs (networkx's lexicographical topological sort
        keyed by insertion gives the same order, at twice the cost of lowering)."""
        for _, data in self._g.nodes(data=True):
            yield data["node"]

    def __len__(self) -> int:
        return self._g.number_of_nodes()

    @property
    def inputs(self) -> list[Node]:
        return [n for n in self if n.op == "input"]

    def users(self, name: str) -> list[Node]:
        return [self[s] for s in self._g.successors(name)]

    def is_dag(self) -> bool:
        return nx.is_directed_acyclic_graph(self._g)

    def ancestors(self, names: Iterable[str]) -> set[str]:
        out: set[str] = set()
        for n in names:
            out |= nx.ancestors(self._g, n) | {n}
        return out

    # -- rebuilding (passes never mutate their input) --------------------------------------
    def copy_with(self, nodes: Iterable[Node], outputs: tuple[str, ...] | None = None) -> Graph:
        g = Graph(self.name, outputs=self.outputs if outputs is None else outputs,
                  modules=dict(self.modules), meta=dict(self.meta))
        for n in nodes:
            g.add(n)
        return g

    # -- printing and serialization --------------------------------------------------------
    def __str__(self) -> str:
        lines = [f"graph {self.name}("
                 + ", ".join(f"%{n.name}: {fmt_type(n)}" for n in self.inputs) + "):"]
        for n in self:
            if n.op == "input":
                continue
            lines.append("  " + fmt_node(n))
        lines.append("  return " + ", ".join(f"%{o}" for o in self.outputs))
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps({
            "name": self.name,
            "outputs": list(self.outputs),
            "meta": _encode(self.meta),
            "modules": [[m.path, m.cls, _encode(m.args)] for m in self.modules.values()],
            "nodes": [
                {"name": n.name, "op": n.op, "inputs": list(n.inputs), "attrs": _encode(n.attrs),
                 "shape": [_dim_str(d) for d in n.shape], "dtype": n.dtype, "module": n.module,
                 "loc": n.loc}
                for n in self
            ],
        }, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Graph:
        data = json.loads(text)
        g = Graph(data["name"], outputs=tuple(data["outputs"]), meta=_decode(data["meta"]))
        for path, mcls, args in data["modules"]:
            g.modules[path] = ModuleInfo(path, mcls, _decode(args))
        for d in data["nodes"]:
            g.add(Node(d["name"], d["op"], tuple(d["inputs"]), _decode(d["attrs"]),
                       tuple(parse_dim(s) for s in d["shape"]), d["dtype"], d["module"], d["loc"]))
        return g

    def to_dot(self) -> str:
        """Graphviz DOT, one cluster per top-level module."""
        out = [f'digraph "{self.name}" {{', "  node [shape=box, fontname=monospace, fontsize=10];"]
        for n in self:
            label = f"{n.name}\\n{n.op} {fmt_type(n)}"
            out.append(f'  "{n.name}" [label="{label}"];')
        for n in self:
            for i in dict.fromkeys(n.inputs):
                out.append(f'  "{i}" -> "{n.name}";')
        out.append("}")
        return "\n".join(out)


# -- formatting helpers ---------------------------------------------------------------------
def _dim_str(d: Dim) -> str:
    return str(d).replace(" ", "")


def fmt_type(n: Node) -> str:
    return f"{n.dtype}[{','.join(_dim_str(d) for d in n.shape)}]"


def _fmt_attr(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, tuple) and v and isinstance(v[0], tuple) and len(v[0]) == 2:
        return "{" + ", ".join(f"{k}={_fmt_attr(x)}" for k, x in v) + "}"
    if isinstance(v, tuple):
        return "(" + ", ".join(_fmt_attr(x) for x in v) + ")"
    return str(v)


def fmt_node(n: Node) -> str:
    args = [f"%{i}" for i in n.inputs] + [f"{k}={_fmt_attr(v)}" for k, v in n.attrs]
    loc = f"  # {n.loc}" if n.loc else ""
    return f"%{n.name} = {n.op}({', '.join(args)}) : {fmt_type(n)}{loc}"


def parse_dim(s: str | int) -> Dim:
    """Inverse of `_dim_str`, through graphspec's safe expression evaluator (no eval)."""
    if isinstance(s, int):
        return s
    from graphspec.spec.expr import evaluate

    v = evaluate(s, {}, symbols=True)
    return int(v) if isinstance(v, sympy.Integer) else v


def _encode(v: Any) -> Any:
    if isinstance(v, bool) or v is None or isinstance(v, str | float):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, sympy.Basic):
        return {"$expr": _dim_str(v)}
    if isinstance(v, tuple | list):
        return {"$tuple": [_encode(x) for x in v]} if isinstance(v, tuple) else [_encode(x) for x in v]
    if isinstance(v, Mapping):
        return {"$map": [[k, _encode(x)] for k, x in v.items()]}
    raise TypeError(f"cannot serialize attribute value {v!r}")


def _decode(v: Any) -> Any:
    if isinstance(v, dict):
        if "$expr" in v:
            return parse_dim(v["$expr"])
        if "$tuple" in v:
            return tuple(_decode(x) for x in v["$tuple"])
        if "$map" in v:
            return {k: _decode(x) for k, x in v["$map"]}
    if isinstance(v, list):
        return tuple(_decode(x) for x in v)
    return v
