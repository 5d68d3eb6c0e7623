"""Constructor arguments of a generated class, and expressions over them.

Every value a class needs (an op attribute, a child's constructor argument, a loop count) is
known per instance. `Params.expr` writes it as a literal when all instances agree and no
argument explains it, as an expression over the class's arguments when one does (`dim`,
`4 * dim`, `-shift_size`, `input_resolution[0]`, `(dim // num_heads) ** -0.5`), and otherwise
adds an argument. The root class, which has one instance, gets keyword arguments with defaults.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, field
from typing import Any

from graphspec.codegen.names import MODULE_ATTRS, Namespace, identifier

DONT_CARE = object()  # an instance where the value does not matter (an absent step)
SCALE_HINTS = frozenset({"scale", "k"})

# Argument names as timm / the official Swin code spell them.
RENAME = {"heads": "num_heads", "window": "window_size", "shift": "shift_size", "patch": "patch_size",
          "hidden": "hidden_features", "grid": "input_resolution", "depth": "depth"}

# Arguments that also name a value of another name: the k/v heads of a split are `heads` of the
# op and `kv_heads` of an attention class (GQA).
ALSO_NAMED = {"heads": ("kv_heads",)}

# NOTE: [Roles of sizes] A value is written over an argument of another name only when both
# name the same kind of size: a Linear's in_features over `dim` (widths flow from layer to
# layer, `4 * dim`), a conv's kernel over `patch_size`, a scale over `dim` (`(dim // num_heads)
# ** -0.5`). Counts (an embedding table's length, heads, depth) are named by what they are or
# written as literals: GPT-2 medium's 1024 positions are not `dim` because its width is 1024
# too. A name missing here matches only arguments of its own name.
WIDTH, SPATIAL, SCALE = "width", "spatial", "scale"
ROLES = {
    **dict.fromkeys(("dim", "in_features", "out_features", "in_channels", "out_channels", "channels", "hidden",
                     "hidden_features", "in_chans", "out", "planes", "width", "classes", "d_ff"), WIDTH),
    **dict.fromkeys(("kernel", "stride", "padding", "dilation", "patch", "patch_size", "window", "window_size", "shift",
                     "shift_size", "grid", "input_resolution"), SPATIAL),
    **dict.fromkeys(("scale", "k"), SCALE),
}
KIN = {(WIDTH, WIDTH), (SPATIAL, SPATIAL), (SCALE, WIDTH)}  # (role of the value, role of the argument)


def role(name: str) -> str | None:
    """The kind of size a name stands for (`out_features_1` as `out_features`), None if unknown."""
    return ROLES.get(re.sub(r"_\d+$", "", name))


def literal(v: Any) -> str:
    if isinstance(v, str) and v.isprintable() and '"' not in v and "\\" not in v:
        return f'"{v}"'  # black's quotes, as the rest of the file
    if v is None or isinstance(v, bool | int | str):
        return repr(v)
    if isinstance(v, float):
        if v == 0:
            return "0.0"
        return repr(v)
    if isinstance(v, tuple | list):
        inner = ", ".join(literal(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if hasattr(v, "is_Integer") and v.is_Integer:  # sympy
        return str(int(v))
    raise TypeError(f"cannot write {v!r} ({type(v).__name__}) as a literal")


def scale_literal(v: Any) -> str:
    """A scale that no argument explains (at the root, which has none), as hand-written code spells
    it: the square root of a width or its inverse, exactly (T5's tied head `* 768 ** -0.5`, HF's
    `self.model_dim**-0.5`), else a literal."""
    if isinstance(v, float) and v > 0 and not v.is_integer():
        for e in (-0.5, 0.5):
            n = round(v ** (1 / e))
            if n >= 8 and n ** e == v:
                return f"{n} ** {e}"
    return literal(v)


def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(_eq(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass
class Param:
    name: str
    values: dict[str, Any]  # instance path -> value
    source: str = ""  # the ModuleInfo arg it came from ("" for added ones)
    used: bool = False


@dataclass
class Params:
    """The arguments of one class, over its instances."""

    paths: list[str]
    params: list[Param] = field(default_factory=list)
    root: bool = False
    ns: Namespace = field(default_factory=lambda: Namespace(MODULE_ATTRS | {"self"}))

    def add(self, hint: str, values: dict[str, Any], source: str = "") -> Param:
        p = Param(self.ns.create(identifier(RENAME.get(hint, hint))), values, source)
        self.params.append(p)
        return p

    def get(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    # -- matching ------------------------------------------------------------------------------
    def _forms(self, p: Param, hint: str):
        """(expression, value function) candidates over one argument."""
        vals = [v for v in p.values.values() if v is not DONT_CARE]
        if not vals:
            return
        if all(_is_int(v) for v in vals):
            yield p.name, lambda v: v
            yield f"-{p.name}", lambda v: -v
            for m in (2, 3, 4):
                yield f"{m} * {p.name}", lambda v, m=m: m * v
            yield f"{p.name} // 2", lambda v: v // 2
            if hint in SCALE_HINTS:
                yield f"{p.name} ** 0.5", lambda v: v ** 0.5
                yield f"{p.name} ** -0.5", lambda v: v ** -0.5
                for q in self.params:
                    if q is not p and all(_is_int(v) and v for v in q.values.values()):
                        yield f"({p.name} // {q.name}) ** -0.5", lambda v, q=q, p=p: None
        elif all(isinstance(v, tuple) for v in vals):
            yield p.name, lambda v: v
            for k in range(min(len(v) for v in vals)):
                yield f"{p.name}[{k}]", lambda v, k=k: v[k]
        else:
            yield p.name, lambda v: v

    def _fits(self, p: Param, expr: str, fn, values: dict[str, Any]) -> bool:
        for path, v in values.items():
            if v is DONT_CARE:
                continue
            if p.values.get(path, DONT_CARE) is DONT_CARE:
                return False
            if expr.startswith("(") and "//" in expr:  # (a // b) ** -0.5
                a, b = p, self.get(expr.split("//")[1].split(")")[0].strip())
                x, y = a.values[path], b.values.get(path, DONT_CARE)
                if not (_is_int(x) and _is_int(y) and y and x % y == 0):
                    return False
                got = (x // y) ** -0.5
            else:
                got = fn(p.values[path])
            if not _eq(got, v):
                return False
        return True

    def match(self, values: dict[str, Any], hint: str) -> str | None:
        """An expression over existing arguments that gives `values` in every instance."""
        known = [v for v in values.values() if v is not DONT_CARE]
        if not known:
            return None
        varying = any(not _eq(v, known[0]) for v in known)
        names = {hint, RENAME.get(hint, hint), *ALSO_NAMED.get(hint, ())}
        if not varying and isinstance(known[0], bool):
            return None  # a flag every instance sets alike is a literal
        for named_first in (True, False):
            forms = []
            for p in self.params:
                if (p.source in names or p.name in names) != named_first:
                    continue
                if not named_first and (role(hint), role(p.source or p.name)) not in KIN:
                    continue  # NOTE: [Roles of sizes]
                forms += [(p, expr, fn) for expr, fn in self._forms(p, hint)]
            if named_first:  # an argument itself before an expression over another (kv_heads, not num_heads // 2)
                forms.sort(key=lambda f: f[1] != f[0].name)
            for p, expr, fn in forms:
                if not named_first and not varying and not self._distinctive(known[0], expr, p):
                    continue
                if self._fits(p, expr, fn, values):
                    p.used = True
                    if "//" in expr and "(" in expr:
                        self.get(expr.split("//")[1].split(")")[0].strip()).used = True
                    return expr
        return None

    @staticmethod
    def _distinctive(v: Any, expr: str, p: Param) -> bool:
        """For a value that never varies, only a telling match counts (not 1 == depth)."""
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return False
        if _is_int(v):
            return abs(v) >= 8 or (expr == p.name and abs(v) >= 2 and p.source not in ("shift", "depth"))
        if isinstance(v, float):
            return "**" in expr
        return isinstance(v, tuple) and expr == p.name

    def truthy(self, present: dict[str, bool], hint: str) -> str | None:
        """An argument named like `hint` whose truth is the presence of a step in every instance."""
        for p in self.params:
            if hint not in (p.source, p.name) and RENAME.get(hint) != p.name:
                continue
            vals = [p.values.get(q, DONT_CARE) for q in self.paths]
            if all(isinstance(v, bool | int) or v is None for v in vals) and \
                    all(bool(p.values[q]) == present[q] for q in self.paths):  # None: Gemma-2's global layers
                p.used = True
                return p.name
        return None

    # -- expressions ---------------------------------------------------------------------------
    def expr(self, values: dict[str, Any], hint: str) -> str:
        """`values` (path -> value) as an expression over the arguments, adding one if needed."""
        known = [v for v in values.values() if v is not DONT_CARE]
        if not known:
            return "None"
        m = self.match(values, hint)
        if m is not None:
            return m
        if all(_eq(v, known[0]) for v in known) and not self.root:
            return literal(known[0])
        if self.root:
            return scale_literal(known[0]) if hint in SCALE_HINTS else literal(known[0])
        p = self.add(hint, dict(values))
        p.used = True
        return p.name

    def default(self, p: Param) -> str:
        return literal(next(iter(p.values.values())))


def names_in(expr: str) -> set[str]:
    return {n.id for n in ast.walk(ast.parse(expr, mode="eval")) if isinstance(n, ast.Name)}


def precedence(expr: str) -> int:
    """Binding strength of an expression's top operator (higher binds tighter)."""
    node = ast.parse(expr.strip(), mode="eval").body
    if isinstance(node, ast.IfExp):
        return 0
    if isinstance(node, ast.Compare | ast.BoolOp):
        return 1
    if isinstance(node, ast.BinOp):
        return 2 if isinstance(node.op, ast.Add | ast.Sub) else 4 if isinstance(node.op, ast.Pow) else 3
    if isinstance(node, ast.UnaryOp):
        return 5
    return 9


def paren(expr: str, level: int) -> str:
    return f"({expr})" if precedence(expr) < level else expr


def self_expr(expr: str, params: set[str]) -> str:
    """`expr` with argument names read from `self.` (the forward pass sees stored arguments)."""
    tree = ast.parse(expr, mode="eval")

    class T(ast.NodeTransformer):
        def visit_Name(self, n):
            if n.id in params:
                return ast.copy_location(ast.Attribute(ast.Name("self", ast.Load()), n.id, ast.Load()), n)
            return n

    return ast.unparse(T().visit(tree))
