"""What seqrec must never do: leave an endpoint's API key (read from the variable ``api_key_env`` names) in any
database row, run folder, log, command output or export, write outside SEQREC_HOME because of a name, or run code
because an experiments file or a model folder says so."""

import json
from pathlib import Path

import pytest
from llm_servers import scripted_server
from recsys_fixtures import make_walk_dataset
from typer.testing import CliRunner

from seqrec.cli import app
from seqrec.recsys.runner import train_model
from seqrec.store import open_store

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


# an experiments file is data: nothing in it makes seqrec run code ---------------------------------------------
def own_code_model(folder: Path, marker: Path, model_type: str) -> Path:
    """A model folder whose config maps its classes to its own module, which would leave ``marker`` if imported."""
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": model_type, "architectures": ["OwnModel"], "hidden_size": 8,
        "auto_map": {"AutoConfig": "own.OwnConfig", "AutoModel": "own.OwnModel"}}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"auto_map": {"AutoTokenizer": ["own.OwnTokenizer", None]}}))
    (folder / "own.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    return folder


CODE_TEXT = "__import__('os').system('touch {marker}')"


def walk_declared(tmp_path) -> str:
    """The walk fixture's files, declared as the dataset walk."""
    raw = tmp_path / "raw"
    return f"""
[datasets.walk]
source = "csv"
options = {{ interactions = "{raw / 'inter.csv'}", items = "{raw / 'items.csv'}", k_core = 2, max_len = 5 }}
"""


@pytest.mark.parametrize("model_type", ["llama", "own-model"])
def test_a_model_folder_with_its_own_code_is_refused_before_anything_loads(tmp_path, walk, model_type):
    marker = tmp_path / "ran"
    model = own_code_model(tmp_path / "own", marker, model_type)
    study = tmp_path / "experiments.toml"
    study.write_text(walk_declared(tmp_path) + f"""
[models.own]
alias = "{model}"

[experiments.own-embed]
stage = "embed"
dataset = "walk"
model = "own"
""")
    runner = CliRunner()
    for arguments in (["run", "own-embed", "--file", str(study)], ["embed", "items", "--dataset", "walk", "--model", str(model)],
                      ["models", "pull", "own", "--from", str(model)]):
        result = runner.invoke(app, arguments)
        # (`seqrec run` reports a point that failed and exits 1; the commands refuse with exit 2)
        assert result.exit_code == (1 if arguments[0] == "run" else 2), (arguments, result.output)
        assert "Traceback" not in result.output
        assert "carries its own code (auto_map in config.json, auto_map in tokenizer_config.json, own.py)" \
            in " ".join(result.output.split())
    assert not marker.exists()
    assert open_store().get_model("own") is None


def test_code_in_an_experiments_files_values_is_kept_as_text_or_refused_never_run(tmp_path, walk):
    marker = tmp_path / "ran"
    code = CODE_TEXT.format(marker=marker)
    study = tmp_path / "experiments.toml"
    study.write_text(walk_declared(tmp_path) + f"""
[datasets.shell]
source = "csv"
options = {{ interactions = "$(touch {marker})", items = "`touch {marker}`" }}

[experiments.described]
stage = "train"
dataset = "walk"
description = "{code}"
seeds = [0]
params = {{ model = "sasrec", hidden = 8, heads = 1, layers = 1, epochs = 1 }}

[experiments.shell-data]
stage = "prepare"
dataset = "shell"

[experiments.code-model]
stage = "train"
dataset = "walk"
params = {{ model = "{code}" }}

[experiments.code-embeddings]
stage = "train"
dataset = "walk"
params = {{ model = "sasrec", item_emb = "{code}" }}
""")
    runner = CliRunner()
    described = runner.invoke(app, ["run", "described", "--file", str(study)])
    assert described.exit_code == 0, described.output
    (run,) = open_store().list_runs(kind="train", experiment="described")
    assert run.status == "finished"
    for experiment, message in (("shell-data", "missing file: $(touch"), ("code-model", "is not one of sasrec, gru4rec, caser, bert4rec"),
                                ("code-embeddings", "do not exist")):
        result = runner.invoke(app, ["run", experiment, "--file", str(study)])
        assert result.exit_code in (1, 2) and "Traceback" not in result.output, (experiment, result.output)
        assert message in " ".join(result.output.split())
    assert not marker.exists()
