"""The `seqrec` command: one Typer module per command group, each command a thin wrapper over a function."""

import sys
from typing import Optional

import typer

from seqrec import __version__
from seqrec.cli import (dashboard, data, db, delrec, distill, embed, export, models, profiles, report, rerank, run,
                        runs, serve, train)
from seqrec.cli._app import command_group, console

app = command_group(
    "seqrec: a workbench for LLM-enhanced sequential recommendation.\n\n"
    "Everything lives under SEQREC_HOME (default ./.seqrec); SEQREC_DB overrides the database URL."
)
app.add_typer(data.app, name="data")
app.add_typer(db.app, name="db")
app.add_typer(models.app, name="models")
app.add_typer(embed.app, name="embed")
app.add_typer(profiles.app, name="profiles")
app.add_typer(runs.app, name="runs")
app.add_typer(delrec.app, name="delrec")
app.add_typer(export.app, name="export")
app.command("train")(train.train)
app.command("evaluate")(train.evaluate)
app.command("run")(run.run)
app.command("report")(report.report)
app.command("dashboard")(dashboard.dashboard)
app.command("distill")(distill.distill)
app.command("serve")(serve.serve)
app.command("rerank")(rerank.rerank)


def show_version(value: bool) -> None:
    if value:
        console.print(f"seqrec {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Optional[bool] = typer.Option(None, "--version", callback=show_version, is_eager=True,
                                           help="Print the version and exit."),
) -> None:
    """seqrec: a workbench for LLM-enhanced sequential recommendation."""


@app.command()
def info() -> None:
    """Show paths, library versions, the compute device and torch threads."""
    from seqrec.system import info as system_info

    for key, value in system_info().items():
        console.print(f"{key:<14} {value}")


def run() -> None:
    try:
        app(prog_name="seqrec")
    except SystemExit as done:
        if "torch.distributed" in sys.modules:  # only a training job can have formed a process group
            from seqrec.training.accelerator import leave_job

            leave_job(done.code)
        raise
