"""The registry of stages: a stage registered anywhere is a stage of experiments.toml, identity is the hash of a
request's fully resolved config, each experiment is planned once, and a finished embedding is answered without
loading a model."""

import os
import subprocess
import sys
from dataclasses import dataclass

import pytest
from llm_fixtures import make_movies_dataset, movies, tiny_llama  # noqa: F401  (fixtures)
from typer.testing import CliRunner

from seqrec.cli import app
from seqrec.experiments import plan as planner
from seqrec.experiments.grid import expand
from seqrec.experiments.stages import Request, Stage, base, register
from seqrec.llm.backends.options import LLMOptions
from seqrec.store import open_store
from seqrec.training.options import fields_of, option

runner = CliRunner()


@dataclass
class TallyOptions:
    to: int = option(3, "Sum 0..to.", low=1, high=100)


class Tally(Stage):
    """A stage that sums 0..to into a run: nothing but the contract."""

    name = "tally"

    def declared(self):
        return fields_of(TallyOptions)

    def requests(self, plan, name):
        return [Request(params, params) for params in expand(plan.spec.experiments[name])]

    def resolve(self, arguments):
        return {"to": arguments.get("to", 3), "seed": arguments["seed"]}

    def execute(self, arguments, experiment, resume):
        config = self.resolve(arguments)
        with open_store().start_run(self.name, config, experiment=experiment, seed=config["seed"]) as run:
            run.log_metrics({"sum": sum(range(config["to"] + 1))}, split="test")
        return run.id


@pytest.fixture
def tally(monkeypatch):
    monkeypatch.setattr(base, "STAGES", dict(base.STAGES))  # the registration ends with the test
    register(Tally)


def write(tmp_path, text):
    path = tmp_path / "experiments.toml"
    path.write_text(text)
    return path


def test_a_stage_registered_in_a_test_runs_from_experiments_toml(tmp_path, tally):
    path = write(tmp_path, '[experiments.tallies]\nstage = "tally"\ngrid = { to = [3, 4] }\n')
    first = runner.invoke(app, ["run", "tallies", "--file", str(path)])
    assert first.exit_code == 0, first.output
    runs = open_store().list_runs(kind="tally")
    assert sorted(run.config["to"] for run in runs) == [3, 4]
    again = runner.invoke(app, ["run", "tallies", "--file", str(path)])
    assert again.exit_code == 0 and "to do" not in again.stdout
    assert len(open_store().list_runs(kind="tally")) == 2
    assert '"tally"' in runner.invoke(app, ["run", "--schema"]).stdout


@pytest.mark.parametrize("text, message", [
    ('[experiments.t]\nstage = "taly"\n', "experiments.t.stage: unknown stage 'taly' (known: delrec-distill, "
                                          "delrec-finetune, distill, embed, evaluate, llm2rec, prepare, "
                                          "profile-embed, profiles, rerank, tally, train); did you mean 'tally'?"),
    ('[experiments.t]\nstage = "tally"\nparams = { too = 3 }\n',
     "experiments.t.params.too: the tally stage does not take 'too' (it takes to); did you mean 'to'?"),
    ('[experiments.t]\nstage = "tally"\ngrid = { to = [3, 101] }\n',
     "experiments.t.grid.to: to = 101 is out of range [1, 100]"),
    ('[experiments.t]\nstage = "tally"\ndataset = "d"\n[datasets.d]\nsource = "csv"\n',
     "experiments.t.dataset: the tally stage does not use a dataset"),
])
def test_bad_input_to_a_registered_stage_is_one_line_exit_2_and_nothing_written(tmp_path, tally, text, message):
    path = write(tmp_path, text)
    result = runner.invoke(app, ["run", "t", "--file", str(path)])
    assert result.exit_code == 2 and f"{path}: {message}" in result.stderr.replace("\n", "")
    assert open_store().list_runs() == []


def movies_study(tmp_path, tiny_llama, extra=""):
    raw = tmp_path / "raw"
    make_movies_dataset(raw)
    return write(tmp_path, f"""
[datasets.movies]
source = "csv"
options = {{ interactions = "{raw / 'inter.csv'}", items = "{raw / 'items.csv'}", k_core = 2, max_len = 5 }}

[models.tiny]
alias = "{tiny_llama}"

[experiments.fp32]
stage = "embed"
dataset = "movies"
model = "tiny"
params = {{ max_length = 16 }}

[experiments.bf16]
extends = "fp32"
params = {{ bf16 = true }}
{extra}""")


def test_an_embed_request_that_differs_only_in_bf16_is_not_answered_by_a_fp32_run(tmp_path, tiny_llama, monkeypatch):
    monkeypatch.setattr("seqrec.llm.embed.bf16_supported", lambda: True)  # the same plan on any CPU
    path = movies_study(tmp_path, tiny_llama)
    assert runner.invoke(app, ["run", "fp32", "--file", str(path)]).exit_code == 0
    (fp32,) = open_store().list_runs(kind="embed")
    (point,) = planner.make_plan("bf16", path).points["bf16"]
    assert point.status == "to do" and point.run_id is None
    (again,) = planner.make_plan("fp32", path).points["fp32"]
    assert (again.status, again.run_id) == ("done", fp32.id)


def test_each_experiment_is_planned_once_per_run(tmp_path, tiny_llama, monkeypatch):
    path = movies_study(tmp_path, tiny_llama, """
[experiments.both]
stage = "embed"
after = ["fp32"]
dataset = "movies"
model = "tiny"
params = { max_length = 16 }
grid = { pooling = ["mean", "last"] }
""")
    resolved = []
    embed = base.STAGES["embed"]
    monkeypatch.setattr(embed, "resolve", lambda arguments, resolve=embed.resolve: resolved.append(arguments)
                        or resolve(arguments))
    assert runner.invoke(app, ["run", "both", "--file", str(path)]).exit_code == 0
    assert len(resolved) == 3 and len(open_store().list_runs(kind="embed")) == 2  # fp32 is both's mean point


def test_a_finished_embedding_is_answered_without_importing_transformers(tmp_path, tiny_llama, movies):
    from seqrec.llm.embed import embed_items

    first = embed_items(str(tiny_llama), movies, max_length=16)
    script = ("import sys; from seqrec.llm.embed import embed_items; "
              f"result = embed_items({str(tiny_llama)!r}, {movies!r}, max_length=16); "
              "print(result.run_id, result.cached, 'transformers' in sys.modules, 'torch' in sys.modules)")
    shown = subprocess.run([sys.executable, "-c", script], env=dict(os.environ), capture_output=True, text=True,
                           timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert shown.stdout.split() == [str(first.run_id), "True", "False", "False"]


class Ask(Stage):
    """A stage that calls an LLM: what the plan hands it for its model or endpoint and its prompt."""

    name = "ask"
    calls_llm = True
    uses = ("prompt",)

    def requests(self, plan, name):
        return [Request(params, {**params, "llm": plan.llm(name), "template": plan.template(name)})
                for params in expand(plan.spec.experiments[name])]

    def resolve(self, arguments):
        return arguments


ASK = """
[endpoints.local]
base_url = "http://127.0.0.1:9/v1"
model = "served-name"
api_key_env = "ASK_KEY"
max_concurrency = 4
options = { top_logprobs = 5, check = false }  # (nothing listens: no probe)

[models.small]
alias = "smollm2-135m-instruct"

[prompts.mine]
template = "templates/mine.jinja"
"""


@pytest.fixture
def ask(monkeypatch):
    monkeypatch.setattr(base, "STAGES", dict(base.STAGES))
    register(Ask)


def test_a_stage_that_calls_an_llm_gets_the_endpoint_or_the_model_and_its_prompt(tmp_path, ask, monkeypatch):
    monkeypatch.setenv("ASK_KEY", "secret-value")
    path = write(tmp_path, ASK + '[experiments.remote]\nstage = "ask"\nendpoint = "local"\nprompt = "mine"\n'
                                 '[experiments.here]\nstage = "ask"\nmodel = "small"\n')
    remote = planner.load_plan("remote", path)
    arguments = Ask().requests(remote, "remote")[0].arguments
    assert arguments["llm"] == LLMOptions(endpoint="http://127.0.0.1:9/v1", endpoint_model="served-name",
                                          api_key_env="ASK_KEY", max_concurrency=4,
                                          settings={"top_logprobs": 5, "check": False})
    assert "secret-value" not in repr(arguments)
    backend = arguments["llm"].open()  # the endpoint's client as declared
    assert (backend.model, backend.max_concurrency, backend.score_options["top_logprobs"]) == ("served-name", 4, 5)
    assert arguments["template"] == str(tmp_path / "templates" / "mine.jinja")
    here = planner.load_plan("here", path)
    assert Ask().requests(here, "here")[0].arguments == {"seed": 0, "llm": LLMOptions(llm="smollm2-135m-instruct"),
                                                         "template": None}


@pytest.mark.parametrize("fields, message", [
    ('model = "small"\nendpoint = "local"\n', "the ask stage calls an LLM: name either a model"),
    ("", "the ask stage calls an LLM: name either a model"),
    ('model = "small"\ndataset = "d"\n[datasets.d]\nsource = "csv"\n', "the ask stage does not use a dataset"),
])
def test_an_llm_stage_names_exactly_one_llm(tmp_path, ask, fields, message):
    path = write(tmp_path, ASK + '[experiments.t]\nstage = "ask"\n' + fields)
    result = runner.invoke(app, ["run", "t", "--file", str(path)])
    assert result.exit_code == 2 and message in result.output, result.output
