"""`graphspec specs | inspect | flops`: list the bundled specs, print the IR, count params and MACs.

    graphspec specs
    graphspec inspect swin_t --depth 1
    graphspec flops swin_t --check            # exit 1 when a figure differs from `expect:`
    graphspec flops gpt2 --symbolic           # polynomials in B and N

Counting conventions are documented in docs/conventions.md and graphspec/analysis.py.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import sympy
from graphspec.cli.main import UserError, user_errors
from graphspec.cli.passes_opts import apply_passes, pass_options

import graphspec
from graphspec import analysis
from graphspec.analysis import Convention
from graphspec.ir import Graph, fmt_type
from graphspec.ops import numel

CONVENTION_NAMES = tuple(analysis.CONVENTIONS)
PIPELINE = "none"  # inspect and flops show the IR as lowered unless --passes says otherwise

set_option = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                          help="Override a variable or field of the spec (repeatable): --set M=12.")
symbolic_option = click.option("--symbolic", is_flag=True,
                               help="Batch B, sequence N (target T) and image H as sympy symbols.")


# -- helpers ---------------------------------------------------------------------------------
@dataclass
class Built:
    """A loaded spec, its graph after the chosen passes, and the pass options to rebuild."""

    model: graphspec.Model
    graph: Graph
    report: list
    pass_opts: dict


def _build(spec: str, overrides: tuple[str, ...], symbolic: bool, pass_opts: dict) -> Built:
    model = graphspec.load(spec, overrides, symbolic=symbolic)
    graph, report = apply_passes(model.graph, **pass_opts, default=PIPELINE)
    return Built(model, graph, list(report or []), pass_opts)


def _graph_for(built: Built, conv: Convention) -> Graph:
    """The graph that `conv` counts, with the same passes applied (swin-paper re-lowers)."""
    g = analysis.counted_graph(built.model.spec, built.model.graph, conv)
    if g is built.model.graph:
        return built.graph
    quiet = {**built.pass_opts, "print_after": ()}
    return apply_passes(g, **quiet, default=PIPELINE)[0]


def _num(v: Any) -> str:
    """An exact count: `28,288,354`, or a polynomial when symbolic."""
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, sympy.Basic) and v.is_Integer:
        return f"{int(v):,}"
    return str(v)


def _unit(v: Any, scale: float, digits: int) -> str:
    if _symbolic(v):
        return "-"
    return f"{int(v) / scale:.{digits}f}"


def _table(headers: list[str], rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        out = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(out).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _cost_label(conv: Convention) -> str:
    return "FLOPs" if conv.flops else "MACs"


def _convention(name: str) -> Convention:
    try:
        return Convention.named(name)
    except ValueError as e:
        raise UserError(str(e)) from None


def _print_report(report: list) -> None:
    for item in report:
        click.echo(f"# pass: {item}")


def _own(g: Graph, conv: Convention) -> dict[str, dict]:
    """{path: own params and MACs}: a node's MACs count where its parameters live (a conv
    `patch_embed.proj` of module `patch_embed`), else in its module (a tied head in its own)."""
    own: dict[str, dict] = {}
    seen: set[str] = set()
    for n in g:
        pnames = analysis.node_params(g, n)
        owners = {k.rsplit(".", 1)[0] for k in pnames}
        key = n.name if owners == {n.name} else n.module or analysis._owner(n)
        own.setdefault(key, {"params": 0, "macs": 0})["macs"] += analysis.node_cost(g, n, conv)
        for k, shape in pnames.items():
            if k not in seen:
                seen.add(k)
                path = k.rsplit(".", 1)[0] if "." in k else k
                own.setdefault(path, {"params": 0, "macs": 0})["params"] += numel(shape)
    return own


def _module_rows(g: Graph, conv: Convention, depth: int) -> list[list[str]]:
    """The module summary down to `depth`: each row the totals of its subtree (a parent is the
    sum of its children and its own ops), children indented below their parent; rows of
    nothing that are no module (an input, a residual add) are left out."""
    analysis.macs(g, conv)  # refuses a convention the graph was not lowered for
    totals: dict[str, dict] = {}
    parent: dict[str, str | None] = {}
    for key, v in _own(g, conv).items():
        up = None
        for d in range(1, min(depth, key.count(".") + 1) + 1) if depth else [0]:  # no deeper than the key
            row = analysis._cut(key, d)
            if row == up:
                continue
            parent.setdefault(row, up)
            t = totals.setdefault(row, {"params": 0, "macs": 0})
            t["params"] += v["params"]
            t["macs"] += v["macs"]
            up = row
    kids: dict[str | None, list[str]] = {}
    for row, up in parent.items():
        kids.setdefault(up, []).append(row)
    rows: list[list[str]] = []

    def walk(up: str | None, level: int) -> None:
        for path in kids.get(up, []):
            v = {k: analysis._simplify(x) for k, x in totals[path].items()}
            if path in g.modules or v["params"] != 0 or v["macs"] != 0:
                cls = g.modules.get(path)
                rows.append(["  " * level + (path or "(root)"), cls.cls if cls else "", _num(v["params"]),
                             _unit(v["params"], 1e6, 3), _num(v["macs"]), _unit(v["macs"], 1e9, 4)])
            walk(path, level + 1)

    walk(None, 0)
    return rows


# -- graphspec specs -------------------------------------------------------------------------
@click.command("specs")
@user_errors
def specs() -> None:
    """List the bundled specs with their parameters and GMACs."""
    rows = []
    for path in sorted(Path(graphspec.SPECS_DIR).glob("*.yaml")):
        try:
            m = graphspec.load(path)
        except graphspec.SpecError as e:
            rows.append([path.stem, "error", "", "", str(e).splitlines()[0]])
            continue
        p, c = m.params(), m.macs()
        rows.append([path.stem, _num(p), f"{p / 1e6:.1f}", f"{c / 1e9:.3f}", m.spec.paper])
    click.echo(_table(["spec", "params", "Mparams", "GMACs", "paper"], rows, right={1, 2, 3}))
    click.echo(f"\n{len(rows)} specs in {graphspec.SPECS_DIR}. MACs per forward pass at the spec's "
               "input size (batch 1); see docs/conventions.md.")


# -- graphspec inspect -----------------------------------------------------------------------
@click.command("inspect")
@click.argument("spec")
@set_option
@click.option("--format", "fmt", type=click.Choice(["table", "json", "dot"]), default="table",
              show_default=True, help="table: IR with shapes and counts; json: the IR; dot: Graphviz.")
@symbolic_option
@click.option("--depth", type=click.IntRange(min=0), default=2, show_default=True,
              help="Module depth of the summary (1: stages, 2: blocks).")
@click.option("--convention", type=click.Choice([c for c in CONVENTION_NAMES if c != "swin-paper"]),
              default="macs", show_default=True, help="What the MACs column counts.")
@pass_options(default=PIPELINE)
@user_errors
def inspect(spec, overrides, fmt, symbolic, depth, convention, passes, disable_pass, print_after) -> None:
    """Print the IR of SPEC (a path or a bundled name) with shapes, params and MACs per node."""
    built = _build(spec, overrides, symbolic, dict(passes=passes, disable_pass=disable_pass,
                                                   print_after=print_after))
    g, conv = built.graph, _convention(convention)
    if fmt == "json":
        click.echo(g.to_json())
        return
    if fmt == "dot":
        click.echo(g.to_dot())
        return
    _print_report(built.report)
    seen: set[str] = set()
    rows = []
    for n in g:
        pnames = analysis.node_params(g, n)
        fresh = [k for k in pnames if k not in seen]
        seen.update(pnames)
        params = sum((numel(pnames[k]) for k in fresh), 0)
        pcell = _num(params) if fresh else ("shared" if pnames else "")
        cost = analysis.node_cost(g, n, conv)
        rows.append([f"%{n.name}", n.op, fmt_type(n), pcell, _num(cost) if cost else "", n.loc or ""])
    click.echo(_table(["node", "op", "shape", "params", _cost_label(conv), "spec"], rows, right={3, 4}))
    click.echo()
    _summary(g, conv, depth)


def _summary(g: Graph, conv: Convention, depth: int) -> None:
    label = _cost_label(conv)
    rows = _module_rows(g, conv, depth)
    click.echo(_table(["module", "class", "params", "Mparams", label, f"G{label}"], rows, right={2, 3, 4, 5}))
    p, c = analysis.param_count(g), analysis.macs(g, conv)
    munit = "" if _symbolic(p) else f" ({_unit(p, 1e6, 3)}M)"
    gunit = "" if _symbolic(c) else f" ({_unit(c, 1e9, 4)}G)"
    click.echo(f"\ntotal: {_num(p)} params{munit}, {_num(c)} {label}{gunit}, "
               f"{len(g)} nodes")


def _symbolic(v: Any) -> bool:
    return isinstance(v, sympy.Basic) and not v.is_Integer


# -- graphspec flops -------------------------------------------------------------------------
@click.command("flops")
@click.argument("spec")
@set_option
@symbolic_option
@click.option("--check", is_flag=True, help="Compare with the spec's `expect:` block; exit 1 on a mismatch.")
@click.option("--formulas", is_flag=True,
              help="Each attention sub-layer's IR MACs next to the paper's formula (Swin Eq. 1-2, PVT, GQA, "
                   "sliding windows) and the global version of windowed attention; exit 1 if one disagrees.")
@click.option("--convention", type=click.Choice(CONVENTION_NAMES), default="macs", show_default=True,
              help="macs: torchvision/papers; swin: + LayerNorm (official flops()); all: + softmax and "
                   "elementwise; flops: 2×MAC; swin-paper: no class token, no head (Swin Table 1 ViT).")
@click.option("--depth", type=click.IntRange(min=0), default=1, show_default=True,
              help="Module depth of the table (1: stages/blocks, 2: blocks/sub-layers).")
@pass_options(default=PIPELINE)
@user_errors
def flops(spec, overrides, symbolic, check, formulas, convention, depth, passes, disable_pass, print_after) -> None:
    """Per-module parameters and MACs of SPEC, with totals; --check against `expect:`."""
    if check and symbolic:
        raise UserError("--check compares exact integers: drop --symbolic")
    if formulas and check:
        raise UserError("--formulas and --check are two reports: run them one at a time")
    if formulas:  # checks symbolically and at the spec's size: --symbolic is implied
        from graphspec.cli import formulas_cmd

        sys.exit(formulas_cmd.run(spec, overrides, convention, dict(passes=passes, disable_pass=disable_pass,
                                                                    print_after=print_after)))
    built = _build(spec, overrides, symbolic, dict(passes=passes, disable_pass=disable_pass,
                                                   print_after=print_after))
    conv = _convention(convention)
    _print_report(built.report)
    g = _graph_for(built, conv)
    if conv.drop_cls_and_head:
        click.echo("# convention swin-paper: lowered again without class token and head")
    click.echo(f"# {built.model.spec.name}: {convention} convention"
               + (" (symbolic: B batch, N/T sequence, H image)" if symbolic else ""))
    _summary(g, conv, depth)
    if check:
        sys.exit(_check(built, overrides))


def _check(built: Built, overrides: tuple[str, ...]) -> int:
    """Print expected vs got for every figure of `expect:`; 1 if any differs."""
    spec = built.model.spec
    expect = spec.expect
    if not expect:
        raise UserError(f"{spec.name} has no `expect:` block to check against")
    click.echo("\ncheck against `expect:`" + (" (note: --set overrides were applied)" if overrides else ""))
    got: dict[str, Any] = {}
    if "params" in expect:
        got["params"] = analysis.param_count(built.graph)
    if "trainable_params" in expect:  # frozen parameters excluded (DETR's stem and layer1)
        got["trainable_params"] = analysis.param_count(built.graph, trainable=True)
    if "active_params" in expect:  # a mixture of experts: top_k of its experts per token
        got["active_params"] = analysis.active_param_count(built.graph)
    for key, conv_name in (("macs", "macs"), ("macs_norms", "swin"), ("macs_swin_paper", "swin-paper"),
                           ("macs_unmasked", "unmasked")):
        if key in expect:
            conv = Convention.named(conv_name)
            got[key] = analysis.macs(_graph_for(built, conv), conv)
    if "official_flops" in expect:
        swin = analysis.macs(built.graph, Convention.named("swin"))
        quirk = analysis.swin_flops_quirk(spec, built.model.graph)
        if quirk is None:
            raise UserError(f"{spec.name}: `official_flops` is Swin's flops(); this spec has no "
                            "patch-merging stages with a final norm")
        s = next(s for s in spec.stacks if s.downsample == "patch_merging")
        layers, (h0, w0) = len(s.depths), built.model.graph.meta["grid"]
        nf = s.dim * 2 ** (layers - 1)
        click.echo(f"  official_flops = swin convention {swin:,} + final-norm quirk "
                   f"{nf}*({h0}*{w0}//2**{layers} - {h0}*{w0}//4**{layers - 1}) = "
                   f"{nf}*({h0 * w0 // 2**layers} - {h0 * w0 // 4 ** (layers - 1)}) = {quirk:,}")
        got["official_flops"] = swin + quirk
    bad = 0
    for key, value in expect.items():
        if key == "published":
            click.echo(f"  published: {value} (not checked)")
            continue
        ok = got[key] == value
        bad += not ok
        diff = f" ({got[key] - value:+,})" if isinstance(value, int) else ""
        click.echo(f"  {key:<16} expected {_num(value):>18}  got {_num(got[key]):>18}  "
                   + ("ok" if ok else f"MISMATCH{diff}"))
    click.echo("all figures match" if not bad else f"{bad} figure(s) differ")
    return 1 if bad else 0


COMMANDS = [specs, inspect, flops]
