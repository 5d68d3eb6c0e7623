"""Per-stage lists of a hierarchical stack: `dim: [64, 128, 320, 512]`, `mlp_ratio: [8, 8, 4, 4]`
and list-valued arguments of the attention, `spatial_reduction(R=[8, 4, 2, 1])` (PVT Table 1).
Every list has one entry per stage (`depths:` sets the count); any other length is a located
error with the count to give."""

from __future__ import annotations

from typing import Any

from graphspec.spec.expr import Call


def is_list(raw: Any) -> bool:
    return isinstance(raw, list)


def per_stage(r, raw: Any, path: tuple, n: int, kind: type | tuple, what: str, minimum: float = 0) -> tuple:
    """The n per-stage values of the list `raw` at `path`, or () with a diagnostic."""
    val = r.value(raw, path)
    if r.invalid(val):  # an entry's own error is reported already
        return ()
    ok = isinstance(val, list) and len(val) == n and all(
        isinstance(x, kind) and not isinstance(x, bool) and x > minimum for x in val)
    if not ok:
        got = f"{len(val)} entries" if isinstance(val, list) else f"{val!r}"
        r.diags.add(r.raw.loc(*path), f"`{what}` gives one value per stage: {n} stages (`depths`), got {got}",
                    f"give {n} positive values, one per stage, or change `depths`")
        return ()
    return tuple(val)


def stage_calls(r, call: Call, path: tuple, depths: list) -> list[Call] | None:
    """`spatial_reduction(R=[8, 4, 2, 1])` -> one call per stage, or None (a diagnostic) when a
    list argument's length is not the number of stages."""
    n = len(depths)
    lists = {k: a for k, a in [*enumerate(call.args), *call.kwargs.items()] if isinstance(a, list)}
    bad = {k: a for k, a in lists.items() if len(a) != n}
    if bad:
        k, a = next(iter(bad.items()))
        name = k if isinstance(k, str) else f"argument {k + 1}"
        r.diags.add(r.raw.loc(*path), f"{call.name}(): the per-stage list `{name}` has {len(a)} entries for "
                    f"{n} stages (`depths` {list(depths)})", f"give {n} values, one per stage, or change `depths`")
        return None
    pick = lambda a, i: a[i] if isinstance(a, list) else a  # noqa: E731
    return [Call(call.name, tuple(pick(a, i) for a in call.args), {k: pick(a, i) for k, a in call.kwargs.items()})
            for i in range(n)]


def has_lists(call: Any) -> bool:
    return isinstance(call, Call) and any(isinstance(a, list) for a in (*call.args, *call.kwargs.values()))
