"""What seqrec must never do: leave an endpoint's API key (read from the variable ``api_key_env`` names) in any
database row, run folder, log, command output or export, or write outside SEQREC_HOME because of a name."""

from pathlib import Path

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


@pytest.mark.parametrize("command", [
    ["data", "prepare", "movielens", "--variant", "ml-100k", "--name", "{name}"],
    ["models", "pull", "{name}", "--from", "{folder}"],
])
@pytest.mark.parametrize("name", ["..", "../outside", "/tmp/absolute", "nul\0byte", ".hidden"])
def test_names_that_become_folders_cannot_leave_the_store(tmp_path, seqrec_home, command, name):
    folder = tmp_path / "weights"  # (never read: the name is refused first)
    folder.mkdir()
    (tmp_path / "keep").write_text("a file beside the store")
    arguments = [part.format(name=name, folder=folder) for part in command]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 2 and result.output.startswith("error: ") and "Traceback" not in result.output
    assert "must start with a letter or digit" in result.output
    assert {path.name for path in tmp_path.iterdir()} <= {"keep", "seqrec-home", "weights"}
    assert (tmp_path / "keep").exists() and not Path("/tmp/absolute").exists()
