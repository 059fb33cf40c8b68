import pytest

from seqrec.errors import SeqrecError
from seqrec.experiments.grid import expand
from seqrec.experiments.schema import json_schema, load_experiments

BASE = """
[datasets.ml]
source = "movielens"
options = { variant = "ml-100k" }

[experiments.base]
stage = "train"
dataset = "ml"
seeds = [0, 1]
params = { model = "sasrec", epochs = 5 }
grid = { noise = ["none", "deletion"] }
"""


def write(tmp_path, text):
    path = tmp_path / "experiments.toml"
    path.write_text(text)
    return path


def test_grid_times_seeds_and_extends(tmp_path):
    spec = load_experiments(write(tmp_path, BASE + """
[experiments.paired]
extends = "base"
params = { epochs = 7 }
zip = { lr = [0.001, 0.0001], weight_decay = [0.0, 0.0001] }
"""))
    points = expand(spec.experiments["base"])
    assert len(points) == 4 and points[0] == {"model": "sasrec", "epochs": 5, "noise": "none", "seed": 0}
    paired = expand(spec.experiments["paired"])
    assert len(paired) == 2 * 2 * 2
    assert {(p["lr"], p["weight_decay"]) for p in paired} == {(0.001, 0.0), (0.0001, 0.0001)}
    assert all(p["epochs"] == 7 and p["model"] == "sasrec" for p in paired)
    assert spec.experiments["paired"].dataset == "ml"


@pytest.mark.parametrize("text, message", [
    ("[experiments.x\nstage = 1", "TOML syntax error"),
    ("[experiments.x]\nstage = \"train\"\ncolour = \"red\"\n", "experiments.x.colour: Extra inputs are not permitted"),
    ("[experiments.x]\nstage = \"train\"\ndataset = \"nope\"\n", "experiments.x.dataset: unknown dataset 'nope'"),
    ("[experiments.x]\nstage = \"fly\"\n", "experiments.x.stage"),
    ("[experiments.x]\nextends = \"y\"\n", "experiments.x.extends: unknown experiment 'y'"),
    ("[experiments.x]\nstage = \"train\"\nzip = { a = [1, 2], b = [1] }\n", "equal lengths"),
])
def test_bad_files_name_the_problem(tmp_path, text, message):
    with pytest.raises(SeqrecError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        load_experiments(write(tmp_path, text))


def test_syntax_errors_give_line_and_column(tmp_path):
    with pytest.raises(SeqrecError, match=r"line 2, column \d+"):
        load_experiments(write(tmp_path, "[experiments.x]\nstage = \n"))


def test_json_schema_is_exported():
    assert '"experiments"' in json_schema()
