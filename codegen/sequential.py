"""`nn.Sequential` children written inline by their parent class.

A module registered as `Sequential` (ResNet's stages, a projection shortcut) has no class of its
own in the generated file: its parent builds it as `nn.Sequential(nn.Conv2d(...), ...)` or
`nn.Sequential(*(Bottleneck(...) for i in range(depth)))`, with the items' arguments written
over the parent's arguments (`ParamsView`).
"""

from __future__ import annotations

from typing import Any

from graphspec.codegen.classes import ClassDef
from graphspec.codegen.emit import Attrs, ClassEmitter
from graphspec.codegen.exprs import DONT_CARE, Param, Params, names_in
from graphspec.codegen.fill import fill
from graphspec.codegen.program import CodegenError

from graphspec.ops import get


class ParamsView:
    """The arguments of a parent class, seen from the instances of an inline child (an
    nn.Sequential has no class: its items are built from the parent's arguments)."""

    def __init__(self, P: Params, child_of: dict[str, Any]):
        self.P, self.root, self.params = P, P.root, P.params
        self.child_of = child_of  # parent instance -> child instance (or DONT_CARE)

    def _up(self, values: dict[str, Any]) -> dict[str, Any]:
        return {q: (values.get(c, DONT_CARE) if c is not DONT_CARE else DONT_CARE) for q, c in self.child_of.items()}

    def expr(self, values: dict[str, Any], hint: str) -> str:
        return self.P.expr(self._up(values), hint)

    def add(self, hint: str, values: dict[str, Any], source: str = "") -> Param:
        return self.P.add(hint, self._up(values), source)

    def truthy(self, present: dict[str, bool], hint: str) -> str | None:
        return self.P.truthy(self._up(present), hint)


class Sequential(ClassEmitter):
    """An `nn.Sequential` child written inline: `nn.Sequential(nn.Conv2d(...), nn.BatchNorm2d(...))`
    or `nn.Sequential(*(Bottleneck(...) for i in range(depth)))`. Its items may only be modules
    applied in a chain (torch.nn.Sequential's contract)."""

    def __init__(self, parent: ClassEmitter, d: ClassDef, child_of: dict[str, Any]):
        self.em, self.d, self.g, self.root = parent.em, d, parent.g, False
        self.P = ParamsView(parent.P, child_of)
        self.pre, self.cache = parent.pre, {}

    def text(self) -> str:
        items = []
        for j, ms in enumerate(self.d.steps):
            s = ms.first
            chained = ms.refs == ([("in", 0)] if j == 0 else [("step", j - 1, 0)]) and len(s.outs) == 1
            if len(ms.per) < len(self.d.paths) or not chained:
                raise CodegenError(f"{self.d.paths[0]}: an nn.Sequential must apply all its items in a chain")
            if s.kind == "op":
                t = get(s.node.op).torch
                if t is None or t.init is None or t.call != "self.{mod}({0})":
                    raise CodegenError(f"{self.d.paths[0]}: {s.node.op} is not a module; nn.Sequential cannot hold it")
                items.append(fill(t.init, [], Attrs(self, j, "init"), init=True))
            elif s.kind == "call":
                kid = self.em.class_of(s.children[0])
                items.append(f"{kid.name}({self.child_args(kid, {q: ms.per[q].children[0] for q in ms.per})})")
            else:
                kid = self.em.class_of(s.children[0])
                kids = {q: ms.per[q].children for q in ms.per}
                count = self.P.expr({q: len(k) for q, k in kids.items()}, "depth")
                body = f"{kid.name}({self.em.loops.args(self, kid, kids)})"
                var = "i" if "i" in names_in(body) else "_"
                items.append(f"*({body} for {var} in range({count}))")
        return f"nn.Sequential({', '.join(items)})"
