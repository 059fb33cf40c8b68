"""The profile-distillation study declared in experiments.toml: a profiles experiment, a profile-embed experiment
that names it, and a train grid over ``profiles = ["none", "profile-embed:..."]``, run on a tiny chat model and the
walk dataset; finished work is skipped, and the bundled study plans."""

from pathlib import Path

import pytest
from llm_fixtures import chat_model  # noqa: F401  (fixture)
from typer.testing import CliRunner

from seqrec.cli import app
from seqrec.experiments.plan import make_plan
from seqrec.store import open_store

runner = CliRunner()
REPOSITORY = Path(__file__).resolve().parent.parent


def study_file(tmp_path, chat_model, profiles="profiles:walk-profiles", extra=""):
    path = tmp_path / "experiments.toml"
    raw = tmp_path / "raw"  # where the walk fixture wrote its files
    path.write_text(f"""
[datasets.walk]
source = "csv"
options = {{ interactions = "{raw / 'inter.csv'}", items = "{raw / 'items.csv'}", k_core = 2, max_len = 5 }}

[models.chat]
alias = "{chat_model}"

[experiments.walk-profiles]
stage = "profiles"
dataset = "walk"
model = "chat"
params = {{ max_tokens = 4, users = 12, strategy = "agg_with" }}

[experiments.walk-embed]
stage = "profile-embed"
after = ["walk-profiles"]
model = "chat"
params = {{ profiles = "{profiles}", reduce = "pca:4" }}

[experiments.walk-study]
stage = "train"
after = ["walk-embed"]
dataset = "walk"
seeds = [0, 1]
params = {{ model = "sasrec", hidden = 16, heads = 2, layers = 1, epochs = 2, distill_epochs = 1 }}
grid = {{ profiles = ["none", "profile-embed:walk-embed"] }}
{extra}""")
    return path


def test_profiles_feed_a_train_grid_with_and_without_distillation(tmp_path, walk, chat_model):
    path = study_file(tmp_path, chat_model)
    dry = runner.invoke(app, ["run", "walk-study", "--file", str(path), "--dry-run"])
    assert dry.exit_code == 0 and "waiting" in dry.stdout
    result = runner.invoke(app, ["run", "walk-study", "--file", str(path)])
    assert result.exit_code == 0, result.output
    store = open_store()
    (profiles,) = store.list_runs(kind="profiles", experiment="walk-profiles")
    (embedded,) = store.list_runs(kind="embed-profiles", experiment="walk-embed")
    assert profiles.config["strategy"] == "agg_with" and embedded.config["profiles_run"] == profiles.id
    trained = store.list_runs(kind="train", experiment="walk-study")
    assert len(trained) == 4 and {run.status for run in trained} == {"finished"}
    distilled = [run for run in trained if run.config["hyper"].get("profiles")]
    assert [run.config["profiles"] for run in distilled] == [f"run:{embedded.id}"] * 2
    plain = [run for run in trained if run not in distilled]
    assert len(plain) == 2 and not any("profile_embeddings_sha256" in run.config for run in plain)
    assert store.final_metrics(distilled[0].id)["profiles"]["users_with_profile"] == 12
    again = runner.invoke(app, ["run", "walk-study", "--file", str(path)])
    assert again.exit_code == 0 and "to do" not in again.stdout
    assert len(store.list_runs(kind="profiles")) == 1 and len(store.list_runs(kind="embed-profiles")) == 1


@pytest.mark.parametrize("profiles, extra, message", [
    ("profiles:walk-study", "", "'walk-study' is not an experiment with stage = 'profiles'"),
    ("profiles:walk-profiles", '[experiments.walk-more]\nstage = "train"\ndataset = "walk"\nafter = ["walk-embed"]\n'
     'params = { model = "sasrec", profiles = "embed:walk-embed" }',
     "embed runs make no user-embeddings"),
    ("profiles:walk-profiles", '[experiments.walk-more]\nstage = "profiles"\ndataset = "walk"\nmodel = "chat"\n'
     'params = { prompt = "medium" }', "'medium' is not one of short, long"),
])
def test_bad_profile_references_are_one_line_errors_before_anything_runs(tmp_path, walk, chat_model, profiles,
                                                                         extra, message):
    path = study_file(tmp_path, chat_model, profiles, extra)
    target = "walk-more" if "walk-more" in extra else "walk-study"
    result = runner.invoke(app, ["run", target, "--file", str(path)])
    assert result.exit_code == 2 and message in result.output
    assert not open_store().list_runs()


def test_the_declared_studies_plan(tmp_path):
    for study in ("profiles-ml1m", "profiles-cpu"):
        plan = make_plan(study, REPOSITORY / "experiments.toml")
        trained = [point for name in plan.order for point in plan.points[name] if point.stage == "train"]
        assert len(trained) == 2 * 2 * 3  # two models, with and without profiles, three seeds
        assert {point.params["profiles"] for point in trained} == {"none", f"profile-embed:{study}-embed"}
        assert {point.params["model"] for point in trained} == {"sasrec", "bert4rec"}
