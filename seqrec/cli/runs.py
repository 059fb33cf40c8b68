"""`seqrec runs`: list, inspect and delete tracked runs."""

import json
from typing import Optional

import typer
from rich import box
from rich.table import Table

from seqrec.cli._app import command_group, console
from seqrec.store import commands

app = command_group("Tracked runs: list, show, delete.")

STATUS_STYLE = {"finished": "green", "running": "cyan", "failed": "red", "interrupted": "yellow"}
HEADLINE_METRICS = {"ndcg@10": "N@10", "recall@10": "R@10"}


def when(moment) -> str:
    return moment.strftime("%m-%d %H:%M") if moment else ""


def seconds(value) -> str:
    return "" if value is None else f"{value:.1f}s" if value < 120 else f"{value / 60:.1f}m"


@app.command("list")
def list_(
    kind: Optional[str] = typer.Option(None, help="Only runs of this kind (train, embed, distill, ...)."),
    status: Optional[str] = typer.Option(None, help="running, finished, failed or interrupted."),
    experiment: Optional[str] = typer.Option(None, help="Only runs of this experiment."),
    limit: int = typer.Option(50, min=0, help="How many of the newest runs to show (0: all)."),
) -> None:
    """List the newest runs with their status and headline test metrics."""
    runs, test_metrics = commands.list_runs(kind=kind, status=status, experiment=experiment, limit=limit)
    if not runs:
        console.print("no runs yet")
        return
    table = Table(title="runs (test metrics)", box=box.SIMPLE_HEAD, pad_edge=False)
    workers = {run.id: commands.worker_of(run) for run in runs}
    worker_column = ("worker",) if any(workers.values()) else ()
    for column in ("id", "kind", "experiment", "dataset", "seed", "status", "took", *HEADLINE_METRICS.values(),
                   *worker_column):
        flexible = column in ("experiment", "dataset", "worker")
        table.add_column(column, justify="left" if flexible or column in ("kind", "status") else "right",
                         no_wrap=not flexible, overflow="ellipsis")
    for run in runs:
        values = test_metrics.get(run.id, {})
        style = STATUS_STYLE.get(run.status, "")
        table.add_row(str(run.id), run.kind, run.experiment or "", run.dataset or "",
                      "" if run.seed is None else str(run.seed), f"[{style}]{run.status}[/]", seconds(run.duration_s),
                      *(f"{values[key]:.4f}" if key in values else "" for key in HEADLINE_METRICS),
                      *(workers[run.id] for _ in worker_column))
    console.print(table)


@app.command()
def show(run_id: int = typer.Argument(..., help="The run's id (see `seqrec runs list`).")) -> None:
    """Show one run: config, final metrics, artifacts and lineage."""
    detail = commands.show_run(run_id)
    run = detail.run
    console.print(f"[bold]run {run.id}[/] {run.kind}  status [{STATUS_STYLE.get(run.status, '')}]{run.status}[/]  "
                  f"experiment {run.experiment or '-'}  dataset {run.dataset or '-'}  seed {run.seed}")
    console.print(f"started {when(run.started_at)}  took {seconds(run.duration_s) or '-'}  host {run.host}  "
                  f"code {run.code_version}  config hash {run.config_hash[:12]}")
    if commands.worker_of(run):
        console.print(f"worker {commands.worker_of(run)}")
    if run.error:
        console.print(f"[red]error:[/] {run.error.splitlines()[0]}")
    console.print("[bold]config[/]")
    console.print_json(json.dumps(run.config, default=str))
    for split, values in detail.metrics.items():
        table = Table(title=f"{split} metrics (final)")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key, value in sorted(values.items()):
            table.add_row(key, f"{value:.4f}")
        console.print(table)
    if detail.artifacts:
        table = Table(title="artifacts")
        for column in ("id", "kind", "path", "bytes", "sha256"):
            table.add_column(column)
        for artifact in detail.artifacts:
            table.add_row(str(artifact.id), artifact.kind, artifact.path, f"{artifact.bytes:,}", artifact.sha256[:12])
        console.print(table)
    for link in detail.inputs:
        artifact = f" artifact {link['artifact']} ({link['role']})" if link["artifact"] else ""
        console.print(f"input: run {link['run']}{artifact}")
    if detail.consumers:
        console.print("used by runs: " + ", ".join(map(str, detail.consumers)))


@app.command()
def delete(
    run_id: int = typer.Argument(..., help="The run's id."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a run, its metrics, artifacts and its folder."""
    run = commands.show_run(run_id).run
    if not yes:
        typer.confirm(f"delete run {run.id} ({run.kind}, {run.status})?", abort=True)
    commands.delete_run(run_id)
    console.print(f"deleted run {run_id}")
