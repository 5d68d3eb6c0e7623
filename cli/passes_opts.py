"""Shared click options for choosing passes: --passes, --disable-pass, --print-after.

Used by inspect, flops, codegen and build. `apply_passes(graph, opts)` runs the pipeline of
graphspec.passes and returns the new graph and the per-pass report.
"""

from __future__ import annotations

import click


def pipelines_help(default: str | None = None) -> str:
    """The --passes help, naming the passes of each pipeline from graphspec.passes' own table
    (and the command's default pipeline, when given)."""
    try:
        from graphspec.passes.manager import PIPELINES
    except ImportError:  # graphspec.passes not installed
        PIPELINES = {}
    named = [f"'{k}'" + (f" ({', '.join(v)})" if v else "") for k, v in PIPELINES.items()] or ["'none'"]
    text = f"Pass pipeline: {', '.join(named)}, or a comma-separated list of passes."
    if default is not None:
        runs = ", ".join(PIPELINES.get(default, ())) or "no passes, the IR as lowered"
        text += f" [default: '{default}' = {runs}]"
    return text


def pass_options(fn=None, *, default: str | None = None):
    """--passes, --disable-pass, --print-after; `@pass_options(default="none")` also says in
    --help what the command runs without --passes."""
    if fn is None:
        return lambda f: pass_options(f, default=default)
    fn = click.option("--print-after", "print_after", multiple=True, metavar="PASS",
                      help="Print the IR after this pass (repeatable).")(fn)
    fn = click.option("--disable-pass", "disable_pass", multiple=True, metavar="PASS",
                      help="Drop a pass from the pipeline (repeatable).")(fn)
    fn = click.option("--passes", "passes", default=None, metavar="P1,P2(M=7),...",
                      help=pipelines_help(default))(fn)
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
