"""The IR seen as nested module calls: which steps one call of a module instance runs.

A module instance (`layers.0.blocks.1`) owns the nodes whose `module` is its path; the nodes of
its subtree that are connected form one *call* (the Transformer's shared `embed` is called
twice, once per token stream). A call's `Program` lists its steps in order: the instance's own
ops, and calls of its direct children, each child call collapsed into one step. A run of
calls `blocks.0`, `blocks.1`, ... that threads one value through a whole `nn.ModuleList`
becomes one `loop` step.

    Program(layers.0.blocks.1) = [norm1, shifted, windows, call attn, unwindowed, unshifted,
                                  drop_path, residual, norm2, call mlp, drop_path_1, residual_1]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import networkx as nx

from graphspec.ir import Graph, Node
from graphspec.ops import CONSTANT, SOURCE, get


class CodegenError(ValueError):
    """The IR has a shape the generator cannot write as modules (names the module and why)."""


@dataclass
class Step:
    """One statement-level unit of a call: an op, a child call, or a loop over a ModuleList."""

    kind: str  # "op" | "call" | "loop"
    ins: list[str]  # IR values read, in operand order
    outs: list[str]  # IR values produced
    node: Node | None = None  # op
    attr: str = ""  # call/loop: the child attribute ("attn", "blocks")
    index: int | None = None  # call: position in a ModuleList
    children: tuple[str, ...] = ()  # call: (path,); loop: every path of the list, in order
    whole: bool = True  # loop: over the whole list (else a slice from `index`)
    tail: bool = False  # loop: a slice to the end of the list (`self.blocks[1:]`: after a PEG, Twins)

    @property
    def key(self) -> tuple:
        """What the step is, ignoring where its operands come from and attribute values."""
        if self.kind == "op":
            return ("op", self.node.op, base_name(self.node.local))
        if self.kind == "loop":
            # a tail slice keys by its start only: stages of different depths share one class
            return ("loop", self.attr, None if self.whole else (self.index, "tail" if self.tail else len(self.children)))
        return (self.kind, self.attr, self.index)


@dataclass
class Program:
    path: str
    inputs: list[str]
    outputs: list[str]
    steps: list[Step] = field(default_factory=list)


def localize_constants(g: Graph) -> Graph:
    """Each reader of a constant source gets its own copy, in its own module.

    `passes.cse` merges equal constants across modules (the shift masks of one Swin stage, the
    position encodings of the Transformer's two embedding calls); generated code keeps a buffer
    per module instance, as the official code does, so the copies come back here. Values and
    counts are unchanged: constants cost no MACs and hold no parameters.
    """
    users: dict[str, list[Node]] = {}
    for n in g:
        for i in dict.fromkeys(n.inputs):
            users.setdefault(i, []).append(n)
    copies: dict[tuple[str, str], Node] = {}  # (constant, reader) -> the reader's copy
    taken = {n.name for n in g}
    for n in g:
        d = get(n.op) if n.op != "input" else None
        if d is None or n.inputs or not (d.has(SOURCE) and d.has(CONSTANT)):
            continue
        keep = True
        for k, u in enumerate(users.get(n.name, [])):
            if k == 0 and u.module == n.module:
                continue
            name, j = f"{u.module}.{n.local}" if u.module else n.local, 1
            base = name
            while name in taken:
                name, j = f"{base}_{j}", j + 1
            taken.add(name)
            copies[(n.name, u.name)] = n.evolve(name=name, module=u.module)
            keep = keep and k != 0
        if not keep:
            copies[(n.name, "")] = n  # dropped: its first reader has a copy
    if not copies:
        return g
    dropped = {c for c, u in copies if u == ""}
    nodes: list[Node] = []
    for n in g:
        if n.name in dropped:
            continue
        for i in dict.fromkeys(n.inputs):
            if (i, n.name) in copies:
                nodes.append(copies[(i, n.name)])
        n = n.evolve(inputs=tuple(copies[(i, n.name)].name if (i, n.name) in copies else i for i in n.inputs))
        nodes.append(n)
    return g.copy_with(nodes)


def base_name(local: str) -> str:
    """`drop_path_1` -> `drop_path`: the name a node would have had without `Graph.fresh`."""
    return re.sub(r"_\d+$", "", local.rsplit(".", 1)[-1])


class ModuleTree:
    """The module tree of a graph with each instance's calls as programs."""

    def __init__(self, graph: Graph):
        self.g = graph
        self.nodes = [n for n in graph]
        self.pos = {n.name: i for i, n in enumerate(self.nodes)}
        self.paths = list(graph.modules)
        if "" not in graph.modules:
            raise CodegenError("the IR has no root module (graph.modules[''])")
        self.parent: dict[str, str] = {}
        self.slot: dict[str, tuple[str, int | None]] = {}  # path -> (attribute, list index)
        for p in self.paths:
            if p:
                self._place(p)
        self.children: dict[str, list[str]] = {p: [] for p in self.paths}
        for p in self.paths:
            if p:
                self.children[self.parent[p]].append(p)
        for n in self.nodes:
            if n.op != "input" and n.module not in graph.modules:
                raise CodegenError(f"%{n.name} belongs to module {n.module!r}, which graph.modules lacks")
        self._subtree: dict[str, list[Node]] = {p: [] for p in self.paths}
        for n in self.nodes:
            if n.op == "input":
                continue
            p = n.module
            while True:
                self._subtree[p].append(n)
                if not p:
                    break
                p = self.parent[p]
        self._comp: dict[str, dict[str, int]] = {p: self._components(p) for p in self.paths}
        self._programs: dict[tuple[str, int], Program] = {}

    # -- tree --------------------------------------------------------------------------------
    def _place(self, p: str) -> None:
        q = p
        while "." in q:
            q = q.rsplit(".", 1)[0]
            if q in self.g.modules:
                break
        else:
            q = ""
        rel = p[len(q) + 1:] if q else p
        parts = rel.split(".")
        if len(parts) == 1 and parts[0].isdigit() and self.g.modules[q].cls == "Sequential":
            self.slot[p] = ("", int(parts[0]))  # item i of an nn.Sequential
        elif len(parts) == 1 and not parts[0].isdigit():
            self.slot[p] = (parts[0], None)
        elif len(parts) == 2 and parts[1].isdigit() and not parts[0].isdigit():
            self.slot[p] = (parts[0], int(parts[1]))
        else:
            raise CodegenError(f"module {p!r} is not `name` or `name.<index>` below {q or 'the root'!r}; "
                               "register the intermediate module in graph.modules")
        self.parent[p] = q

    def direct_child(self, p: str, module: str) -> str:
        q = module
        while self.parent.get(q, "") != p:
            q = self.parent[q]
        return q

    def calls(self, p: str) -> int:
        return len(set(self._comp[p].values()))

    # -- calls -------------------------------------------------------------------------------
    def _components(self, p: str) -> dict[str, int]:
        members = {n.name for n in self._subtree[p]}
        u = nx.Graph()
        u.add_nodes_from(members)
        for n in self._subtree[p]:
            u.add_edges_from((n.name, i) for i in n.inputs if i in members)
        comps = sorted((min(self.pos[x] for x in c), c) for c in map(sorted, nx.connected_components(u)))
        return {x: k for k, (_, c) in enumerate(comps) for x in c}

    def program(self, p: str, call: int = 0) -> Program:
        key = (p, call)
        if key not in self._programs:
            self._programs[key] = self._build(p, call)
        return self._programs[key]

    def _build(self, p: str, call: int) -> Program:
        comp = self._comp[p]
        members = [n for n in self._subtree[p] if comp[n.name] == call]
        inside = {n.name for n in members}
        if p == "":
            inputs = [n.name for n in self.g.inputs]
            outputs = list(self.g.outputs)
        else:
            inputs = list(dict.fromkeys(i for n in members for i in n.inputs if i not in inside))
            # the residual stream first (a value some `add` inside reads), then the latest made:
            # a decoder block is called as block(x, memory) whatever order the passes left
            added = {i for n in members if n.op == "add" for i in n.inputs}
            bias = {v for v in inputs if self.g[v].op == "relative_bucket_bias"}  # T5's position_bias comes second
            inputs.sort(key=lambda v: (v in bias, v not in added, -self.pos[v]))
            outputs = [n.name for n in members
                       if n.name in self.g.outputs or any(u.name not in inside for u in self.g.users(n.name))]
        # units: own ops, and child calls (one unit per child call)
        unit_of: dict[str, tuple] = {}
        for n in members:
            if n.module == p:
                unit_of[n.name] = ("op", n.name)
            else:
                c = self.direct_child(p, n.module)
                unit_of[n.name] = ("call", c, self._comp[c][n.name])
        dag = nx.DiGraph()
        first: dict[tuple, int] = {}
        for n in members:
            u = unit_of[n.name]
            first[u] = min(first.get(u, self.pos[n.name]), self.pos[n.name])
            dag.add_node(u)
            for i in n.inputs:
                if i in inside and unit_of[i] != u:
                    dag.add_edge(unit_of[i], u)
        if not nx.is_directed_acyclic_graph(dag):
            raise CodegenError(f"module {p or 'root'!r}: a child module is entered twice in one call")
        steps = []
        for u in nx.lexicographical_topological_sort(dag, key=lambda u: first[u]):
            if u[0] == "op":
                n = self.g[u[1]]
                steps.append(Step("op", list(n.inputs), [n.name], node=n))
            else:
                _, c, ci = u
                sub = self.program(c, ci)
                attr, idx = self.slot[c]
                steps.append(Step("call", list(sub.inputs), list(sub.outputs), attr=attr, index=idx,
                                  children=(c,)))
        return Program(p, inputs, outputs, _collapse_loops(self, p, steps, outputs))


def _collapse_loops(tree: ModuleTree, p: str, steps: list[Step], outputs: list[str]) -> list[Step]:
    """Calls of list[a], list[a+1], ... threading one value become one `loop` step: over the whole
    list (`for blk in self.blocks`), or over a slice when values are tapped between (SETR)."""
    out: list[Step] = []
    i = 0
    while i < len(steps):
        s = steps[i]
        if s.kind == "call" and s.index is not None and len(s.outs) == 1:
            n = sum(1 for c in tree.children[p] if tree.slot[c][0] == s.attr)
            run = [s]
            for r in steps[i + 1:]:
                if not (r.kind == "call" and r.attr == s.attr and r.index == s.index + len(run)
                        and len(r.outs) == 1 and len(r.ins) == len(s.ins) and r.ins[1:] == s.ins[1:]
                        and r.ins[0] == run[-1].outs[0]) or _escapes(run + [r], steps, outputs):
                    break
                run.append(r)
            whole = s.index == 0 and len(run) == n
            tail = not whole and s.index + len(run) == n  # the rest of a list whose head ran before
            if (whole or len(run) > 1 or tail) and not _escapes(run, steps, outputs):
                out.append(Step("loop", list(s.ins), list(run[-1].outs), attr=s.attr, index=s.index,
                                children=tuple(r.children[0] for r in run), whole=whole, tail=tail))
                i += len(run)
                continue
        out.append(s)
        i += 1
    return out


def _escapes(run: list[Step], steps: list[Step], outputs: list[str]) -> bool:
    """True when a value made inside the run is read other than by the next call (no loop then)."""
    inner = {r.outs[0] for r in run[:-1]}
    threaded = [r.ins[0] for r in run[1:]]
    reads = [v for s in steps for v in s.ins] + list(outputs)
    return any(reads.count(v) != threaded.count(v) for v in inner)
