"""The pass manager: a named registry of passes, pipelines written as text, and a per-pass report.

    graph, report = run_pipeline(graph, "fuse_attention,partition_windows(M=7, shift=true),dce")
    print(report)

A pipeline is a comma-separated list of pass names, each with optional keyword arguments
(`partition_windows(M=7)`), or a named pipeline (`default`, `none`). After each pass the
manager runs the verifier, with the pass's declarations about parameters, and on failure
raises `VerifyError` with the graph printed. The report gives, per pass: nodes before/after,
sites matched and rewritten, declines with their reasons, MACs and parameters before/after,
and the time taken.
"""

from __future__ import annotations

import difflib
import inspect
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphspec import analysis
from graphspec.ir import Graph
from graphspec.passes.base import PassError, PassResult
from graphspec.verify import VerifyError, verify


class PipelineError(ValueError):
    """A pipeline names an unknown pass or passes bad arguments (a user error)."""


@dataclass(frozen=True)
class PassDef:
    name: str
    fn: Callable[..., Any]
    doc: str


PASSES: dict[str, PassDef] = {}

PIPELINES: dict[str, tuple[str, ...]] = {
    "none": (),
    "default": ("fuse_attention", "fuse_qkv", "cse", "dce"),
    "all": ("fold_constants", "fuse_attention", "fuse_qkv", "cse", "dce"),
}


def register(name: str) -> Callable:
    """Register a pass function `fn(graph, **args) -> PassResult | Graph`; refuses duplicates."""

    def deco(fn: Callable) -> Callable:
        if name in PASSES:
            raise ValueError(f"pass {name!r} is registered twice")
        PASSES[name] = PassDef(name, fn, (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else "")
        return fn

    return deco


# -- pipelines as text --------------------------------------------------------------------------
_ITEM = re.compile(r"^\s*(?P<name>[A-Za-z_]\w*)\s*(?:\((?P<args>.*)\))?\s*$", re.S)


def _split(text: str, sep: str = ",") -> list[str]:
    out, depth, cur = [], 0, ""
    for c in text:
        depth += (c in "([") - (c in ")]")
        if c == sep and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += c
    out.append(cur)
    return [s for s in (x.strip() for x in out) if s]


def _value(text: str) -> Any:
    t = text.strip()
    if t.lower() in ("true", "false"):
        return t.lower() == "true"
    for cast in (int, float):
        try:
            return cast(t)
        except ValueError:
            pass
    return t.strip("'\"")


def parse_pipeline(spec: str | Sequence) -> list[tuple[str, dict[str, Any]]]:
    """`"fuse_attention, partition_windows(M=7)"` -> [("fuse_attention", {}), ("partition_windows", {"M": 7})].
    Items may also be given as a list of such strings or (name, kwargs) pairs."""
    items = _split(spec) if isinstance(spec, str) else list(spec)
    out: list[tuple[str, dict[str, Any]]] = []
    for item in items:
        if isinstance(item, tuple):
            out.append((item[0], dict(item[1])))
            continue
        m = _ITEM.match(item)
        if not m:
            raise PipelineError(f"cannot read pass {item!r}; write name or name(key=value, ...)")
        name, args = m["name"], {}
        for a in _split(m["args"] or ""):
            k, eq, v = a.partition("=")
            if not eq:
                raise PipelineError(f"argument {a!r} of {name} is not key=value")
            if k.strip() in args:
                raise PipelineError(f"{name} is given {k.strip()} twice ({item!r}); give it once")
            args[k.strip()] = _value(v)
        if name in PIPELINES and not args:
            out.extend((p, {}) for p in PIPELINES[name])
        else:
            out.append((name, args))
    for name, args in out:
        _check(name, args)
    return out


def _check(name: str, args: dict[str, Any]) -> None:
    if name not in PASSES:
        close = difflib.get_close_matches(name, [*PASSES, *PIPELINES], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise PipelineError(f"unknown pass {name!r}{hint} Known: {', '.join(sorted(PASSES))}; "
                            f"pipelines: {', '.join(PIPELINES)}")
    sig = inspect.signature(PASSES[name].fn)
    try:
        sig.bind(None, **args)
    except TypeError as e:
        params = [str(p) for p in list(sig.parameters.values())[1:]]
        raise PipelineError(f"{name}: {e}; it takes ({', '.join(params) or 'no arguments'})") from None


def label(name: str, args: dict[str, Any]) -> str:
    return name + (f"({', '.join(f'{k}={v}' for k, v in args.items())})" if args else "")


# -- running ------------------------------------------------------------------------------------
@dataclass
class PassReport:
    name: str
    nodes_before: int
    nodes_after: int
    matched: int
    applied: int
    declined: list[tuple[str, str]]
    macs_before: Any
    macs_after: Any
    params_before: Any
    params_after: Any
    seconds: float
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    renames: dict[str, tuple[str, ...]] = field(default_factory=dict)  # declared by the pass
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        line = (f"{self.name}: {self.nodes_before} -> {self.nodes_after} nodes, {self.matched} matched, "
                f"{self.applied} rewritten, {len(self.declined)} declined, MACs {_n(self.macs_before)} -> "
                f"{_n(self.macs_after)}, params {_n(self.params_before)} -> {_n(self.params_after)}, "
                f"{1000 * self.seconds:.1f} ms")
        reasons = Counter(why for _, why in self.declined)
        return "\n".join([line, *(f"  declined {k}×: {why}" for why, k in reasons.items())])


class Report(list):
    """The per-pass reports of one pipeline run; `str()` is a table plus the decline reasons."""

    def __str__(self) -> str:
        rows = [("pass", "nodes", "matched", "rewritten", "declined", "MACs before -> after", "params Δ", "ms")]
        for r in self:
            dp = r.params_after - r.params_before
            rows.append((r.name, f"{r.nodes_before} -> {r.nodes_after}", str(r.matched), str(r.applied),
                         str(len(r.declined)), f"{_n(r.macs_before)} -> {_n(r.macs_after)}",
                         f"{dp:+,}" if isinstance(dp, int) else str(dp), f"{1000 * r.seconds:.1f}"))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
        for r in self:
            for reason, count in Counter(why for _, why in r.declined).items():
                first = next(n for n, why in r.declined if why == reason)
                lines.append(f"{r.name}: declined {count}× (e.g. %{first}): {reason}")
            lines += [f"{r.name}: {note}" for note in dict.fromkeys(r.notes)]
            lines += [f"{r.name}: warning: {w}" for w in r.warnings[:5]]
        return "\n".join(lines)


def _n(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) else str(v)


def run_pipeline(graph: Graph, passes: str | Sequence = "default", disable: Iterable[str] = (),
                 print_after: Iterable[str] = (), *, check: bool = True,
                 echo: Callable[[str], Any] = print) -> tuple[Graph, Report]:
    """Run `passes` on `graph` (never modified); returns (new graph, report).

    `disable` drops passes by name; `print_after` prints the IR after the named passes (`all`
    for every one). With `check` (the default) the verifier runs after each pass."""
    steps = parse_pipeline(passes)
    disable, print_after = set(disable), set(print_after)
    for name in sorted(disable | (print_after - {"all"})):
        if name not in PASSES:
            _check(name, {})  # raises, with a suggestion
    report = Report()
    for name, args in steps:
        if name in disable:
            continue
        tag = label(name, args)
        macs0, params0, n0 = analysis.macs(graph), analysis.param_count(graph), len(graph)
        t0 = time.perf_counter()
        res = PASSES[name].fn(graph, **args)
        seconds = time.perf_counter() - t0
        res = res if isinstance(res, PassResult) else PassResult(res)
        warnings = []
        if check:
            try:
                warnings = verify(res.graph, before=graph, renames=res.renames, added=res.added,
                                  removed=res.removed)
            except VerifyError as e:
                raise VerifyError(f"after pass {tag}: {e.message}", e.node, res.graph) from e
        graph = res.graph
        report.append(PassReport(tag, n0, len(graph), res.matched, res.applied, res.declined, macs0,
                                 analysis.macs(graph), params0, analysis.param_count(graph), seconds,
                                 res.notes, warnings, dict(res.renames), list(res.added),
                                 list(res.removed)))
        if "all" in print_after or name in print_after:
            echo(f"// IR after {tag}:\n{graph}")
    return graph, report


__all__ = ["PASSES", "PIPELINES", "PassError", "PipelineError", "Report", "parse_pipeline", "register",
           "run_pipeline"]
