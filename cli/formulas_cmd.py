"""`graphspec flops SPEC --formulas`: each attention sub-layer's MACs from the IR next to the
paper's formula (graphspec/formulas.py), its citation and the verdict; and, where the model has
windowed (or sliding-window) attention, what its global version costs (Swin §3.2's argument in
this model's numbers). Exit 1 when the IR and a formula disagree.

    graphspec flops swin_t --formulas
    graphspec flops mistral_7b --formulas --convention unmasked --set seq_len=8192
"""

from __future__ import annotations

import click
import sympy
from graphspec.cli.main import UserError

import graphspec
from graphspec import analysis, formulas
from graphspec.analysis import Convention
from graphspec.lower import SYMBOLS

CONVENTIONS = ("macs", "unmasked", "flops")  # what the formulas count


def _num(v) -> str:
    if isinstance(v, int) or (isinstance(v, sympy.Basic) and v.is_Integer):
        return f"{int(v):,}"
    return str(v)


class Variant:
    """One lowering of the spec (numeric at its sizes, or symbolic in B and H/N/T) after the passes."""

    def __init__(self, spec: str, overrides: tuple, symbolic: bool, pass_opts: dict, conv: Convention):
        from graphspec.cli.passes_opts import apply_passes

        self.model = graphspec.load(spec, overrides, symbolic=symbolic)
        quiet = {**pass_opts, "print_after": ()}
        self.graph = apply_passes(self.model.graph, **quiet, default="none")[0]
        self.batch = SYMBOLS["B"] if symbolic else self.model.spec.input.batch
        self.rows = formulas.check(self.graph, self.batch, conv)
        self.total = analysis.macs(self.graph, conv)


def _variants(spec, overrides, pass_opts, conv) -> tuple[Variant, Variant | None, str]:
    num = Variant(spec, overrides, False, pass_opts, conv)
    if not num.rows:  # no attention: nothing to lower symbolically
        return num, None, ""
    try:
        sym = Variant(spec, overrides, True, pass_opts, conv)
    except (graphspec.SpecError, ValueError, TypeError) as e:  # a construct with no symbolic form
        return num, None, f"# symbolic lowering failed ({str(e).splitlines()[0]}): integers only"
    if [(r.group, r.formula and r.formula.name, len(r.sites)) for r in sym.rows] != \
            [(r.group, r.formula and r.formula.name, len(r.sites)) for r in num.rows]:
        return num, None, "# the symbolic lowering groups its attention differently: integers only"
    return num, sym, ""


def _with(row: formulas.Row) -> str:
    """The formula's symbols bound for this row: `h = H/4, w = H/4, C = 96, M = 7`."""
    s = row.sites[0]
    b = s.bindings()
    names = {formulas.hd: "h·d", formulas.gd: "kv·d"}
    parts = [f"{names.get(x, x)} = {b[x]}" for x in row.formula.uses]
    if b[formulas.w] == 1:  # tokens, not a map: hw is N
        n = f"hw = N = {b[formulas.h]} (the {s.grid[0]}×{s.grid[1]} map + a class token)" if s.grid else f"N = {b[formulas.h]}"
        parts = [n] + [p for p in parts if not p.startswith(("h =", "w ="))]
    return ", ".join(parts)


def _verdict(row: formulas.Row) -> str:
    if row.formula is None:
        return "NO FORMULA (add a row to graphspec/formulas.FORMULAS)"
    bad = [d for d in row.diffs if d != 0]
    return "identity" if not bad else f"DIFFERS: IR − formula = {bad[0]} ({len(bad)} of {len(row.diffs)} sub-layers)"


def _print_rows(num: Variant, sym: Variant | None, conv: Convention) -> list[str]:
    """One block per group; returns the failures."""
    failures = []
    label = "FLOPs" if conv.flops else "MACs"
    for i, row in enumerate(num.rows):
        srow = sym.rows[i] if sym else None
        paths = [s.path for s in row.sites]
        shown = ", ".join(paths[:3]) + (f", … ({len(paths)} in all)" if len(paths) > 3 else "")
        click.echo(f"\n{row.group or '(model)'}: {len(paths)} attention sub-layer(s): {shown}")
        f = row.formula
        if f is not None:
            click.echo(f"  paper    {f.name} = {f.text}")
            click.echo(f"  source   {f.citation}")
            masked = any(s.causal or s.sliding or s.local for s in row.sites)
            for note in (f.note, f.masked_note if masked else ""):
                if note:
                    click.echo(f"  note     {note}")
            for r, v in ((srow, sym), (row, num)):
                if r is not None:
                    click.echo(f"  with     {_with(r)}  (per sample; × batch {v.batch})")
        if srow is not None:
            click.echo(f"  IR       {srow.sites[0].macs} {label} per sub-layer (symbolic)")
        click.echo(f"  IR       {_num(row.sites[0].macs)} {label} per sub-layer, {_num(row.macs)} for the "
                   f"{len(paths)}, at the spec's size")
        for r, what in ((srow, "symbolic"), (row, "integers")):
            if r is None:
                continue
            v = _verdict(r)
            click.echo(f"  verdict  {v} ({what})")
            if v != "identity" and r.formula is not None:
                failures.append(f"{r.group or '(model)'} {r.formula.name} ({what}): {v}")
    return failures


def _print_global(spec, overrides, pass_opts, conv, num: Variant, sym: Variant | None) -> list[str]:
    """The model with global attention (Swin §3.2): per group and in total, global − windowed."""
    extra = formulas.global_overrides(num.model.spec)
    if not extra:
        return []
    overrides = (*overrides, *extra)
    gnum, gsym, note = _variants(spec, overrides, pass_opts, conv)
    label = "FLOPs" if conv.flops else "MACs"
    what = "global" if any("global" in e for e in extra) else "full causal (no window)"
    click.echo(f"\n# {what} version (--set {' --set '.join(extra)}): Swin §3.2's argument for this model")
    if note:
        click.echo(note)
    failures = []
    for r, what in [(r, "integers") for r in gnum.rows] + [(r, "symbolic") for r in (gsym.rows if gsym else [])]:
        v = _verdict(r)
        if v != "identity" and r.formula is not None:
            failures.append(f"global {r.group or '(model)'} {r.formula.name} ({what}): {v}")
    rows = [["group", "attention", f"windowed {label}", f"global {label}", "global − windowed", "formula", "verdict"]]
    for a, b in zip(_by_group(num.rows), _by_group(gnum.rows), strict=False):
        names = f"{'+'.join(a[1])} -> {'+'.join(b[1])}"
        diff = b[2] - a[2]
        by_formula = b[3] - a[3]
        rows.append([a[0] or "(model)", names, _num(a[2]), _num(b[2]), _num(diff), _num(by_formula),
                     "identity" if formulas._zero(diff - by_formula) else "DIFFERS"])
    for r in rows[1:]:
        if r[-1] != "identity":
            failures.append(f"global − windowed of {r[0]}: IR {r[4]}, formulas {r[5]}")
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for j, r in enumerate(rows):
        click.echo("  ".join(c.rjust(wd) if 2 <= i <= 5 else c.ljust(wd) for i, (c, wd) in enumerate(zip(r, widths, strict=True))).rstrip())
        if j == 0:
            click.echo("  ".join("-" * wd for wd in widths))
    click.echo(f"model total: windowed {_num(num.total)} {label}, global {_num(gnum.total)}, "
               f"global − windowed {_num(gnum.total - num.total)} {label} (at the spec's size)")
    if sym is not None and gsym is not None:
        click.echo(f"model total, symbolic: global − windowed = {sympy.factor(gsym.total - sym.total)}")
    return failures


def _by_group(rows):
    """[(group, formula names, IR MACs, formula MACs)] with the rows of a group summed."""
    out: dict[str, list] = {}
    for r in rows:
        g = out.setdefault(r.group, [r.group, [], 0, 0])
        g[1].append(r.formula.name if r.formula else "?")
        g[2] += r.macs
        g[3] += sum((s.macs - d for s, d in zip(r.sites, r.diffs, strict=True) if d is not None), 0)
    return [(g[0], list(dict.fromkeys(g[1])), analysis._simplify(g[2]), analysis._simplify(g[3])) for g in out.values()]


def run(spec: str, overrides: tuple, convention: str, pass_opts: dict) -> int:
    """Print the report; 1 when any formula disagrees with the IR, else 0."""
    if convention not in CONVENTIONS:
        raise UserError(f"--formulas compares the papers' MACs: use --convention {', '.join(CONVENTIONS)} "
                        f"(not {convention})")
    conv = Convention.named(convention)
    num, sym, note = _variants(spec, overrides, pass_opts, conv)
    name = num.model.spec.name
    click.echo(f"# {name}: attention sub-layers against the papers' formulas ({convention} convention; "
               "IR MACs from graphspec/analysis.py, formulas from graphspec/formulas.py)")
    if note:
        click.echo(note)
    if not num.rows:
        click.echo("no attention sub-layers in this model")
        return 0
    failures = _print_rows(num, sym, conv)
    failures += _print_global(spec, overrides, pass_opts, conv, num, sym)
    missing = sum(r.formula is None for r in num.rows)
    if failures:
        click.echo(f"error: {name}: {len(failures)} formula check(s) disagree with the IR:", err=True)
        for f in failures:
            click.echo(f"  {f}", err=True)
        return 1
    click.echo(f"\nall formula checks are identities ({len(num.rows) - missing} attention kind(s)"
               + (", and the global version" if formulas.global_overrides(num.model.spec) else "") + ")"
               + (f"; {missing} attention kind(s) have no formula" if missing else ""))
    return 0
