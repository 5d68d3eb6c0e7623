"""The forward body of a class: statements from steps, single-use values inlined.

A value read once is written into its reader (`x = x + self.drop_path(self.attn(self.norm1(x)))`);
reshapes, guarded steps, loops and values read twice are statements. Names follow the paper
where the step says who it is (`q`, `k`, `v`, `attn`); the residual stream is `x`, and when `x`
is still needed by a residual add it is kept as `shortcut` first, as timm writes it.

Correctness rests on one rule: a name is rebound only when the value it holds has no reader
left, counting readers already written into an unfinished statement.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from graphspec.codegen.names import Namespace, identifier

MAX_DEPTH = 3  # nested calls in one expression
MAX_LEN = 84  # characters of one expression before its deepest operand becomes a statement (`attn = ` at 8 columns: 100)

ROLES = {"q_heads": "q", "k_heads": "k", "v_heads": "v", "q": "q", "k": "k", "v": "v", "qkv": "qkv",
         "q_proj": "q", "k_proj": "k", "v_proj": "v", "qkv_proj": "qkv",
         "scores": "attn", "scaled": "attn", "biased": "attn", "masked": "attn", "capped": "attn", "probs": "attn",
         "attn_drop": "attn", "weights": "attn", "rel_pos_bias": "bias", "memory": "memory",
         "attention": "x", "context": "x", "positions": "positions"}


@dataclass
class Code:
    """How one step reads in the forward pass."""

    kind: str  # "op" | "call" | "loop"
    refs: list[tuple | None]  # operands: ("in", i) | ("step", j, k) | None (an absent operand)
    fn: Callable[[list[str]], str] | None = None  # operand texts -> expression
    nout: int = 1
    comment: str | None = None
    guard: str | None = None  # forward condition of an optional step
    statement: bool = False  # always a statement of its own (reshapes)
    hint: str = "x"  # name hint for the value
    is_add: bool = False
    stream: bool = False  # shaped as the module's input or output: the residual stream
    uses_ref: bool = False  # reads the first input's size/device
    loop: tuple[str, str] | None = None  # (loop variable, "self.blocks")
    chunk: tuple[tuple, int, int] | None = None  # (input ref, parts, index)
    default: str | None = None  # the value of this optional input when the caller gives none


def _second(c: Code, k: int) -> str:
    """The name hint of output `k` of a call: `x, y = ...` for two (not `x_1, x1` when x is
    taken), `x, x1, ..., x5` for a sequence of layer outputs (DETR's decoder)."""
    return c.hint if k == 0 else "y" if c.nout == 2 else f"{c.hint}{k}"


def depth(text: str) -> int:
    def d(n: ast.AST) -> int:
        inner = max((d(c) for c in ast.iter_child_nodes(n)), default=0)
        return inner + (1 if isinstance(n, ast.Call) else 0)

    return d(ast.parse(text, mode="eval"))


@dataclass
class Body:
    codes: list[Code]
    inputs: list[str]  # names of the inputs
    outputs: list[tuple]
    reserved: set[str]
    lines: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.readers: dict[tuple, list] = {}
        for j, c in enumerate(self.codes):
            for r in c.refs:
                if r is not None:
                    self.readers.setdefault(r, []).append(j)
            if c.uses_ref:
                self.readers.setdefault(("in", 0), []).append(j)
        for r in self.outputs:
            self.readers.setdefault(r, []).append("out")
        self.pending = Counter({v: len(js) for v, js in self.readers.items()})
        self.inflight: Counter = Counter()
        self.done: set[int] = set()
        self.var: dict[tuple, str] = {}
        self.bound: dict[str, tuple] = {}
        self.ns = Namespace(self.reserved)
        for i, name in enumerate(self.inputs):
            self._bind(("in", i), name)
        self.inline = [self._inlinable(j) for j in range(len(self.codes))]

    # -- decisions -----------------------------------------------------------------------------
    def _inlinable(self, j: int) -> bool:
        c = self.codes[j]
        if c.kind == "loop" or c.nout != 1 or c.statement or c.guard or c.chunk:
            return False
        readers = self.readers.get(("step", j, 0), [])
        if len(readers) > 1 and all(r != "out" and self.codes[r].chunk for r in readers):
            return True  # q, k, v = self.qkv(x).chunk(3, dim=-1)
        if len(readers) != 1:
            return False
        r = readers[0]
        if r == "out":
            return True
        rc = self.codes[r]
        role = ROLES.get(c.hint)
        if role and role != ROLES.get(rc.hint):
            return False  # a named quantity of the paper (q, attn) stays a variable
        return not (rc.loop or rc.chunk or (rc.guard and rc.refs and rc.refs[0] == ("step", j, 0)))

    def _free(self, name: str) -> bool:
        if name in self.reserved:
            return False
        v = self.bound.get(name)
        return v is None or (self.pending[v] <= 0 and self.inflight[v] <= 0)

    def _bind(self, v: tuple, name: str) -> None:
        self.ns.reserve(name)
        self.var[v] = name
        self.bound[name] = v

    def _name(self, hint: str, stream: bool = True, reads: list | None = None) -> str:
        """A name for a new value: its role (`q`, `attn`), else `x` for the stream (emitting
        `shortcut = x` when the old stream is still needed), else its own name."""
        role = ROLES.get(hint, hint if hint == "memory" else None)
        if stream and role not in (hint, "memory"):
            role = None  # `scaled` is attention scores in Attention, the stream in an embedding
        if role and self._free(role):
            return role
        x_val = self.bound.get("x")
        wants_x = role is None and (stream or (reads and x_val in reads))
        if wants_x and self._free("x"):
            return "x"
        if wants_x and stream and x_val is not None:
            left = [r for r in self.readers.get(x_val, []) if r != "out" and r not in self.done]
            if self.inflight[x_val] <= 0 and left and all(self.codes[r].is_add for r in left):
                keep = "shortcut" if self._free("shortcut") else self.ns.create("shortcut")
                self.lines.append(f"{self.indent}{keep} = x")
                self._bind(x_val, keep)
                return "x"
        base = identifier(role or hint)
        if self._free(base):
            return base
        k = 1
        while not self._free(f"{base}_{k}"):
            k += 1
        return f"{base}_{k}"

    # -- rendering ------------------------------------------------------------------------------
    indent = ""

    def operand(self, r: tuple | None) -> tuple[str, list, bool]:
        """(text, values read by name, inlined)."""
        if r is None:
            return "None", [], False
        if r in self.var:
            self.inflight[r] += 1
            return self.var[r], [r], False
        j = r[1]
        if not self.inline[j]:
            raise AssertionError(f"step {j} is read before it is written")
        text, used = self.expression(j)
        return text, used, True

    def expression(self, j: int) -> tuple[str, list]:
        c = self.codes[j]
        self.done.add(j)
        parts = [list(self.operand(r)) for r in c.refs]
        if c.uses_ref:
            self.inflight[("in", 0)] += 1
        text = c.fn([p[0] for p in parts])
        while (depth(text) > MAX_DEPTH or len(text) > MAX_LEN) and any(p[2] for p in parts):
            k = max((i for i, p in enumerate(parts) if p[2]), key=lambda i: (depth(parts[i][0]), len(parts[i][0])))
            name = self.statement(c.refs[k], parts[k][0], parts[k][1])
            self.inflight[c.refs[k]] += 1
            parts[k] = [name, [c.refs[k]], False]
            text = c.fn([p[0] for p in parts])
        used = [v for p in parts for v in p[1]] + ([("in", 0)] if c.uses_ref else [])
        return text, used

    def _release(self, used: list) -> None:
        for v in used:
            self.inflight[v] -= 1
            self.pending[v] -= 1

    def statement(self, v: tuple, text: str, used: list, comment: str | None = None) -> str:
        self._release(used)
        c = self.codes[v[1]]
        name = self._name(c.hint, c.stream, used)
        self.lines.append(f"{self.indent}{name} = {text}" + (f"  # {comment}" if comment else ""))
        self._bind(v, name)
        return name

    def _as_var(self, r: tuple) -> str:
        """The operand as a variable (a statement if it was going to be inlined)."""
        if r in self.var:
            return self.var[r]
        text, used = self.expression(r[1])
        return self.statement(r, text, used)

    def _own(self, r: tuple, j: int) -> str:
        """A variable holding operand `r` that step `j` may overwrite in place."""
        name = self._as_var(r)
        others = [x for x in self.readers.get(r, []) if x != j and x not in self.done]
        if others or self.inflight[r] > 0:
            copy = self._name("shortcut", False)  # the input stays for another reader
            self.lines.append(f"{self.indent}{copy} = {name}")
            return copy
        return name

    def run(self) -> list[str]:
        for j, c in enumerate(self.codes):
            if self.inline[j] or j in self.done:
                continue
            if c.kind == "op" and not any(self.readers.get(("step", j, k)) for k in range(c.nout)):
                self._skip(j)  # a value nothing reads (the IR's dead code): not computed
                continue
            if c.loop:
                self._loop(j, c)
            elif c.guard:
                self._guarded(j, c)
            elif c.chunk:
                self._chunks(j, c)
            elif c.default:
                text, used = self.expression(j)
                self._release(used)
                self.lines += [f"if {c.default} is None:", f"    {c.default} = {text}"]
                self._bind(("step", j, 0), c.default)
            elif c.nout == 1:
                text, used = self.expression(j)
                self.statement(("step", j, 0), text, used, c.comment)
            else:
                text, used = self.expression(j)
                self._release(used)
                names = [self._name(_second(c, k), k == 0) for k in range(c.nout)]
                for k, n in enumerate(names):
                    self._bind(("step", j, k), n)
                self.lines.append(f"{', '.join(names)} = {text}")
        outs = [self.operand(r) for r in self.outputs]
        self.lines.append("return " + ", ".join(p[0] for p in outs))
        return self.lines

    def _skip(self, j: int) -> None:
        """Drop a dead step, releasing what it would have read (recursively for inlined operands)."""
        self.done.add(j)
        for r in self.codes[j].refs:
            if r is None:
                continue
            if r in self.var:
                self.pending[r] -= 1
            elif r[0] == "step" and self.inline[r[1]] and r[1] not in self.done:
                self._skip(r[1])

    def _guarded(self, j: int, c: Code) -> None:
        """`if guard: x = f(x)`: absent, the operand flows on under the same name."""
        self.done.add(j)
        name = self._own(c.refs[0], j)
        self.pending[c.refs[0]] -= 1
        rest = [self.operand(r) for r in c.refs[1:]]
        text = c.fn([name] + [p[0] for p in rest])
        self._release([v for p in rest for v in p[1]])
        self.lines.append(f"if {c.guard}:")
        self.lines.append(f"    {name} = {text}" + (f"  # {c.comment}" if c.comment else ""))
        self._bind(("step", j, 0), name)

    def _tap(self, r: tuple, j: int, start: str) -> str:
        """The stream variable a slice of blocks `[start:...]` runs on; when the value entering
        it is read again (SETR's taps), it is kept first as `x6`: the output of 6 blocks."""
        name = self._as_var(r)
        others = [x for x in self.readers.get(r, []) if x != j and x not in self.done]
        if not others and self.inflight[r] <= 0:
            return name
        keep = f"{name}{start}" if self._free(f"{name}{start}") else self.ns.create(f"{name}{start}")
        self.lines.append(f"{self.indent}{keep} = {name}")
        self._bind(r, keep)
        return name

    def _loop(self, j: int, c: Code) -> None:
        self.done.add(j)
        extra = [self._as_var(r) for r in c.refs[1:]]
        start = re.search(r"\[(\d*):", c.loop[1])
        name = self._tap(c.refs[0], j, start.group(1) or "0") if start else self._own(c.refs[0], j)
        for r in c.refs:
            self.pending[r] -= 1
        lv, attr = c.loop
        self.lines.append(f"for {lv} in {attr}:")
        self.lines.append(f"    {name} = {lv}({', '.join([name] + extra)})")
        self._bind(("step", j, 0), name)

    def _chunks(self, j: int, c: Code) -> None:
        """`q, k, v = qkv.chunk(3, dim=-1)` (or `.split([64, 16, 16], dim=-1)`) for the parts of
        one fused projection."""
        src, parts, _ = c.chunk  # parts: a count (chunk) or the widths (split: GQA's q|k|v)
        n = len(parts) if isinstance(parts, tuple) else parts
        group = sorted((cc.chunk[2], k) for k, cc in enumerate(self.codes) if cc.chunk and cc.chunk[0] == src)
        if [i for i, _ in group] != list(range(n)):
            raise AssertionError(f"chunks {group} do not cover {parts} parts")
        text, used, _ = self.operand(src)
        self._release(used)
        self.pending[src] -= len(group) - 1
        names = []
        for _, k in group:
            self.done.add(k)
            names.append(self._name(self.codes[k].hint, False))
            self._bind(("step", k, 0), names[-1])
        call = f"split({list(parts)}, dim=-1)" if isinstance(parts, tuple) else f"chunk({parts}, dim=-1)"
        self.lines.append(f"{', '.join(names)} = {text}.{call}")
