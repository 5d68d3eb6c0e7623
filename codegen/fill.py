"""Filling an op's torch template with operand and attribute expressions, with parentheses
only where Python's precedence needs them.

Templates are format strings (`"{0}.unflatten(-1, ({heads}, -1)).transpose(1, 2)"`) or, for
ops whose code depends on their attributes, functions of the operand texts and attributes.
Each field is first replaced by a placeholder name; the parsed skeleton says which position
the field takes (receiver of a method call, operand of `*`, argument), and the text goes in,
parenthesized if its top operator binds looser than that position.
"""

from __future__ import annotations

import ast
import string
from collections.abc import Callable, Mapping
from typing import Any

from graphspec.codegen.exprs import literal, precedence

_NOVALUE = object()


class AttrExpr:
    """An attribute as written in code: `text`, and the Python value when it is a literal."""

    def __init__(self, text: str, value: Any = _NOVALUE, parts: list[AttrExpr] | None = None):
        self.text, self.value, self._parts = text, value, parts

    @property
    def known(self) -> bool:
        return self.value is not _NOVALUE

    def parts(self) -> list[AttrExpr] | None:
        """A tuple's elements one by one (a literal's, or those given as `parts`), else None."""
        if isinstance(self.value, tuple | list):
            return [AttrExpr(literal(v), v) for v in self.value]
        return self._parts

    def __getitem__(self, k: int) -> AttrExpr:
        if isinstance(self.value, tuple | list):
            return AttrExpr(literal(self.value[k]), self.value[k])
        return AttrExpr(f"{_wrap(self.text, 9)}[{k}]")

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return self.text

    def __bool__(self) -> bool:
        if not self.known:
            raise ValueError(f"attribute {self.text} differs between instances; a template cannot branch on it")
        return bool(self.value)

    def __eq__(self, other: object) -> bool:
        return self.known and self.value == other

    __hash__ = None


def _wrap(text: str, level: int) -> str:
    try:
        return f"({text})" if precedence(text) < level else text
    except SyntaxError:
        return f"({text})"


_LEVEL = {ast.Add: 2, ast.Sub: 2, ast.Mult: 3, ast.MatMult: 3, ast.Div: 3, ast.FloorDiv: 3, ast.Mod: 3,
          ast.Pow: 4}


def _needs(skeleton: str, names: set[str]) -> dict[str, tuple[int, type | None, str]]:
    """For each placeholder: (minimum precedence, the operator it sits under, side)."""
    out: dict[str, tuple[int, type | None, str]] = {}
    tree = ast.parse(skeleton, mode="exec")
    for parent in ast.walk(tree):
        for fld, child in ast.iter_fields(parent):
            kids = child if isinstance(child, list) else [child]
            for kid in kids:
                if not (isinstance(kid, ast.Name) and kid.id in names):
                    continue
                if isinstance(parent, ast.Attribute | ast.Subscript) and fld == "value":
                    out[kid.id] = (9, None, "")
                elif isinstance(parent, ast.Call) and fld == "func":
                    out[kid.id] = (9, None, "")
                elif isinstance(parent, ast.BinOp):
                    lvl = _LEVEL[type(parent.op)]
                    out[kid.id] = (lvl, type(parent.op), "left" if fld == "left" else "right")
                elif isinstance(parent, ast.UnaryOp):
                    out[kid.id] = (5, None, "")
                elif isinstance(parent, ast.Compare):
                    out[kid.id] = (2, None, "")
                else:
                    out.setdefault(kid.id, (0, None, ""))
    return out


def _place(text: str, need: tuple[int, type | None, str]) -> str:
    level, op, side = need
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        return f"({text})"
    p = precedence(text)
    if p < level:
        return f"({text})"
    if op is not None and isinstance(node, ast.BinOp) and p == level:
        # same level: keep the grouping (right side), and make a mixed chain explicit
        if side == "right" or type(node.op) is not op:
            return f"({text})"
    if op is ast.Pow and side == "left" and p == 4:
        return f"({text})"
    return text


def fill(template: str | Callable[..., str], operands: list[str], attrs: Mapping[str, Any],
         init: bool = False) -> str:
    """The template with `{0}`, `{1}`... set to operands and `{name}` to attribute expressions.
    A function template is called as `template(operands, attrs)`, or `template(attrs)` for `init`."""
    if callable(template):
        ph = [f"_op{i}_" for i in range(len(operands))]
        skeleton = template(attrs) if init else template(ph, attrs)
        texts = dict(zip(ph, operands, strict=True))
    else:
        fmt = string.Formatter()
        pieces, texts = [], {}
        for lit, field, _spec, _conv in fmt.parse(template):
            pieces.append(lit)
            if field is None:
                continue
            if field.isdigit():
                obj = operands[int(field)]
            else:
                obj, _ = fmt.get_field(field, operands, attrs)
            key = f"_f{len(texts)}_"
            texts[key] = str(obj)
            pieces.append(key)
        skeleton = "".join(pieces)
    try:
        needs = _needs(skeleton, set(texts))
    except SyntaxError as e:
        raise ValueError(f"torch template {template!r} does not parse: {e}") from None
    out = skeleton
    for key, text in texts.items():
        out = out.replace(key, _place(text, needs.get(key, (0, None, ""))))
    return out
