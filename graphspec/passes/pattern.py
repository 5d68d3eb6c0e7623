"""The one matcher of graphspec's passes: a small pattern language over the IR, and the engine
that applies `(pattern, rewrite)` rows (after TVM Relax's dataflow patterns and tinygrad's
pattern matcher).

    scores = Op("matmul", Any("q"), Op("transpose", Any("k")), name="scores")
    probs = Op("softmax", Maybe("causal_mask", Op("scale", scores, name="scaled")), name="probs")
    ATTENTION = Op("matmul", probs, Any("v"), name="context")

- `Op(kind, *operands, name=, where=, one_user=True, commutative=False, rest=False)` matches a
  node whose op is `kind` (a name, a set of names, `Prop(property)` or None for any op) and
  whose operands match `operands` in order (either order when `commutative`; more operands
  allowed when `rest`). `where(node) -> bool` adds a predicate; its function name is the
  reason given when it fails.
- `Any(name, where=)` matches any node and captures it without consuming it.
- `Maybe(kind, inner, *more)` is `Op(kind, inner, *more)` or just `inner`: an optional node.
- `Alt(*patterns)` is the first alternative that matches.

Captures are by name and unify: `Any("x")` twice matches one node only (self-attention's q, k
and v read the same tensor). Nodes matched by `Op` are consumed; every consumed node but the
root must have exactly one user and not be a graph output (`one_user=False` lifts this), so
that a rewrite may drop them.

A row is `Rule(pattern, rewrite)`. `rewrite(m: Match)` builds the replacement with `m.emit` /
`m.rebuild` and returns the new value of the root (a name), a map {old name: new name}, or None
to decline (`return m.decline("reason")`), which changes nothing. `rewrite_graph` tries every
row at every node in topological order, applies the accepted edits at once, drops consumed
nodes left without users and returns a `PassResult`.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any as AnyT

from graphspec.ir import Graph, Node
from graphspec.ops import get
from graphspec.passes.base import PassResult


# -- matches and the edits rewrites make ------------------------------------------------------
class Match:
    """The captures and consumed nodes of one match, and the edit its rewrite builds."""

    def __init__(self, g: Graph, root: Node):
        self.g, self.root = g, root
        self.captures: dict[str, Node] = {}
        self.nodes: set[str] = set()  # consumed by Op patterns
        self.why, self._best = "", -1
        self.emitted: dict[str, Node] = {}  # by name; an existing name means a replacement
        self.after: dict[str, str] = {}  # emitted name -> node it is placed after
        self.replace: dict[str, str] = {}
        self.renames: dict[str, tuple[str, ...]] = {}
        self.added: list[str] = []
        self.modules: dict[str, tuple[str, dict]] = {}  # path -> (class, args)
        self.notes: list[str] = []

    # captures
    def __getitem__(self, name: str) -> Node:
        return self.captures[name]

    def __contains__(self, name: str) -> bool:
        return name in self.captures

    def get(self, name: str, default: AnyT = None) -> AnyT:
        return self.captures.get(name, default)

    def fail(self, why: str, kind: bool = False) -> bool:
        """Record why a path failed; the reason kept is that of the path that got furthest. A
        wrong op kind (`kind=True`) counts half a step less: where an alternative is of the right
        kind and fails for another reason (softmax with 2 users, beside sink_softmax), that says more."""
        progress = len(self.nodes) + len(self.captures) - 0.5 * kind
        if progress >= self._best:
            self._best, self.why = progress, why
        return False

    def bind(self, name: str, node: Node) -> bool:
        old = self.captures.get(name)
        if old is not None and old.name != node.name:
            return self.fail(f"{name} would be both %{old.name} and %{node.name}")
        self.captures[name] = node
        return True

    # building the edit
    def node(self, name: str) -> Node:
        return self.emitted.get(name) or self.g[name]

    def fresh(self, base: str) -> str:
        name, k = base, 0
        while name in self.g or name in self.emitted:
            k += 1
            name = f"{base}_{k}"
        return name

    def emit(self, op: str, inputs: Sequence[str], name: str, *, module: str | None = None,
             like: Node | None = None, after: str | None = None, dtype: str | None = None,
             **attrs: AnyT) -> str:
        """A new node, its shape inferred by the op's rule; module and loc from `like` (the root)."""
        like = like or self.root
        opdef = get(op)
        attrs = {**{k: v for k, v in opdef.defaults.items() if k not in attrs}, **attrs}
        shape = tuple(opdef.shape(*(self.node(i).shape for i in inputs), **attrs))
        dtype = dtype or (self.node(inputs[0]).dtype if inputs else "f32")
        node = Node(name, op, tuple(inputs), (), shape, dtype,
                    like.module if module is None else module, like.loc).evolve(attrs=attrs)
        return self.put(node, after)

    def rebuild(self, node: Node, inputs: Sequence[str] | None = None, **attrs: AnyT) -> str:
        """Re-emit an existing node under its name with new operands or attrs; shape re-derived."""
        inputs = tuple(node.inputs if inputs is None else inputs)
        a = {**node.a, **attrs}
        shape = tuple(get(node.op).shape(*(self.node(i).shape for i in inputs), **a))
        return self.put(node.evolve(inputs=inputs, attrs=a, shape=shape))

    def put(self, node: Node, after: str | None = None) -> str:
        self.emitted[node.name] = node
        if after is not None:
            self.after[node.name] = after
        return node.name

    def decline(self, reason: str) -> None:
        self.why = reason
        return None

    def rename_params(self, new: str, old: Sequence[str]) -> None:
        self.renames[new] = tuple(old)

    def add_params(self, *names: str) -> None:
        self.added.extend(names)

    def set_module(self, path: str, cls: str, **args: AnyT) -> None:
        self.modules[path] = (cls, args)


# -- the pattern language ---------------------------------------------------------------------
class Pattern:
    def match(self, g: Graph, node: Node) -> Match | None:
        m = Match(g, node)
        if not self.at(m, node, True):
            return None
        m.why = ""
        return m

    def explain(self, g: Graph, node: Node) -> str:
        """Why the pattern does not match at `node` ("" if it does)."""
        m = Match(g, node)
        return "" if self.at(m, node, True) else (m.why or "no match")

    def at(self, m: Match, node: Node, root: bool) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class Prop:
    """An op kind by property (`Prop(ELEMENTWISE)`), as tinygrad's passes ask."""

    prop: str


def _kind_ok(kind, op: str) -> bool:
    if kind is None:
        return True
    if isinstance(kind, str):
        return op == kind
    if isinstance(kind, Prop):
        return get(op).has(kind.prop)
    return op in kind


def _kind_text(kind) -> str:
    if isinstance(kind, str):
        return kind
    if isinstance(kind, Prop):
        return f"an op with property {kind.prop}"
    return "one of " + "/".join(sorted(kind)) if kind is not None else "any op"


class Op(Pattern):
    def __init__(self, kind, *operands: Pattern, name: str | None = None,
                 where: Callable[[Node], bool] | None = None, one_user: bool = True,
                 commutative: bool = False, rest: bool = False):
        self.kind, self.operands, self.name, self.where = kind, operands, name, where
        self.one_user, self.commutative, self.rest = one_user, commutative, rest

    def at(self, m: Match, node: Node, root: bool) -> bool:
        if not _kind_ok(self.kind, node.op):
            return m.fail(f"%{node.name} is {node.op}, not {_kind_text(self.kind)}", kind=True)
        if self.where is not None and not self.where(node):
            return m.fail(f"%{node.name}: not {self.where.__name__.strip('_').replace('_', ' ')}")
        if not root and self.one_user:
            uses = len(m.g.users(node.name)) + (node.name in m.g.outputs)
            if uses != 1:
                return m.fail(f"%{node.name} has {uses} users; fusing it would compute it twice")
        n = len(self.operands)
        if len(node.inputs) < n or (len(node.inputs) > n and not self.rest):
            return m.fail(f"%{node.name} has {len(node.inputs)} operands, the pattern {n}")
        orders = [node.inputs[:n]]
        if self.commutative and n == 2:
            orders.append(node.inputs[1::-1])
        for order in orders:
            saved = dict(m.captures), set(m.nodes)
            if all(p.at(m, m.g[i], False) for p, i in zip(self.operands, order, strict=True)):
                break
            m.captures, m.nodes = saved
        else:
            return False
        if self.name and not m.bind(self.name, node):
            return False
        m.nodes.add(node.name)
        return True


class Any(Pattern):
    def __init__(self, name: str | None = None, where: Callable[[Node], bool] | None = None):
        self.name, self.where = name, where

    def at(self, m: Match, node: Node, root: bool) -> bool:
        if self.where is not None and not self.where(node):
            return m.fail(f"%{node.name}: not {self.where.__name__.strip('_').replace('_', ' ')}")
        return m.bind(self.name, node) if self.name else True


class Alt(Pattern):
    def __init__(self, *options: Pattern):
        self.options = options

    def at(self, m: Match, node: Node, root: bool) -> bool:
        for p in self.options:
            saved = dict(m.captures), set(m.nodes)
            if p.at(m, node, root):
                return True
            m.captures, m.nodes = saved
        return False


def Maybe(kind, inner: Pattern, *more: Pattern, **kw: AnyT) -> Pattern:  # noqa: N802
    """`kind(inner, *more)` or `inner` alone: an optional node."""
    return Alt(Op(kind, inner, *more, **kw), inner)


# -- rows and the engine ----------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """A `(pattern, rewrite)` row. Every node of op `anchor` that no accepted rewrite consumes
    is reported as declined, with the matcher's reason (tried from the anchor's users)."""

    pattern: Pattern
    rewrite: Callable[[Match], AnyT]
    anchor: str | None = None


def rewrite_graph(g: Graph, rules: Sequence[Rule]) -> PassResult:
    """Apply the rows at every node, in topological order; consumed nodes are not revisited."""
    claimed: set[str] = set()
    reported: set[str] = set()
    edits: list[Match] = []
    declined: list[tuple[str, str]] = []
    matched = 0
    for node in g:
        if node.name in claimed:
            continue
        for rule in rules:
            m = rule.pattern.match(g, node)
            if m is None or m.nodes & claimed:
                continue
            matched += 1
            out = rule.rewrite(m)
            if out is None:
                declined.append((node.name, m.why or "declined"))
                reported |= m.nodes
                continue
            m.replace = dict(out) if isinstance(out, dict) else (
                {} if out == node.name else {node.name: out})
            claimed |= m.nodes
            edits.append(m)
            break
    for rule in rules:
        if rule.anchor is None:
            continue
        for n in g:
            if n.op == rule.anchor and n.name not in claimed | reported:
                declined.append((n.name, _why_not(g, rule.pattern, n)))
    res = PassResult(_apply(g, edits), matched=matched, applied=len(edits), declined=declined)
    for m in edits:
        res.renames.update(m.renames)
        res.added.extend(m.added)
        res.notes.extend(m.notes)
    return res


def _why_not(g: Graph, pattern: Pattern, anchor: Node) -> str:
    near = g.users(anchor.name)
    near += [u for n in near for u in g.users(n.name)]
    for u in near:
        why = pattern.explain(g, u)
        if why:
            return f"no match through %{anchor.name}: {why}"
    return f"no match through %{anchor.name}: it has no user the pattern could root at"


def _apply(g: Graph, edits: list[Match]) -> Graph:
    """Splice the accepted edits into a new graph (the input is not touched)."""
    pos = {n.name: i for i, n in enumerate(g)}
    nodes: dict[str, Node] = {n.name: n for n in g}
    owner: dict[str, int] = {}
    renames: dict[str, tuple[str, int]] = {}
    placed: dict[str, str | None] = {}
    for e, m in enumerate(edits):
        for name, node in m.emitted.items():
            if name in owner:
                raise AssertionError(f"two rewrites emit %{name}")
            owner[name] = e
            if name not in pos:
                placed[name] = m.after.get(name)
            nodes[name] = node
        for old, new in m.replace.items():
            if old != new:
                renames[old] = (new, e)

    def resolve(name: str, e: int) -> str:
        for _ in range(len(renames) + 1):
            if name not in renames or renames[name][1] == e:
                return name
            name = renames[name][0]
        raise AssertionError(f"rename cycle through %{name}")

    for name, n in list(nodes.items()):
        ins = tuple(resolve(i, owner.get(name, -1)) for i in n.inputs)
        if ins != n.inputs:
            nodes[name] = n.evolve(inputs=ins)
    outputs = tuple(resolve(o, -1) for o in g.outputs)

    # consumed nodes that nothing uses any more go, transitively
    uses = dict.fromkeys(nodes, 0)
    for n in nodes.values():
        for i in set(n.inputs):
            uses[i] += 1
    for o in outputs:
        uses[o] += 1
    consumed = set().union(*(m.nodes for m in edits)) if edits else set()
    dead = [c for c in consumed if uses.get(c) == 0]
    while dead:
        c = dead.pop()
        for i in set(nodes.pop(c).inputs):
            uses[i] -= 1
            if uses[i] == 0 and i in consumed and i in nodes:
                dead.append(i)

    # order: originals keep their place; a new node goes right after its anchor / last operand
    key: dict[str, tuple[int, int]] = {n: (pos[n], 0) for n in nodes if n in pos}
    for seq, name in enumerate((n for n in placed if n in nodes), start=1):
        after = [placed[name]] if placed[name] else []
        anchors = [key[i][0] for i in (*nodes[name].inputs, *after) if i in key]
        key[name] = (max(anchors, default=-1), seq)
    users: dict[str, list[str]] = {n: [] for n in nodes}
    indeg = {}
    for name, n in nodes.items():
        ins = set(n.inputs)
        indeg[name] = len(ins)
        for i in ins:
            users[i].append(name)
    heap = [(key[n], n) for n, d in indeg.items() if d == 0]
    heapq.heapify(heap)
    order = []
    while heap:
        _, name = heapq.heappop(heap)
        order.append(nodes[name])
        for u in users[name]:
            indeg[u] -= 1
            if indeg[u] == 0:
                heapq.heappush(heap, (key[u], u))
    if len(order) != len(nodes):
        raise AssertionError("the rewrites made a cycle")
    out = g.copy_with(order, outputs)
    for m in edits:
        for path, (cls, args) in m.modules.items():
            out.set_module(path, cls, **args)
    return out
