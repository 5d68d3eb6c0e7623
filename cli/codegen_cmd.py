"""`graphspec codegen SPEC -o model.py`: the model as one standalone PyTorch file.

    graphspec codegen swin_t -o swin_t.py                      # default passes: fused attention, qkv
    graphspec codegen swin_t --passes none -o swin_t.py        # attention as explicit matmuls
    graphspec codegen swin_t --set img_size=384 --set M=12 -o swin_t_384.py

The file never imports graphspec; its parameters are named as the IR's (see graphspec/weights.py
to load Hugging Face weights). Without `-o` the source goes to stdout.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
from graphspec.cli.main import OutputPath, UserError, user_errors
from graphspec.cli.passes_opts import apply_passes, pass_options
from graphspec.codegen import CodegenError, emit

import graphspec
from graphspec.io import atomic_write


def _default_pipeline() -> str:
    """`default` (fused attention and qkv: official Swin's and timm's `attn.qkv` names), or
    `none` where graphspec.passes is not installed."""
    try:
        import graphspec.passes  # noqa: F401
    except ImportError:
        return "none"
    return "default"


@click.command("codegen")
@click.argument("spec")
@click.option("-o", "--output", default="-", metavar="FILE", type=OutputPath(allow_dash=True),
              help="Write here (atomically); '-' for stdout.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a variable or field of the spec (repeatable): --set M=12.")
@pass_options(default=_default_pipeline())
@click.option("--dtype", type=click.Choice(["fp32", "fp16", "bf16"]), default="fp32", show_default=True,
              help="fp16/bf16: the file adds DTYPE and build(), which returns the model in that precision.")
@user_errors
def codegen(spec: str, output: str, overrides: tuple[str, ...], passes, disable_pass, print_after,
            dtype: str) -> None:
    """Write SPEC (a file or a bundled name) as a standalone PyTorch module."""
    model = graphspec.load(spec, overrides)
    graph, _ = apply_passes(model.graph, passes, disable_pass, print_after, default=_default_pipeline())
    try:
        gen = emit(graph, model.spec)
    except CodegenError as e:
        raise UserError(f"cannot write {spec} as PyTorch: {e}") from None
    from graphspec.codegen.dtype import with_dtype

    source = with_dtype(gen.source, gen.class_name, dtype)
    if output == "-":
        click.echo(source, nl=False)
        return
    spec_file = graphspec.resolve_spec(spec)
    if os.path.exists(output) and spec_file.exists() and os.path.samefile(output, spec_file):
        raise UserError(f"-o {output} is the spec itself: writing the module there would destroy it; "
                        f"give another file, e.g. {Path(output).with_suffix('.py').name}")
    atomic_write(output, source)
    click.echo(f"wrote {output}: class {gen.class_name}, {model.params():,} parameters", err=True)


COMMANDS = [codegen]
