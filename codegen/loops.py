"""Constructor arguments of the modules of an `nn.ModuleList`, as expressions of the index `i`.

Per list, a child argument is constant (`dim`), alternates (`0 if i % 2 == 0 else window_size // 2`,
Swin's W-MSA / SW-MSA), or is read from a tuple argument of the parent (`drop_paths[i]`). The
root, which has one instance, also recognises series: `96 * 2**i` (widths doubling per stage),
`0.1 * i / 11` (stochastic depth increasing linearly, Huang et al. 2016), `i < 3` (patch
merging after all but the last stage) and `i >= 3` (DeepSeek-V3's MoE after three dense layers); a tuple of per-stage rates whose concatenation is linear
becomes timm's `dpr` list, sliced by the stage depths.
"""

from __future__ import annotations

import re
from typing import Any

from graphspec.codegen.exprs import DONT_CARE, _eq, _is_int, literal, paren


def plural(name: str) -> str:
    return name if name.endswith("s") else name + "s"


def _known(values: list) -> list:
    return [v for v in values if v is not DONT_CARE]


def series(values: list) -> str | None:
    """An expression of `i` for a list the root builds (None when there is no simple rule)."""
    n = len(values)
    if n < 2 or any(v is DONT_CARE for v in values):
        return None
    a = values[0]
    if all(isinstance(v, bool) for v in values):  # a step: the first k one way, the rest the other
        k = next((i for i, v in enumerate(values) if v != a), n)
        if k < n and all(v != a for v in values[k:]):
            return f"i < {k}" if a else f"i >= {k}"  # patch merging but in the last stage; DeepSeek's dense layers
        return None
    if all(_is_int(v) for v in values):
        d = values[1] - a
        if d and all(v == a + d * i for i, v in enumerate(values)):
            return f"{a} + {d} * i" if a else f"{d} * i"
        if a and all(v == a * 2**i for i, v in enumerate(values)):
            return f"{a} * 2**i"
        if a and all(v * 2**i == a for i, v in enumerate(values)):
            return f"{a} // 2**i"
        return None
    if all(isinstance(v, float) for v in values):
        last = values[-1]
        if last and all(abs(v - last * i / (n - 1)) <= 1e-6 for i, v in enumerate(values)):
            return f"{literal(last)} * i / {n - 1}"
        return None
    if all(isinstance(v, tuple) for v in values) and len({len(v) for v in values}) == 1:
        parts = [series([v[k] for v in values]) for k in range(len(a))]
        if all(parts) and len(a) > 1:
            return "(" + ", ".join(parts) + ")"
    return None


def _one_in_period(lists: list[list]) -> tuple[int, int] | None:
    """(k, r) when every list repeats with period k ≥ 3 (at least twice) and, in each period, holds
    one value at position r and another everywhere else (Gemma-3's global layer among five local)."""
    n = min(len(lst) for lst in lists)
    for k in range(3, n // 2 + 1):
        found = set()
        for lst in lists:
            if not all(x is DONT_CARE or lst[i % k] is DONT_CARE or _eq(x, lst[i % k]) for i, x in enumerate(lst)):
                break
            head = lst[:k]
            if any(x is DONT_CARE for x in head):
                break
            rs = [r for r in range(k) if sum(_eq(head[r], x) for x in head) == 1]
            if len(rs) != 1 or not all(_eq(x, head[(rs[0] + 1) % k]) for j, x in enumerate(head) if j != rs[0]):
                break
            found.add(rs[0])
        else:
            if len(found) == 1:
                return k, found.pop()
    return None


def _period(lists: list[list]) -> int | None:
    """The least period k ≥ 3 with which every list repeats (at least twice), its first k known."""
    n = min(len(lst) for lst in lists)
    for k in range(3, n // 2 + 1):
        if all(not any(x is DONT_CARE for x in lst[:k]) and all(
                x is DONT_CARE or _eq(x, lst[i % k]) for i, x in enumerate(lst)) for lst in lists):
            return k
    return None


class Loops:
    """Writes the constructor arguments of list elements for a ClassEmitter."""

    def args(self, ce: Any, kid: Any, kids: dict[str, tuple[str, ...]]) -> str:
        pieces, positional, done = [], True, {}
        for kp in kid.params:
            v = {q: [kp.values.get(c, DONT_CARE) for c in cs] for q, cs in kids.items()}
            e = self.expr(ce, v, kp.name, done)
            done[kp.name] = (e, v)
            positional = positional and e == kp.name
            pieces.append(e if positional else f"{kp.name}={e}")
        return ", ".join(pieces)

    def expr(self, ce: Any, v: dict[str, list], hint: str, done: dict) -> str:
        P = ce.P
        lists = list(v.values())
        if all(all(_eq(x, _known(lst)[0]) for x in _known(lst)) for lst in lists if _known(lst)):
            return P.expr({q: (_known(lst)[0] if _known(lst) else DONT_CARE) for q, lst in v.items()}, hint)
        if all(len(lst) >= 2 and all(x is DONT_CARE or _eq(x, lst[1]) for x in lst[1:]) for lst in lists):
            # the first element differs (ResNet: stride 2 and a projection shortcut in block 0)
            a = P.expr({q: lst[0] for q, lst in v.items()}, hint)
            b = P.expr({q: lst[1] for q, lst in v.items()}, hint)
            if a == b:
                return a
            if (a, b) == ("True", "False"):
                return "i == 0"
            if (a, b) == ("False", "True"):  # all but the first (DeepSeek's MoE after first_k_dense_replace=1)
                return "i >= 1"
            return f"{paren(a, 1)} if i == 0 else {paren(b, 1)}"
        if all(len(lst) >= 2 and all(x is DONT_CARE or _eq(x, lst[i % 2]) for i, x in enumerate(lst)) for lst in lists):
            a = P.expr({q: lst[0] for q, lst in v.items()}, hint)
            b = P.expr({q: lst[1] for q, lst in v.items()}, hint)
            if (a, b) in (("True", "False"), ("False", "True")):  # Gemma-2's alternating causal layers
                return f"i % 2 == {0 if a == 'True' else 1}"
            return f"{paren(a, 1)} if i % 2 == 0 else {paren(b, 1)}"
        odd = _one_in_period(lists)
        if odd is not None:  # Gemma-3: every 6th layer global, `causal=i % 6 == 5`
            k, r = odd
            a = P.expr({q: lst[(r + 1) % k] for q, lst in v.items()}, hint)
            b = P.expr({q: lst[r] for q, lst in v.items()}, hint)
            if (a, b) in (("True", "False"), ("False", "True")):
                return f"i % {k} {'==' if b == 'True' else '!='} {r}"
            return f"{paren(b, 1)} if i % {k} == {r} else {paren(a, 1)}"
        k = _period(lists)
        if k is not None and all(_eq(lst[r], lists[0][r]) for lst in lists for r in range(k)):
            # a repeating pattern of layer kinds, the same in every instance: ("mlp", "moe", "moe")[i % 3]
            items = [literal(lists[0][r]) for r in range(k)]
            return f"({', '.join(items)})[i % {k}]"
        if ce.root:
            (lst,) = lists
            s = series(lst)
            if s is not None:
                return s
            s = self._decay(ce, lst, done)
            if s is not None:
                return s
            # an absent child (no downsample before the first stage) takes None
            p = P.add(plural(hint), {"": tuple(None if x is DONT_CARE else x for x in lst)})
            p.used = True
            return f"{p.name}[i]"
        e = P.expr({q: tuple(lst) for q, lst in v.items()}, plural(hint))
        return f"{paren(e, 9)}[i]"

    @staticmethod
    def _decay(ce: Any, lst: list, done: dict) -> str | None:
        """Per-stage tuples of rates whose concatenation rises linearly: timm's `dpr`."""
        if not all(isinstance(t, tuple) and t and all(isinstance(x, float) for x in t) for t in lst):
            return None
        flat = [x for t in lst for x in t]
        n = len(flat)
        if n < 2 or not flat[-1] or not all(abs(x - flat[-1] * k / (n - 1)) <= 1e-6 for k, x in enumerate(flat)):
            return None
        lengths = [len(t) for t in lst]
        for e, v in done.values():
            m = re.fullmatch(r"(\w+)\[i\]", e)
            if m and list(v[""]) == lengths:
                ce.pre.append(f"dpr = [{literal(flat[-1])} * k / {n - 1} for k in range({n})]"
                              "  # stochastic depth, increasing linearly")
                return f"dpr[sum({m[1]}[:i]):sum({m[1]}[:i + 1])]"
        return None
