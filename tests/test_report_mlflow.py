"""`seqrec export mlflow`: runs read back with MLflow's own client from a local file store."""

import json

import pytest
from typer.testing import CliRunner

from seqrec.cli import app
from seqrec.store import open_store

mlflow = pytest.importorskip("mlflow")
runner = CliRunner()


@pytest.fixture
def tracking_uri(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for this to write a local file store
    return (tmp_path / "mlruns").as_uri()


def make_runs(tmp_path):
    """An embed run whose artifact a train run consumed, with training curves and test metrics."""
    store = open_store()
    weights = tmp_path / "emb.npy"
    weights.write_bytes(b"\0" * 64)
    with store.start_run("embed", {"model": "tiny"}, experiment="study", dataset="walk") as embed:
        artifact = embed.log_artifact(weights, "item-embeddings")
    config = {"model": "sasrec", "dataset_fingerprint": "abc123", "hyper": {"lr": 0.001, "epochs": 2}}
    with store.start_run("train", config, experiment="study", seed=0, dataset="walk", inputs=[artifact]) as train:
        for step in (1, 2):
            train.log_metrics({"loss": 1.0 / step}, step=step, split="train")
        train.log_metrics({"ndcg@10": 0.25}, split="test")
    return store, embed.id, train.id, artifact


def mlflow_runs(uri, name="study"):
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(name)
    return client, client.search_runs([experiment.experiment_id])


@pytest.mark.backend
def test_each_run_becomes_an_mlflow_run_with_params_metrics_tags_and_artifact_paths(tmp_path, tracking_uri):
    store, embed_id, train_id, artifact = make_runs(tmp_path)
    result = runner.invoke(app, ["export", "mlflow", "--experiment", "study", "--tracking-uri", tracking_uri])
    assert result.exit_code == 0, result.output
    assert "2 new run(s), 0 updated" in " ".join(result.output.split())
    client, runs = mlflow_runs(tracking_uri)
    by_id = {run.data.tags["seqrec.run_id"]: run for run in runs}
    train = by_id[str(train_id)]
    assert train.info.status == "FINISHED"
    assert train.data.params == {"model": "sasrec", "dataset_fingerprint": "abc123", "hyper.lr": "0.001",
                                 "hyper.epochs": "2"}
    history = client.get_metric_history(train.info.run_id, "train/loss")
    assert sorted((metric.step, metric.value) for metric in history) == [(1, 1.0), (2, 0.5)]
    assert train.data.metrics["test/ndcg_at_10"] == 0.25
    tags = train.data.tags
    assert (tags["seqrec.dataset"], tags["seqrec.dataset_fingerprint"], tags["seqrec.seed"]) == ("walk", "abc123", "0")
    assert tags["seqrec.inputs"] == f"run:{embed_id}/artifact:{artifact.id}"
    embed = by_id[str(embed_id)]
    client.download_artifacts(embed.info.run_id, "seqrec", str(tmp_path))
    (exported,) = json.loads((tmp_path / "seqrec" / "artifacts.json").read_text())["artifacts"]
    assert (exported["kind"], exported["path"], exported["sha256"]) == ("item-embeddings", artifact.path,
                                                                        artifact.sha256)


@pytest.mark.backend
def test_exporting_again_updates_the_runs_instead_of_duplicating_them(tmp_path, tracking_uri):
    from seqrec.report.export_mlflow import export_mlflow

    store, _, train_id, _ = make_runs(tmp_path)
    assert (export_mlflow(tracking_uri=tracking_uri).created, export_mlflow(tracking_uri=tracking_uri).updated) == (2, 2)
    store.add_metrics(train_id, {"loss": 0.25}, step=3, split="train")
    export_mlflow(tracking_uri=tracking_uri)
    client, runs = mlflow_runs(tracking_uri)
    assert len(runs) == 2
    (train,) = [run for run in runs if run.data.tags["seqrec.run_id"] == str(train_id)]
    history = client.get_metric_history(train.info.run_id, "train/loss")
    assert sorted(metric.step for metric in history) == [1, 2, 3]


def test_exporting_an_experiment_without_runs_is_one_line_exit_2(tracking_uri):
    result = runner.invoke(app, ["export", "mlflow", "--experiment", "nothing", "--tracking-uri", tracking_uri])
    assert result.exit_code == 2 and "no runs of experiment 'nothing'" in result.output


def test_without_mlflow_the_error_names_the_extra_to_install(monkeypatch, tracking_uri):
    import sys

    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if MLflow were not installed
    result = runner.invoke(app, ["export", "mlflow", "--tracking-uri", tracking_uri])
    assert result.exit_code == 2 and "pip install 'seqrec[mlflow]'" in result.output
