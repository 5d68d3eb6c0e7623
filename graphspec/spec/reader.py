"""Reading the values of a spec section: expressions over `vars`, typed values, choices and call
forms, each problem recorded against its file:line:column with a fix (graphspec.spec.schema)."""

from __future__ import annotations

import difflib
import math
from typing import Any

from graphspec.spec.errors import Diagnostics, Loc
from graphspec.spec.expr import Call, ExprError, _suggest, evaluate, spec_text
from graphspec.spec.loader import RawSpec
from graphspec.spec.types import IDENT


# -- helpers ---------------------------------------------------------------------------------
def _unknown(diags: Diagnostics, raw: RawSpec, path: tuple, keys: set[str], allowed: set[str], what: str):
    for k in sorted(keys - allowed):
        close = difflib.get_close_matches(k, sorted(allowed), n=1)
        fix = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(allowed))}"
        diags.add(raw.loc(*path, k, "$key") or raw.loc(*path, k), f"unknown key {k!r} in {what}", fix)


class _Reader:
    """Evaluates values of one section and records problems against their locations."""

    def __init__(self, raw: RawSpec, env: dict[str, Any], diags: Diagnostics):
        self.raw, self.env, self.diags = raw, env, diags

    def value(self, v: Any, path: tuple, *, calls: bool = False) -> Any:
        if isinstance(v, str):
            text = v.strip()
            if IDENT.match(text):
                if text in self.env:
                    return self.env[text]
                if calls or text in ("true", "false", "none"):
                    return evaluate(text, {}, calls=True) if text in ("true", "false", "none") else Call(text)
            try:
                return evaluate(text, self.env, calls=calls)
            except ExprError as e:
                loc = self.raw.loc(*path)
                if loc and loc.file.endswith(".yaml"):
                    loc = Loc(loc.file, loc.line, loc.col + e.col)
                self.diags.add(loc, f"{e} in {text if len(text) <= 80 else text[:80] + '...'!r}", e.fix)
                return _BAD
        if isinstance(v, list):
            out = [self.value(x, path + (i,), calls=calls) for i, x in enumerate(v)]
            return _BAD if any(x is _BAD for x in out) else out  # reported at the element already
        return v

    @staticmethod
    def invalid(v: Any) -> bool:
        """Whether `v` is the value of a mistake already reported (report nothing more about it)."""
        return v is _BAD

    def typed(self, v: Any, path: tuple, kind: type | tuple, what: str, *, minimum: float | None = None):
        v = self.value(v, path)
        if v is _BAD or (isinstance(v, list) and _BAD in v):  # reported where it went wrong
            return _BAD
        ok = isinstance(v, kind) and not (isinstance(v, bool) and bool not in _as_tuple(kind))
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v, ok = float(v), True
        if kind is int and isinstance(v, float) and v.is_integer():
            v, ok = int(v), True
        if not ok and isinstance(v, Call) and not v.args and not v.kwargs:  # a name read as a construct
            self.diags.add(self.raw.loc(*path), f"undefined variable {v.name!r} (for {what})",
                           _suggest(v.name, self.env))
            return _BAD
        if not ok:
            names = "/".join(t.__name__ for t in _as_tuple(kind))
            self.diags.add(self.raw.loc(*path), f"{what} must be {names}, got {_show(v)}",
                           f"write {'an' if names[0] in 'aeiou' else 'a'} {names} value or an expression over vars")
            return _BAD
        if isinstance(v, float) and not math.isfinite(v):
            self.diags.add(self.raw.loc(*path), f"{what} must be finite, got {v!r}", "write a finite number")
            return _BAD
        if minimum is not None and v < minimum:
            self.diags.add(self.raw.loc(*path), f"{what} must be ≥ {minimum}, got {v}",
                           f"write a {what} of at least {minimum}")
            return _BAD
        return v

    def choice(self, v: Any, path: tuple, options: tuple[str, ...], what: str) -> Any:
        c = self.value(v, path, calls=True)
        name = c.name if isinstance(c, Call) else ("none" if c is None else c)
        if name in options:
            return name
        if c is not _BAD:
            close = difflib.get_close_matches(str(name), options, n=1)
            shown = repr(name) if isinstance(name, str) else _show(v)  # `[relu, gelu]`, not Call(...)
            self.diags.add(self.raw.loc(*path), f"{what} {shown} is not one of {', '.join(options)}",
                           f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(options)}")
        return _BAD

    def call(self, v: Any, path: tuple, params: dict[str, tuple], what: str) -> tuple[str, dict]:
        """A construct given as a call form, a bare name, or a mapping with `kind:`."""
        if isinstance(v, dict):
            v = dict(v)
            name = v.pop("kind", None)
            c = Call(str(name), (), {k: self.value(x, path + (k,), calls=True) for k, x in v.items()})
        else:
            c = self.value(v, path, calls=True)
        if c is _BAD:
            return "", {}
        if c is None and "none" not in params and len(path) == 1 and path[0] in SECTION_EXAMPLES:
            self.diags.add(self.raw.loc(*path) or Loc(self.raw.file, 1, 1), f"the spec has no `{path[0]}:`"
                           if path[0] not in self.raw.tree else f"`{path[0]}:` is empty",
                           f"add e.g. {SECTION_EXAMPLES[path[0]]}")
            return "", {}
        if c is None:
            c = Call("none")
        if not isinstance(c, Call):
            self.diags.add(self.raw.loc(*path), f"{what} must name one construct, got {_show(v)}",
                           f"use one of {', '.join(params)}, e.g. `{path[-1]}: {next(iter(params))}`")
            return "", {}
        if c.name not in params:
            close = difflib.get_close_matches(c.name, list(params), n=1)
            self.diags.add(self.raw.loc(*path), f"unknown {what} {c.name!r}",
                           f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(params)}")
            return "", {}
        names = params[c.name]
        if len(c.args) > len(names):
            self.diags.add(self.raw.loc(*path), f"{c.name}() takes at most {len(names)} positional "
                           f"arguments ({', '.join(names)}), got {len(c.args)}")
            return "", {}
        out = dict(zip(names, c.args, strict=False))
        for k, x in c.kwargs.items():
            if k not in names:
                close = difflib.get_close_matches(k, names, n=1)
                takers = [n for n, ps in params.items() if k in ps]
                self.diags.add(self.raw.loc(*path), f"{c.name}() has no argument {k!r}",
                               f"did you mean {close[0]!r}?" if close else
                               (f"{c.name}() takes {', '.join(names)}" if names else
                                f"{c.name} takes no arguments; write {c.name}") +
                               (f"; `{k}` is an argument of {' and '.join(t + '()' for t in takers)}" if takers else ""))
                continue
            out[k] = x
        return c.name, out


class _Bad:
    def __repr__(self) -> str:
        return "<invalid>"


SECTION_EXAMPLES = {"input": "`input: tokens(seq_len)` or `input: image(img_size)`",
                    "embed": "`embed: tokens(vocab, dim=d_model)` or `embed: patches(16, dim=768)`"}


def _show(v: Any) -> str:
    """A spec value as the spec wrote it (`[causal, global]`), not as Python prints it."""
    return spec_text(v)


_BAD = _Bad()


def _as_tuple(kind: Any) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)
