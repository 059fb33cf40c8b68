"""`seqrec run`: run a study declared in experiments.toml."""

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from seqrec.cli._app import console

STATUS_STYLE = {"done": "green", "to do": "cyan", "resume": "yellow", "waiting": "dim", "failed": "red"}


def show_plan(plan, experiments=None, title: str = "plan") -> None:
    table = Table(title=title, show_lines=False)
    for column in ("experiment", "stage", "run", "status", "parameters"):
        table.add_column(column, overflow="fold")
    for experiment in experiments or plan.order:
        for point in plan.points.get(experiment, []):
            style = STATUS_STYLE.get(point.status, "")
            table.add_row(experiment, point.stage, str(point.run_id or ""), f"[{style}]{point.status}[/]",
                          escape(point.label))
    console.print(table)


def run(
    experiment: str = typer.Argument(None, help="The experiment to run (with the ones it names in `after`)."),
    file: Path = typer.Option(Path("experiments.toml"), "--file", "-f", help="The experiments file."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan and stop."),
    force: bool = typer.Option(False, "--force", help="Run points again even when the database has them."),
    schema: bool = typer.Option(False, "--schema", help="Print the JSON Schema of experiments.toml and stop."),
) -> None:
    """Run every point not yet in the database, each experiment planned when its turn comes; a failed point is
    reported and the rest go on."""
    from seqrec.experiments.plan import make_plan, run_experiment
    from seqrec.experiments.schema import json_schema, load_experiments

    if schema:
        console.print_json(json_schema())
        return
    if experiment is None:
        names = ", ".join(load_experiments(file).experiments) or "none"
        raise typer.BadParameter(f"name an experiment (declared in {file}: {names})", param_hint="EXPERIMENT")
    if dry_run:
        show_plan(make_plan(experiment, file))
        return

    def report(point) -> None:
        style = STATUS_STYLE.get(point.status, "")
        console.print(f"[{style}]{point.status}[/] " + escape(f"{point.experiment} {point.stage} {point.label}"
                                                               + (f": {point.error}" if point.error else "")),
                      highlight=False)

    plan = run_experiment(experiment, file, force, on_point=report,
                          on_plan=lambda plan, name: show_plan(plan, [name], title=f"plan: {name}"))
    failed = [point for points in plan.points.values() for point in points if point.status == "failed"]
    show_plan(plan, title="result")
    if failed:
        console.print(f"[red]{len(failed)} point(s) failed:[/]")
        for point in failed:
            console.print(escape(f"  {point.experiment} {point.label}: {point.error}"), highlight=False)
        raise typer.Exit(1)
