"""`seqrec dashboard`: the terminal dashboard (runs, run detail, compare, report tables), live while runs write."""

from typing import Optional

import typer


def dashboard(
    experiment: Optional[str] = typer.Option(None, "--experiment", "-e", help="Start filtered to this experiment."),
    refresh: float = typer.Option(2.0, "--refresh", min=0, help="Seconds between looks for new results (0: never)."),
) -> None:
    """Browse runs, their curves and the report tables in the terminal (80x24 is enough; works over SSH)."""
    from seqrec.tui import SeqrecDashboard

    SeqrecDashboard(experiment=experiment, refresh=refresh).run()
