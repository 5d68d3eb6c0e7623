"""`graphspec` entry point: the command group and the user-error policy.

Every user mistake (a bad spec, a bad override, an unwritable output, a missing toolchain)
prints one clear message and exits with code 2; never a traceback. Commands live in
cli/analyze.py (specs, inspect, flops) and further modules registered below.
"""

from __future__ import annotations

import functools
import sys

import click

from graphspec.io import OutputError, check_name
from graphspec.spec import SpecError

EXIT_USER_ERROR = 2


class UserError(click.ClickException):
    """A user-facing failure with exit code 2."""

    exit_code = EXIT_USER_ERROR

    def show(self, file=None) -> None:
        click.echo(f"error: {self.message}", err=True)


def user_errors(fn):
    """Turn SpecError / OutputError / UserError into a message and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SpecError as e:
            click.echo(str(e), err=True)
            sys.exit(EXIT_USER_ERROR)
        except OutputError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(EXIT_USER_ERROR)

    return wrapper


class OutputPath(click.Path):
    """click.Path of an output option: a name with a control character is refused (exit 2)
    before click stats it (a NUL there raised ValueError: embedded null byte)."""

    def convert(self, value, param, ctx):
        try:
            check_name(value)
        except OutputError as e:
            self.fail(str(e), param, ctx)
        return super().convert(value, param, ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="graphspec")
def main() -> None:
    """graphspec: transformer specs -> IR -> passes -> analysis -> PyTorch / ONNX / TVM."""


def _register() -> None:
    import importlib

    for mod in ("analyze", "codegen_cmd", "build_cmd", "interchange_cmd", "plot_cmd", "train_cmd"):
        try:
            m = importlib.import_module(f"graphspec.cli.{mod}")
        except ModuleNotFoundError as e:
            if e.name != f"graphspec.cli.{mod}":
                raise
            continue
        for cmd in getattr(m, "COMMANDS", ()):
            main.add_command(cmd)


_register()

if __name__ == "__main__":
    main()
