"""Export runs to MLflow: each seqrec run becomes an MLflow run (config as params, metrics with their steps,
artifact paths, lineage and dataset as tags) in an MLflow experiment of the same name. A run exported before is
found by its ``seqrec.run_id`` tag and brought up to date, so exporting twice adds nothing twice."""

from __future__ import annotations

import re
from dataclasses import dataclass

from seqrec.errors import SeqrecError
from seqrec.store import open_store
from seqrec.store.engine import shown_url

NO_EXPERIMENT = "seqrec"  # the MLflow experiment of runs made outside any experiment
STATUS = {"running": "RUNNING", "finished": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
BATCH = 1000  # MLflow takes at most this many metrics in one log_batch
MAX_PARAM = 6000  # and params up to this many characters


@dataclass
class ExportSummary:
    tracking_uri: str
    created: int = 0
    updated: int = 0


def mlflow_name(key: str) -> str:
    """A metric or param name MLflow accepts (letters, digits, ``_ - . / :`` and spaces): ``ndcg@10`` ->
    ``ndcg_at_10``."""
    return re.sub(r"[^\w./\- :]", "_", key.replace("@", "_at_"))


def flat_params(config: dict, prefix: str = "") -> dict[str, str]:
    params = {}
    for key, value in config.items():
        name = f"{prefix}{mlflow_name(str(key))}"
        if isinstance(value, dict) and value:
            params.update(flat_params(value, f"{name}."))
        else:
            params[name] = str(value)[:MAX_PARAM]
    return params


def millis(moment) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def run_tags(store, run) -> dict[str, str]:
    lineage = [f"run:{link.input_run_id}" + (f"/artifact:{link.artifact_id}" if link.artifact_id else "")
               for link in store.inputs(run.id)]
    tags = {"mlflow.runName": f"{run.kind} {run.id}", "seqrec.run_id": str(run.id), "seqrec.kind": run.kind,
            "seqrec.status": run.status, "seqrec.config_hash": run.config_hash,
            "seqrec.database": shown_url(store.url), "seqrec.inputs": ",".join(lineage),
            "seqrec.dataset": run.dataset or "", "seqrec.seed": "" if run.seed is None else str(run.seed),
            "seqrec.host": run.host or "", "seqrec.code_version": run.code_version or ""}
    if run.config.get("dataset_fingerprint"):
        tags["seqrec.dataset_fingerprint"] = str(run.config["dataset_fingerprint"])
    if run.error:
        tags["seqrec.error"] = run.error.splitlines()[0][:MAX_PARAM]
    return tags


def new_metrics(client, mlflow_run_id: str, store, run) -> list:
    """The run's metrics that its MLflow run does not hold yet, as MLflow metrics (``split/key`` by step)."""
    from mlflow.entities import Metric

    metrics = [Metric(f"{metric.split}/{mlflow_name(metric.key)}", metric.value, millis(metric.created_at),
                      metric.step or 0) for metric in store.metrics(run.id)]
    held: set[tuple] = set()
    for key in {metric.key for metric in metrics}:
        held.update((key, old.step, old.timestamp, old.value) for old in client.get_metric_history(mlflow_run_id, key))
    return [metric for metric in metrics if (metric.key, metric.step, metric.timestamp, metric.value) not in held]


def exported_run(client, experiment_id: str, run) -> str | None:
    found = client.search_runs([experiment_id], filter_string=f"tags.`seqrec.run_id` = '{run.id}'", max_results=1)
    return found[0].info.run_id if found else None


def export_run(client, experiment_id: str, store, run) -> bool:
    """Create or update the MLflow run of one seqrec run; True when it was created."""
    from mlflow.entities import Param, RunTag

    mlflow_run_id = exported_run(client, experiment_id, run)
    created = mlflow_run_id is None
    if created:
        mlflow_run_id = client.create_run(experiment_id, start_time=millis(run.started_at),
                                          run_name=f"{run.kind} {run.id}").info.run_id
    params = [Param(key, value) for key, value in flat_params(run.config).items()] if created else []
    tags = [RunTag(key, value) for key, value in run_tags(store, run).items()]
    metrics = new_metrics(client, mlflow_run_id, store, run)
    client.log_batch(mlflow_run_id, params=params[:100], tags=tags)
    for start in range(100, len(params), 100):  # MLflow takes at most 100 params in one log_batch
        client.log_batch(mlflow_run_id, params=params[start:start + 100])
    for start in range(0, len(metrics), BATCH):
        client.log_batch(mlflow_run_id, metrics=metrics[start:start + BATCH])
    artifacts = [{"id": artifact.id, "kind": artifact.kind, "path": artifact.path, "sha256": artifact.sha256,
                  "bytes": artifact.bytes} for artifact in store.artifacts(run.id)]
    client.log_dict(mlflow_run_id, {"artifacts": artifacts}, "seqrec/artifacts.json")
    status = STATUS[run.status]
    if status == "RUNNING":
        client.update_run(mlflow_run_id, status=status)
    else:
        client.set_terminated(mlflow_run_id, status=status, end_time=millis(run.finished_at))
    return created


def export_mlflow(experiment: str | None = None, tracking_uri: str | None = None) -> ExportSummary:
    """Export every run (or one experiment's) to the MLflow tracking server or store at ``tracking_uri`` (default:
    MLflow's own, MLFLOW_TRACKING_URI)."""
    try:
        import mlflow
        from mlflow import MlflowClient
    except ImportError:
        raise SeqrecError("export mlflow needs MLflow: pip install 'seqrec[mlflow]'") from None
    store = open_store()
    runs = store.list_runs(experiment=experiment, limit=None)
    if experiment is not None and not runs:
        raise SeqrecError(f"no runs of experiment {experiment!r} (see `seqrec runs list`)")
    client = MlflowClient(tracking_uri=tracking_uri)
    summary = ExportSummary(tracking_uri=tracking_uri or mlflow.get_tracking_uri())
    experiment_ids: dict[str, str] = {}
    try:
        for run in reversed(runs):  # oldest first, so that MLflow lists them as seqrec does
            name = run.experiment or NO_EXPERIMENT
            if name not in experiment_ids:
                found = client.get_experiment_by_name(name)
                experiment_ids[name] = found.experiment_id if found else client.create_experiment(name)
            if export_run(client, experiment_ids[name], store, run):
                summary.created += 1
            else:
                summary.updated += 1
    except mlflow.exceptions.MlflowException as exc:
        raise SeqrecError(f"MLflow at {summary.tracking_uri}: {exc.message.splitlines()[0]}") from None
    return summary
