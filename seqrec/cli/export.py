"""`seqrec export`: runs into other tools' trackers."""

from typing import Optional

import typer

from seqrec.cli._app import command_group, console

app = command_group("Export runs to other experiment trackers.")


@app.command()
def mlflow(
    experiment: Optional[str] = typer.Option(None, "--experiment", help="Only the runs of this experiment."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri",
                                               help="MLflow's tracking URI (default: MLFLOW_TRACKING_URI)."),
) -> None:
    """Export runs to MLflow (config as params, metrics by step, artifact paths, lineage and dataset as tags);
    exporting again updates the runs exported before (needs MLflow: seqrec's mlflow extra)."""
    from seqrec.report.export_mlflow import export_mlflow

    summary = export_mlflow(experiment, tracking_uri)
    console.print(f"exported to {summary.tracking_uri}: {summary.created} new run(s), {summary.updated} updated")
