"""The spec vocabulary: one table of constructs, each declared once with all its rules.

A *construct* is what a spec names in a call form: a norm kind (`rms_norm(1e-6)`), an attention
mask (`sliding(4096)`), a position scheme (`rope(10000, fraction=0.4)`), an MLP kind
(`glu(11008, silu)`), a block placement (`parallel`), a downsampling (`patch_merging`). The
op registry (graphspec/ops/) says what an IR op computes; this registry says how a spec word
becomes IR ops. Each construct declares, side by side:

- its `kind` and `name` (the pair is unique: registering it twice raises);
- its arguments, in positional order, each an `Arg` with a type, a default (or `REQUIRED`), a
  lower bound and a one-line doc; an argument may itself be a construct of another kind
  (`Arg("act", "act", "silu")` reads `glu(d_ff, gelu_tanh)`'s second argument as an activation);
- a `check(args) -> [(arg, message, fix)]` for rules across arguments (`top_k ≤ experts`);
- its lowering: the decorated function, called as `fn(b, use, ctx, *inputs)` with the
  `graphspec.lower.Builder` `b`, the validated `Use` and the kind's context (see each kind's
  module); further entry points of a kind (a position scheme's `qk` hook applied inside
  attention) go in `hooks`;
- `module`/`attr`: the class and attribute name codegen gives the module it builds (when it
  builds one), and `doc_class`, the docstring of that class in generated code;
- `example`: a spec snippet using it (tests/test_vocab.py loads each one, docs quote them).

The spec reader (graphspec/spec/schema.py) reads a value of a kind with `read(...)`: a bare name
(`causal`), a call form (`sliding(4096)`, `sliding(window=4096)`) or a mapping with `kind:`.
Unknown names get close matches *of the same kind* only, and `alias(...)` entries give the
right spelling of a word users bring from elsewhere (`swiglu` -> `mlp: glu(d_ff, silu)`).
Every problem is a located diagnostic with a fix (`Diagnostics`), never an exception.

How to add a construct (worked example: Gemma's `(1 + w)` RMSNorm is already `rms_norm(offset=1)`;
suppose we want a "scale_norm" of Nguyen & Salazar 2019, y = g·x/‖x‖ with one scalar g):

1. If no op computes it, add an op kind (graphspec/ops/, a new file for a new family):
   `@op("scale_norm", HAS_PARAMS, NORM)` with shape, params `{"g": ()}`, eval, torch template.
2. Declare the construct next to its kin, here in graphspec/vocab/norms.py:

       @construct("norm", "scale_norm", Arg("eps", float, 1e-5, doc="added to ‖x‖"),
                  example="norm: scale_norm(1e-5)")
       def scale_norm(b, use, ctx, x):
           '''ScaleNorm (Nguyen & Salazar 2019, §2.1): g·x/‖x‖, one learned scalar.'''
           return b.emit("scale_norm", (x,), ctx.local, eps=use["eps"])

   `ctx` of a norm carries `local` (the attribute name) and `dim`. Nothing else changes: the
   spec reader finds it by kind (`norm: scale_norm(1e-5)` and every placement use it), a typo
   such as `scale_nrom` suggests it, and tests/test_vocab.py checks it has a doc, args and an
   example that loads.
3. Add its weight-map rows (graphspec/weights.py) when a reference implementation names them.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graphspec.spec.errors import Loc
from graphspec.spec.expr import Call


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()


class _Floats:
    """The type of an argument that is a list of numbers (LongRoPE's per-dim factors): read
    from `[1.0, 1.05]` (or a `vars:` list) as a tuple of floats, each finite and above the
    argument's `minimum`."""

    __name__ = "list of numbers"

    def __repr__(self) -> str:
        return "FLOATS"


FLOATS = _Floats()
TYPES = {int: "int", float: "float", bool: "bool", str: "name", FLOATS: "list of numbers"}


@dataclass(frozen=True)
class Arg:
    """One argument of a construct. `type` is int, float, bool, str (a bare name), a tuple of
    those, FLOATS (a list of numbers, kept as a tuple), or the name of a construct kind (its
    value is read as a construct of that kind)."""

    name: str
    type: Any = int
    default: Any = REQUIRED
    minimum: float | None = None
    doc: str = ""
    choices: tuple[str, ...] = ()  # for str arguments
    exclusive: bool = False  # minimum is exclusive (a window > 0)

    @property
    def kind(self) -> str | None:
        return self.type if isinstance(self.type, str) else None


@dataclass(frozen=True)
class Construct:
    kind: str
    name: str
    args: tuple[Arg, ...]
    doc: str
    lower: Callable[..., Any]
    example: str = ""
    check: Callable[[dict], list] | None = None
    module: str | None = None  # IR module class (codegen's class name) when it builds one
    attr: str | None = None  # the attribute name of that module in its parent
    doc_class: str = ""  # docstring of that class in generated code
    hooks: dict[str, Callable[..., Any]] = field(default_factory=dict)

    def arg(self, name: str) -> Arg:
        return next(a for a in self.args if a.name == name)

    def signature(self) -> str:
        parts = [a.name if a.default is REQUIRED else f"{a.name}={_show(a.default)}" for a in self.args]
        return f"{self.name}({', '.join(parts)})" if parts else self.name


@dataclass(frozen=True)
class Use:
    """A construct as a spec uses it: its validated arguments (defaults filled in), and where."""

    construct: Construct
    args: tuple[tuple[str, Any], ...] = ()
    loc: Loc | None = field(default=None, compare=False)

    @property
    def name(self) -> str:
        return self.construct.name

    @property
    def kind(self) -> str:
        return self.construct.kind

    @property
    def a(self) -> dict[str, Any]:
        return dict(self.args)

    def __getitem__(self, k: str) -> Any:
        return self.a[k]

    def get(self, k: str, default: Any = None) -> Any:
        return self.a.get(k, default)

    def hook(self, name: str) -> Callable[..., Any] | None:
        return self.construct.hooks.get(name)

    def lower(self, b, ctx, *inputs: Any) -> Any:
        return self.construct.lower(b, self, ctx, *inputs)

    def __str__(self) -> str:
        shown = [(k, v) for k, v in self.args if v is not None or self.construct.arg(k).kind is None]  # unset pos=
        if not shown:
            return self.name
        return f"{self.name}({', '.join(f'{k}={_show(v)}' for k, v in shown)})"


KINDS: dict[str, dict[str, Construct]] = {}
ALIASES: dict[str, dict[str, tuple[str, str]]] = {}  # kind -> {word: (message, fix)}


def construct(kind: str, name: str, *args: Arg, example: str = "", check: Callable | None = None,
              module: str | None = None, attr: str | None = None, doc_class: str = "",
              hooks: dict[str, Callable] | None = None) -> Callable:
    """Decorator that registers the lowering function of a construct; refuses duplicates."""

    def deco(fn: Callable) -> Callable:
        table = KINDS.setdefault(kind, {})
        if name in table:
            raise ValueError(f"construct {kind} {name!r} is registered twice")
        if len({a.name for a in args}) != len(args):
            raise ValueError(f"construct {kind} {name!r} repeats an argument name")
        table[name] = Construct(kind, name, tuple(args), (fn.__doc__ or "").strip(), fn, example, check,
                                module, attr, doc_class, dict(hooks or {}))
        return fn

    return deco


def alias(kind: str, word: str, message: str, fix: str) -> None:
    """A word that is not a construct of `kind` but that users write for one (`swiglu` as an
    activation): reading it reports `message` with `fix` instead of a close match."""
    ALIASES.setdefault(kind, {})[word] = (message, fix)


def get(kind: str, name: str) -> Construct:
    return KINDS[kind][name]


def use(kind: str, name: str, **args: Any) -> Use:
    """A `Use` built in Python (sugar, defaults): every argument filled in from its default."""
    c = get(kind, name)
    vals = {a.name: _default(a) for a in c.args if a.default is not REQUIRED}
    vals.update(args)
    return Use(c, tuple(vals.items()))


def _default(a: Arg) -> Any:
    """An argument's default; a construct-valued one (`act="silu"`) as its `Use`."""
    return use(a.kind, a.default) if a.kind is not None and isinstance(a.default, str) else a.default


def names(kind: str) -> list[str]:
    return list(KINDS.get(kind, {}))


CLASS_DOCS: dict[str, str] = {}  # module classes a construct builds besides its `module` (GeGLU)


def class_doc(cls: str) -> str | None:
    """The generated-code docstring of an IR module class a construct builds."""
    for table in KINDS.values():
        for c in table.values():
            if c.module == cls and c.doc_class:
                return c.doc_class
    return CLASS_DOCS.get(cls)


# -- reading a construct from a spec value ---------------------------------------------------
def read(r, v: Any, path: tuple, kinds: str | tuple[str, ...], what: str | None = None) -> Use | None:
    """The construct named by the spec value `v` at `path`, of one of `kinds`, with validated
    arguments; None (and a diagnostic in `r.diags`) when it is not one. `r` is the section
    reader (`graphspec.spec.reader._Reader`)."""
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    what = what or kinds[0]
    loc = r.raw.loc(*path)
    c = _as_call(r, v, path)
    if c is None:
        return None
    if not isinstance(c, Call):
        options = [n for k in kinds for n in names(k)]
        r.diags.add(loc, f"{what} must name a construct, got {c!r}", f"use one of {', '.join(options)}")
        return None
    found = next((KINDS[k][c.name] for k in kinds if c.name in KINDS.get(k, {})), None)
    if found is None:
        _unknown(r, loc, c.name, kinds, what)
        return None
    return _bind(r, found, c, path, loc)


def _as_call(r, v: Any, path: tuple) -> Any:
    if isinstance(v, Call):
        return v
    if isinstance(v, dict):
        v = dict(v)
        name = v.pop("kind", None)
        if name is None:
            r.diags.add(r.raw.loc(*path), "a construct written as a mapping needs `kind:`",
                        "write e.g. `{kind: sliding, window: 4096}` or the call form `sliding(4096)`")
            return None
        return Call(str(name), (), {k: r.value(x, path + (k,), calls=True) for k, x in v.items()})
    c = r.value(v, path, calls=True)
    if c is None:
        return Call("none")
    if c is False:  # YAML's `false` where a construct is optional (`qk_norm: false`)
        return Call("none")
    return None if _is_bad(c) else c


def _is_bad(v: Any) -> bool:
    return type(v).__name__ == "_Bad"


def _unknown(r, loc: Loc | None, name: str, kinds: tuple[str, ...], what: str) -> None:
    for k in kinds:
        if name in ALIASES.get(k, {}):
            msg, fix = ALIASES[k][name]
            r.diags.add(loc, f"{what} {name!r}: {msg}", fix)
            return
    options = [n for k in kinds for n in names(k)]
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.75)
    fix = f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(options)}"
    r.diags.add(loc, f"unknown {what} {name!r}", fix)


def _bind(r, c: Construct, call: Call, path: tuple, loc: Loc | None) -> Use | None:
    ok = True
    if len(call.args) > len(c.args):
        r.diags.add(loc, f"{c.name}() takes at most {len(c.args)} positional arguments "
                    f"({', '.join(a.name for a in c.args)}), got {len(call.args)}", f"write {c.signature()}")
        return None
    given = dict(zip((a.name for a in c.args), call.args, strict=False))
    for k, x in call.kwargs.items():
        if k not in {a.name for a in c.args}:
            close = difflib.get_close_matches(k, [a.name for a in c.args], n=1)
            r.diags.add(loc, f"{c.name}() has no argument {k!r}",
                        f"did you mean {close[0]!r}?" if close else f"write {c.signature()}")
            ok = False
            continue
        if k in given:
            r.diags.add(loc, f"{c.name}() got {k!r} twice (positionally and by name)", f"write {c.signature()}")
            ok = False
        given[k] = x
    out: dict[str, Any] = {}
    for a in c.args:
        if a.name not in given:
            if a.default is REQUIRED:
                r.diags.add(loc, f"{c.name}() needs `{a.name}`" + (f" ({a.doc})" if a.doc else ""),
                            f"write {c.signature()}")
                ok = False
            else:
                out[a.name] = _default(a)
            continue
        val = _arg(r, c, a, given[a.name], path, loc)
        ok = ok and val is not _FAIL
        out[a.name] = val
    if not ok:
        return None
    if c.check:
        problems = c.check(out)
        for _arg_name, msg, fix in problems:
            r.diags.add(loc, f"{c.name}(): {msg}", fix)
        if problems:
            return None
    return Use(c, tuple(out.items()), loc)


_FAIL = object()


def _arg(r, c: Construct, a: Arg, v: Any, path: tuple, loc: Loc | None) -> Any:
    what = f"{c.name}() argument `{a.name}`"
    if a.kind is not None:
        u = read(r, v, path, a.kind, what)
        return _FAIL if u is None else u
    if a.type is str:
        name = v.name if isinstance(v, Call) and not v.args and not v.kwargs else v
        if not isinstance(name, str) or (a.choices and name not in a.choices):
            close = difflib.get_close_matches(str(name), a.choices, n=1) if a.choices else []
            r.diags.add(loc, f"{what} must be one of {', '.join(a.choices)}, got {_show(name)}",
                        f"did you mean {close[0]!r}?" if close else f"write {c.signature()}")
            return _FAIL
        return name
    if isinstance(v, Call):
        r.diags.add(loc, f"{what} must be {_type_name(a.type)}, got {v.name!r}", f"write {c.signature()}")
        return _FAIL
    if a.type is FLOATS:
        return _floats(r, c, a, v, loc)
    val = r.typed(v, path, a.type, what)
    if _is_bad(val):
        return _FAIL
    if a.minimum is not None and isinstance(val, int | float) and not isinstance(val, bool) and (
            val < a.minimum or (a.exclusive and val == a.minimum)):
        r.diags.add(loc, f"{what} must be {'>' if a.exclusive else '≥'} {_show(a.minimum)}, got {_show(val)}",
                    f"write {c.signature()} with {a.name} {'>' if a.exclusive else '≥'} {_show(a.minimum)}")
        return _FAIL
    return val


def _floats(r, c: Construct, a: Arg, v: Any, loc: Loc | None) -> Any:
    """A FLOATS argument: a non-empty list of finite numbers, each above `a.minimum`."""
    what = f"{c.name}() argument `{a.name}`"
    if _is_bad(v) or (isinstance(v, list) and any(_is_bad(x) for x in v)):
        return _FAIL  # reported where it went wrong
    if not isinstance(v, list | tuple) or not v:
        r.diags.add(loc, f"{what} must be a list of numbers, got {_show(v)}", f"write {a.name}=[1.0, 1.05, ...]")
        return _FAIL
    for i, x in enumerate(v):
        bad = isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x)
        low = not bad and a.minimum is not None and (x < a.minimum or (a.exclusive and x == a.minimum))
        if bad or low:
            rule = f"a number {'>' if a.exclusive else '≥'} {_show(a.minimum)}" if a.minimum is not None else "a number"
            shown = f"{x.name}, a name no variable defines" if isinstance(x, Call) else repr(_show(x))
            r.diags.add(loc, f"{what}: entry {i + 1} of {len(v)} must be {rule}, got {shown}",
                        f"write {a.name} as a list of numbers, e.g. {a.name}=[1.0, 1.05, ...]")
            return _FAIL
    return tuple(float(x) for x in v)


def _type_name(t: Any) -> str:
    return "/".join(TYPES.get(x, getattr(x, "__name__", str(x))) for x in (t if isinstance(t, tuple) else (t,)))


def _show(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, tuple) and v and all(isinstance(x, float) for x in v):  # a FLOATS value
        return "[" + ", ".join(str(x) for x in v) + "]"
    return str(v)
