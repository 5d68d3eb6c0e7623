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
    """Run the chosen pipeline on `graph` (graphspec.passes.run_pipeline, the verifier after each
    pass); returns (graph, report). A bad pipeline or a pass that refuses the model (a window
    that does not divide the map) is a user error: one message, exit code 2."""
    from graphspec.cli.main import UserError

    from graphspec.passes import PassError, PipelineError, run_pipeline

    try:
        return run_pipeline(graph, passes or default, disable=disable_pass, print_after=print_after,
                            echo=click.echo)
    except PipelineError as e:
        raise click.UsageError(str(e)) from None
    except PassError as e:
        raise UserError(str(e)) from None
