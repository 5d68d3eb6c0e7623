"""`graphspec plot macs | breakdown | graph`: PNG or SVG pictures of specs (graphspec/plot.py).

    graphspec plot macs vit_b16 swin_t --sizes 224:1024:32 -o macs.svg   # quadratic vs linear in tokens
    graphspec plot macs gpt2 llama2_7b --sizes 128:4096:128 -o llm.png     # sizes are sequence lengths
    graphspec plot breakdown swin_t --by stage -o swin.svg
    graphspec plot graph vit_b16 --set L=2 -o ir.svg                        # needs Graphviz `dot`

Files are published atomically (graphspec/io.py); matplotlib (`pip install 'graphspec[plot]'`)
and, for `graph`, Graphviz's `dot` are needed: without them, one message and exit 2.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import click
from graphspec.cli.main import OutputPath, UserError, user_errors
from graphspec.cli.passes_opts import apply_passes, pass_options

import graphspec
from graphspec import plot
from graphspec.analysis import Convention
from graphspec.io import atomic_write

set_option = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                          help="Override a variable or field of every spec (repeatable).")
out_option = click.option("-o", "--output", "output", required=True, type=OutputPath(dir_okay=False),
                          help="The picture: .png or .svg.")
CONVENTIONS = ("macs", "flops", "unmasked", "swin", "all")
conv_option = click.option("--convention", type=click.Choice(CONVENTIONS), default="macs", show_default=True,
                           help="What the MACs count (docs/conventions.md).")


def _format(output: str, allowed=("png", "svg")) -> str:
    fmt = Path(output).suffix.lower().lstrip(".")
    if fmt not in allowed:
        raise UserError(f"cannot tell the picture format of {output!r}: end it in {' or '.join('.' + a for a in allowed)}")
    return fmt


def _draw(fn, *args):
    try:
        return fn(*args)
    except ImportError as e:
        if getattr(e, "name", "") and not str(e.name).startswith("matplotlib"):
            raise
        raise UserError("graphspec plot draws with matplotlib, which is not installed: "
                        "pip install 'graphspec[plot]' (or pip install matplotlib)") from None


def _publish(output: str, data: bytes) -> None:
    atomic_write(output, data)
    click.echo(f"wrote {output} ({len(data):,} bytes)")


@click.group("plot")
def plot_group() -> None:
    """Pictures: MACs versus input size, parameters and MACs per stage or op, the IR as a graph."""


@plot_group.command("macs")
@click.argument("specs", nargs=-1, required=True)
@click.option("--sizes", default="224:1024:32", show_default=True, metavar="START:STOP[:STEP]|A,B,...",
              help="Input sizes: the image side H (W = H) for images, the sequence length N for tokens.")
@click.option("--log", is_flag=True, help="Log-log axes: a line's slope is its degree in the size.")
@set_option
@conv_option
@out_option
@user_errors
def macs(specs, sizes, log, overrides, convention, output) -> None:
    """MACs versus input size of one or more SPECS, from their symbolic polynomials."""
    fmt = _format(output)
    try:
        grid = plot.parse_sizes(sizes)
    except ValueError as e:
        raise UserError(f"--sizes: {e}") from None
    conv = Convention.named(convention)
    series, axes = [], set()
    for spec in specs:
        m = graphspec.load(spec, overrides, symbolic=True)
        s = plot.macs_series(m.spec.name, m.macs(convention), grid)
        series.append(s)
        axes.add(s.axis)
    if len(axes) > 1:
        raise UserError(f"cannot draw image and token models on one axis ({' and '.join(sorted(axes))}): "
                        "plot them separately")
    _publish(output, _draw(plot.draw_macs, series, fmt, f"{', '.join(s.label for s in series)}: "
                           f"{'FLOPs' if conv.flops else 'MACs'} versus input size", log))
    for s in series:
        click.echo(f"  {s.label}: {s.polynomial}")


@plot_group.command("breakdown")
@click.argument("spec")
@click.option("--by", type=click.Choice(["stage", "op"]), default="stage", show_default=True,
              help="stage: top-level modules (patch_embed, layers.0, ..., head); op: op kinds.")
@set_option
@conv_option
@out_option
@pass_options(default="none")
@user_errors
def breakdown(spec, by, overrides, convention, output, passes, disable_pass, print_after) -> None:
    """Parameters and MACs of SPEC per stage or per op kind, as bars."""
    fmt = _format(output)
    m = graphspec.load(spec, overrides)
    g, _ = apply_passes(m.graph, passes=passes, disable_pass=disable_pass, print_after=print_after, default="none")
    b = plot.breakdown(g, by, Convention.named(convention))
    _publish(output, _draw(plot.draw_breakdown, b, fmt, f"{m.spec.name}: parameters and MACs per {by}"))


@plot_group.command("graph")
@click.argument("spec")
@set_option
@out_option
@pass_options(default="default")
@user_errors
def graph(spec, overrides, output, passes, disable_pass, print_after) -> None:
    """The IR of SPEC as a picture via Graphviz `dot`: modules as clusters; after the default
    passes a fused attention is one node (.svg, .png, or .dot for the source)."""
    fmt = _format(output, ("svg", "png", "dot"))
    m = graphspec.load(spec, overrides)
    g, _ = apply_passes(m.graph, passes=passes, disable_pass=disable_pass, print_after=print_after, default="default")
    source = plot.graph_dot(g)
    if fmt == "dot":
        _publish(output, source.encode())
        return
    dot = shutil.which("dot")
    if dot is None:
        raise UserError("graphspec plot graph renders with Graphviz's `dot`, which is not on PATH: install "
                        "Graphviz (apt install graphviz, brew install graphviz), or write the source with -o x.dot")
    try:
        done = subprocess.run([dot, f"-T{fmt}"], input=source.encode(), capture_output=True, timeout=600, check=False)
    except subprocess.TimeoutExpired:
        raise UserError(f"dot took over 10 minutes on {len(g)} nodes: plot a smaller model (--set L=2)") from None
    if done.returncode != 0:
        raise UserError(f"dot failed (exit {done.returncode}): {done.stderr.decode(errors='replace').strip()[:500]}")
    _publish(output, done.stdout)


COMMANDS = [plot_group]
