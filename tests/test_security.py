"""What seqrec must never leave behind: an endpoint's API key, read from the variable ``api_key_env`` names, appears
in no database row, run folder, log, command output or export after a whole re-ranking run through the CLI."""

import pytest
from llm_servers import scripted_server
from recsys_fixtures import make_walk_dataset
from typer.testing import CliRunner

from seqrec.cli import app
from seqrec.recsys.runner import train_model

KEY = "sk-fake-4f1c9e0d2b7a"


def test_an_api_key_leaves_no_trace_in_the_database_run_folders_logs_or_exports(tmp_path, seqrec_home, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.setenv("SEQREC_TEST_KEY", KEY)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    make_walk_dataset(tmp_path / "raw", name="walk")
    (base,) = train_model("sasrec", "walk", seeds=[0], hidden=16, heads=2, layers=1, epochs=1)
    runner = CliRunner()
    with scripted_server([("ok", "2, 1, 3")] * 4, auth=KEY) as server:
        result = runner.invoke(app, ["rerank", str(base), "--endpoint", server.url, "--endpoint-model", "m",
                                     "--api-key-env", "SEQREC_TEST_KEY", "--mode", "generate", "--top-k", "3",
                                     "--users", "4", "--experiment", "secret-study"])
        assert result.exit_code == 0, result.output
        assert len(server.requests) == 4  # the key was sent: the server refuses requests without it
    mlruns = tmp_path / "mlruns"
    exported = runner.invoke(app, ["export", "mlflow", "--tracking-uri", mlruns.as_uri()])
    assert exported.exit_code == 0, exported.output
    written = [path for root in (seqrec_home, mlruns) for path in root.rglob("*") if path.is_file()]
    assert any(path.suffix == ".db" for path in written) and any("rankings" in path.name for path in written)
    for path in written:
        assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in result.output + exported.output
