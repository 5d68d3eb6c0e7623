"""Shared click options for choosing passes: --passes, --disable-pass, --print-after.

Used by inspect, flops, codegen and build. `apply_passes(graph, opts)` runs the pipeline of
graphspec.passes and returns the new graph and the per-pass report.
"""

from __future__ import annotations

import click


def pass_options(fn):
    fn = click.option("--print-after", "print_after", multiple=True, metavar="PASS",
                      help="Print the IR after this pass (repeatable).")(fn)
    fn = click.option("--disable-pass", "disable_pass", multiple=True, metavar="PASS",
                      help="Drop a pass from the pipeline (repeatable).")(fn)
    fn = click.option("--passes", "passes", default=None, metavar="P1,P2(M=7),...",
                      help="Pass pipeline: 'none', 'default', or a comma-separated list.")(fn)
    return fn


def apply_passes(graph, passes=None, disable_pass=(), print_after=(), default="none"):
    """Run the chosen pipeline on `graph`; returns (graph, report). Placeholder until
    graphspec.passes lands: only 'none' is accepted."""
    chosen = passes or default
    if chosen in ("none", ""):
        return graph, []
    raise click.UsageError("passes are not available yet")
