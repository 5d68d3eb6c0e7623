"""A safe evaluator for the spec's arithmetic and call forms (no `eval`).

Expressions are parsed with `ast.parse(mode="eval")` and walked; only numbers, declared
variables, + - * / // % **, parentheses, a few functions and call forms are accepted:

    4*d_model          -> 2048
    d_model // h       -> 64
    windowed(M=7)      -> Call("windowed", args=(), kwargs={"M": 7})
    learned(max_len)   -> Call("learned", args=(512,), kwargs={})
    sliding(512) * 2   -> [Call("sliding", (512,)), Call("sliding", (512,))]  (pattern(sliding(512) * 5, causal))

`/` keeps integers when the division is exact. With `symbols=True`, unknown names become
sympy symbols (used to read shapes back from JSON).
"""

from __future__ import annotations

import ast
import math
import operator
import re
from dataclasses import dataclass, field
from typing import Any

import sympy

MAX_POW = 64
MAX_BITS = 256  # every integer an expression computes, also in between: |n| < 2**256 (77 digits)
MAX_TEXT = 4096  # characters of one expression
MAX_DEPTH = 100  # nesting of one expression (operators, parentheses, calls)
MAX_REPEAT = 100_000  # `sliding(512) * n`: the copies one repetition makes
CONSTANTS = {"true": True, "false": False, "True": True, "False": False, "none": None, "null": None,
             "None": None}
FUNCTIONS = {"min": min, "max": max, "int": int, "sqrt": math.sqrt, "round": round,
             "floor": lambda x: sympy.floor(x) if isinstance(x, sympy.Basic) else math.floor(x),
             "ceil": lambda x: sympy.ceiling(x) if isinstance(x, sympy.Basic) else math.ceil(x)}
FUNCTIONS["ceiling"] = FUNCTIONS["ceil"]


class ExprError(ValueError):
    """An expression that cannot be evaluated; `col` is 0-based within the expression text."""

    def __init__(self, message: str, col: int = 0, fix: str | None = None):
        super().__init__(message)
        self.col = col
        self.fix = fix


@dataclass(frozen=True)
class Call:
    """A call form such as `windowed(M=7)`: a construct name and its arguments."""

    name: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        """The call as a spec writes it (`windowed(7, shift=true)`), so messages quote the spec."""
        args = [spec_text(a) for a in self.args] + [f"{k}={spec_text(a)}" for k, a in self.kwargs.items()]
        return f"{self.name}({', '.join(args)})" if args else self.name


def spec_text(v: Any) -> str:
    """A value as a spec writes it: `[causal, global]`, `true`, `none`, not Python's repr."""
    if isinstance(v, list | tuple):
        return "[" + ", ".join(spec_text(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {spec_text(x)}" for k, x in v.items()) + "}"
    if isinstance(v, bool) or v is None:
        return {True: "true", False: "false", None: "none"}[v]
    text = repr(v) if isinstance(v, Call) else str(v)
    return text if len(text) <= 80 else text[:80] + "..."


def _div(a: Any, b: Any) -> Any:
    if isinstance(a, sympy.Basic) or isinstance(b, sympy.Basic):
        return sympy.sympify(a) / b
    if b == 0:
        raise ZeroDivisionError
    if isinstance(a, int) and isinstance(b, int) and a % b == 0:
        return a // b
    return a / b


def _pow(a: Any, b: Any) -> Any:
    if not isinstance(b, sympy.Basic) and abs(b) > MAX_POW:
        raise ExprError(f"exponent {b} is too large (at most {MAX_POW})")
    if isinstance(a, int) and isinstance(b, int) and b > 0 and (abs(a).bit_length() - 1) * b > MAX_BITS:
        raise _TooLarge  # decided before computing: ((9**64)**64)**64 would not finish
    return a**b


class _TooLarge(Exception):
    pass


BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: _div,
          ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: _pow}


# Construct names that are Python keywords (`global`, as in `pattern(global(pos=rope(160000)),
# local(128) * 2)`): parsed under a same-length alias, so that error columns stay put.
_KEYWORDS = re.compile(r"(\"[^\"]*\"|'[^']*')|\bglobal\b")  # a quoted string is kept as it is
_ALIAS, _UNALIAS = "globa_", {"globa_": "global"}


def _alias(text: str) -> str:
    return _KEYWORDS.sub(lambda m: m[1] or _ALIAS, text)


def evaluate(text: str, env: dict[str, Any], *, symbols: bool = False, calls: bool = False) -> Any:
    """Evaluate `text` with the variables of `env`. Call forms are allowed when `calls`."""
    if len(text) > MAX_TEXT:
        raise ExprError(f"the expression is {len(text):,} characters long (at most {MAX_TEXT:,})",
                        fix="write a shorter expression; declare parts of it under `vars:`")
    try:
        tree = ast.parse(_alias(text.strip()) if calls else text.strip(), mode="eval")
    except SyntaxError as e:
        raise ExprError(f"cannot parse {_short(text)!r}: {e.msg}", (e.offset or 1) - 1) from None
    except (ValueError, RecursionError, MemoryError):  # a NUL byte; nesting the parser refuses
        raise ExprError(f"cannot parse {_short(text)!r}", fix="write a plain arithmetic expression") from None
    return _Eval(env, symbols, calls, text.strip()).visit(tree.body)


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[:n] + "..."


class _Eval:
    def __init__(self, env: dict[str, Any], symbols: bool, calls: bool, text: str = ""):
        self.env, self.symbols, self.calls, self.text = env, symbols, calls, text
        self.depth = 0

    def _src(self, node: ast.AST) -> str:
        """The expression's own text for `node` (`1e400`, not Python's `1e309`)."""
        return _short(ast.get_source_segment(self.text, node) or ast.unparse(node))

    def visit(self, node: ast.AST) -> Any:
        """`_visit`, with every value bounded: integers under 2**MAX_BITS, floats finite."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExprError(f"the expression nests deeper than {MAX_DEPTH} levels",
                            getattr(node, "col_offset", 0), fix="declare parts of it under `vars:`")
        col = getattr(node, "col_offset", 0)
        try:
            v = self._visit(node)
        except _TooLarge:
            raise ExprError(f"{self._src(node)} is too large (graphspec allows integers "
                            f"below 2**{MAX_BITS})", col, fix="use smaller numbers") from None
        except (ValueError, OverflowError, TypeError, ArithmeticError, RecursionError) as e:
            if isinstance(e, ExprError):
                raise
            raise ExprError(f"cannot compute {self._src(node)}: {e}", col,
                            fix="check the arguments of this expression") from None
        finally:
            self.depth -= 1
        if isinstance(v, bool) or v is None:
            return v
        if isinstance(v, int) and v.bit_length() > MAX_BITS:
            raise ExprError(f"{self._src(node)} is too large (graphspec allows integers "
                            f"below 2**{MAX_BITS})", col, fix="use smaller numbers")
        if isinstance(v, float) and not math.isfinite(v):
            raise ExprError(f"{self._src(node)} is not a finite number", col,
                            fix="use smaller numbers")
        if isinstance(v, complex):
            raise ExprError(f"{self._src(node)} is not a real number", col)
        return v

    def _visit(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str | bool):
            return node.value
        if isinstance(node, ast.Name):
            if self.calls and node.id in _UNALIAS:
                return Call(_UNALIAS[node.id])
            if node.id in self.env:
                return self.env[node.id]
            if node.id in CONSTANTS:
                return CONSTANTS[node.id]
            if self.symbols:
                return sympy.Symbol(node.id, positive=True, integer=True)
            if self.calls:  # a bare construct name such as `global` or `sinusoidal`
                return Call(node.id)
            raise ExprError(f"undefined variable {node.id!r}", node.col_offset,
                            fix=_suggest(node.id, self.env))
        if isinstance(node, ast.BinOp) and type(node.op) in BINOPS:
            a, b = self.visit(node.left), self.visit(node.right)
            if isinstance(node.op, ast.Mult) and (isinstance(a, Call) or isinstance(b, Call)):
                return self._repeat(a, b, node)
            self._number(a, node.left)
            self._number(b, node.right)
            try:
                return BINOPS[type(node.op)](a, b)
            except ZeroDivisionError:
                raise ExprError("division by zero", node.col_offset) from None
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            v = self.visit(node.operand)
            self._number(v, node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.List | ast.Tuple):
            return [self.visit(e) for e in node.elts]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            fname = _UNALIAS.get(node.func.id, node.func.id) if self.calls else node.func.id
            args = tuple(self.visit(a) for a in node.args)
            kwargs = {(_UNALIAS.get(k.arg, k.arg) if self.calls else k.arg): self.visit(k.value)
                      for k in node.keywords if k.arg}
            if fname in FUNCTIONS and not kwargs:
                return FUNCTIONS[fname](*args)
            if self.calls:
                return Call(fname, args, kwargs)
            raise ExprError(f"unknown function {fname!r}", node.col_offset,
                            fix=f"use one of {', '.join(sorted(FUNCTIONS))}")
        raise ExprError(f"unsupported syntax {ast.unparse(node)!r} (only arithmetic on numbers and "
                        "variables, and call forms, are allowed)", getattr(node, "col_offset", 0))

    def _repeat(self, a: Any, b: Any, node: ast.AST) -> list:
        """`sliding(512) * 5`: a call form repeated, as a list (`pattern(sliding(512) * 5, causal)`)."""
        call, n = (a, b) if isinstance(a, Call) else (b, a)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_REPEAT:
            raise ExprError(f"{self._src(node)} repeats a call form {spec_text(n)} times", node.col_offset,
                            fix=f"repeat it a whole number of times from 1 to {MAX_REPEAT}, e.g. sliding(512) * 5")
        return [call] * n

    def _number(self, v: Any, node: ast.AST) -> None:
        if isinstance(v, bool) or not isinstance(v, int | float | sympy.Basic):
            raise ExprError(f"{ast.unparse(node)!r} is not a number", node.col_offset)


def _suggest(name: str, env: dict[str, Any]) -> str | None:
    import difflib

    close = difflib.get_close_matches(name, list(env), n=1)
    if close:
        return f"did you mean {close[0]!r}? (or declare it under `vars:`)"
    return "declare it under `vars:` or pass --set " + name + "=VALUE"
