"""What every command group shares: bad input becomes one line on stderr and exit code 2."""

from __future__ import annotations

import os

import click
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from seqrec.errors import SeqrecError, storage_failure

console = Console(quiet=os.environ.get("RANK", "0") != "0")  # in a multi-process job (torchrun) the first prints
error_console = Console(stderr=True)


class SeqrecGroup(TyperGroup):
    """A command group that reports :class:`SeqrecError` as ``error: <message>`` with exit code 2, and a full or
    read-only disk as one line with exit code 1 (runs already finished are untouched: each is committed, and its
    files registered, only once complete)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SeqrecError as exc:
            error_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except Exception as exc:
            reason = storage_failure(exc)
            if reason is None:
                raise
            error_console.print(f"[bold red]error:[/] {escape(reason)}. Finished runs are kept; once the disk takes "
                                f"writes again, run the command again to finish the rest.", highlight=False,
                                soft_wrap=True)
            raise typer.Exit(1) from None


def command_group(help: str, **kwargs) -> typer.Typer:
    """A Typer app for one command group (also usable on its own, as tests do)."""
    return typer.Typer(cls=SeqrecGroup, help=help, no_args_is_help=True, pretty_exceptions_show_locals=False,
                       rich_markup_mode="rich", **kwargs)

