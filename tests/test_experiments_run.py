import pytest
from typer.testing import CliRunner

from recsys_fixtures import interrupt_at_evaluation, make_walk_dataset
from seqrec.cli import app
from seqrec.experiments.plan import run_experiment
from seqrec.recsys.evaluate import Evaluator
from seqrec.recsys.runner import evaluate_run
from seqrec.store import open_store

pytestmark = pytest.mark.backend
runner = CliRunner()


def experiments_file(tmp_path, extra="", study="{ epochs = 2, hidden = 16, batch_size = 64 }"):
    raw = tmp_path / "raw"
    make_walk_dataset(raw, name="scratch")  # writes the CSVs (and a dataset this file does not use)
    path = tmp_path / "experiments.toml"
    path.write_text(f"""
[datasets.walk]
source = "csv"
options = {{ interactions = "{raw / 'inter.csv'}", items = "{raw / 'items.csv'}", k_core = 2, max_len = 5 }}

[experiments.walk-data]
stage = "prepare"
dataset = "walk"

[experiments.study]
stage = "train"
after = ["walk-data"]
dataset = "walk"
seeds = [0, 1]
params = {study}
grid = {{ model = ["sasrec", "gru4rec"] }}

[experiments.study-noise]
stage = "evaluate"
after = ["study"]
seeds = [0, 1]
params = {{ of = "study" }}
grid = {{ noise = ["deletion"] }}
{extra}""")
    return path


def run(*args):
    return runner.invoke(app, ["run", *map(str, args)])


def test_a_study_runs_in_order_then_is_skipped(tmp_path):
    path = experiments_file(tmp_path)
    dry = run("study-noise", "--file", path, "--dry-run")
    assert dry.exit_code == 0 and "to do" in dry.stdout and "waiting" in dry.stdout
    assert open_store().list_runs() == []
    first = run("study-noise", "--file", path)
    assert first.exit_code == 0, first.output
    store = open_store()
    trained = store.list_runs(kind="train", experiment="study")
    evaluated = store.list_runs(kind="evaluate", experiment="study-noise")
    assert len(trained) == 4 and len(evaluated) == 4
    assert {run.config["noise"] for run in evaluated} == {"deletion"}
    again = run("study-noise", "--file", path)
    assert again.exit_code == 0 and "to do" not in again.stdout
    assert len(store.list_runs(limit=None)) == 8
    forced = run("study", "--file", path, "--force")
    assert forced.exit_code == 0 and len(store.list_runs(kind="train", limit=None)) == 8
    report = runner.invoke(app, ["report", "--table", "noise", "--experiment", "study-noise"])
    assert report.exit_code == 0, report.output


def test_an_evaluation_made_outside_the_experiment_does_not_count_as_its_point(tmp_path):
    """The same evaluation run by hand (no experiment) is not study-noise's: the experiment still makes its own."""
    path = experiments_file(tmp_path)
    assert run("study", "--file", path).exit_code == 0
    store = open_store()
    by_hand = evaluate_run(store.list_runs(kind="train", experiment="study")[0].id, noise="deletion")
    assert run("study-noise", "--file", path).exit_code == 0
    evaluated = store.list_runs(kind="evaluate", experiment="study-noise")
    assert len(evaluated) == 4 and by_hand not in {run.id for run in evaluated}


def test_an_interrupted_study_point_is_resumed_not_started_again(tmp_path, monkeypatch):
    path = experiments_file(tmp_path)
    original = interrupt_at_evaluation(monkeypatch, call=2)
    with pytest.raises(KeyboardInterrupt):
        run_experiment("study", path)
    store = open_store()
    (interrupted,) = store.list_runs(kind="train", status="interrupted")
    monkeypatch.setattr(Evaluator, "evaluate", original)
    run_experiment("study", path)
    runs = store.list_runs(kind="train", limit=None)
    assert len(runs) == 4 and {run.status for run in runs} == {"finished"}
    assert interrupted.id in {run.id for run in runs}


def test_a_failed_point_is_reported_and_the_rest_goes_on(tmp_path):
    path = experiments_file(tmp_path, """
[experiments.mixed]
stage = "train"
after = ["walk-data"]
dataset = "walk"
params = { model = "sasrec", epochs = 1, hidden = 16 }
grid = { heads = [3, 2] }
""")
    result = run("mixed", "--file", path)
    assert result.exit_code == 1
    assert "1 point(s) failed" in result.stdout and "divisible by heads" in result.stdout
    assert len(open_store().list_runs(kind="train", status="finished")) == 1


@pytest.mark.parametrize("extra, message", [
    ('[experiments.bad]\nstage = "train"\ndataset = "walk"\ngrid = { colour = ["red"] }\n',
     "experiments.bad.grid.colour: the train stage does not take 'colour'"),
    ('[experiments.bad]\nstage = "train"\ndataset = "nowhere"\n', "experiments.bad.dataset: unknown dataset 'nowhere'"),
    ('[experiments.bad]\nstage = "evaluate"\nafter = ["bad"]\nparams = { of = "study" }\n',
     "experiments.bad.after: a cycle"),
    ('[experiments.bad]\nstage = "train"\ndataset = "walk"\n',
     "experiments.bad.params.model: the train stage needs it"),
    ('[experiments.bad]\nstage = "trian"\n', "experiments.bad.stage: unknown stage 'trian' (known: delrec-distill, "
                                             "delrec-finetune, distill, embed, evaluate, llm2rec, prepare, "
                                             "profile-embed, profiles, rerank, train); did you mean 'train'?"),
    ('[experiments.bad]\nstage = "train"\nafter = ["walk-data"]\ndataset = "walk"\n'
     'params = { model = "sasrec", epochs = 0 }\n', "experiments.bad.params.epochs: epochs = 0 is out of range"),
    ('[experiments.bad]\nstage = "train"\nafter = ["walk-data"]\ndataset = "walk"\n'
     'params = { model = "sasrec" }\ngrid = { dropout = [0.1, 1.5] }\n',
     "experiments.bad.grid.dropout: dropout = 1.5 is out of range"),
    ('[experiments.bad]\nstage = "train"\nafter = ["walk-data"]\ndataset = "walk"\nparams = { model = "sasrek" }\n',
     "experiments.bad.params.model: 'sasrek' is not one of sasrec"),
    ('[models.m]\nalias = "m"\n[experiments.bad]\nstage = "llm2rec"\nafter = ["walk-data"]\ndataset = "walk"\n'
     'model = "m"\nparams = { step = "csft", lora = 8 }\n',
     "experiments.bad.params.lora: the llm2rec stage does not take 'lora'"),
    ('[models.m]\nalias = "m"\n[experiments.bad]\nstage = "llm2rec"\nafter = ["walk-data"]\ndataset = "walk"\n'
     'model = "m"\nparams = { step = "iem" }\n', "experiments.bad.params.step: 'iem' is not one of csft, mntp, ic"),
    ('[experiments.bad]\nstage = "train"\nafter = ["walk-data"]\ndataset = "walk"\n'
     'params = { model = "sasrec", item_emb = "embed:study" }\n',
     "experiments.bad.params.item_emb: 'embed:study': 'study' is not an experiment with stage = 'embed'"),
    ('[experiments.bad]\nstage = "train"\nafter = ["walk-data"]\ndataset = "walk"\n'
     'params = { model = "sasrec", item_emb = "evaluate:study-noise" }\n',
     "experiments.bad.params.item_emb: 'evaluate:study-noise': evaluate runs make no item-embeddings"),
    ('[models.m]\nalias = "m"\n[experiments.early]\nstage = "embed"\ndataset = "walk"\nmodel = "m"\n'
     '[experiments.bad]\nstage = "train"\nafter = ["walk-data"]\ndataset = "walk"\n'
     'params = { model = "sasrec", item_emb = "embed:early" }\n',
     "experiments.bad.params.item_emb: 'embed:early': 'early' must run first; add it to experiments.bad.after"),
    ('[experiments.bad]\nstage = "evaluate"\nafter = ["walk-data"]\nparams = { of = "walk-data" }\n',
     "experiments.bad.params.of: 'walk-data' is not a train experiment of this file"),
])
def test_bad_experiments_are_one_line_exit_2_and_write_nothing(tmp_path, extra, message):
    """Checked before anything runs: the dataset the experiment runs after is not prepared either."""
    path = experiments_file(tmp_path, extra)
    result = run("bad", "--file", path)
    assert result.exit_code == 2 and f"{path}: {message}" in result.stderr.replace("\n", "")
    assert open_store().get_dataset("walk") is None and open_store().list_runs() == []


def test_unknown_experiment_and_syntax_errors(tmp_path):
    path = experiments_file(tmp_path)
    assert "no experiment named 'nope'" in run("nope", "--file", path).stderr
    path.write_text(path.read_text() + "\n[experiments.broken\n")
    result = run("study", "--file", path)
    assert result.exit_code == 2 and "line" in result.stderr and "column" in result.stderr


def test_the_shipped_experiments_file_is_valid(project_root):
    for study in ("main-3seeds-noise", "llm2rec-pipeline", "quickstart-rerank", "paper-cpu", "paper-gpu"):
        result = run(study, "--file", project_root / "experiments.toml", "--dry-run")
        assert result.exit_code == 0, result.output
    assert '"ExperimentsFile"' in runner.invoke(app, ["run", "--schema"]).stdout
