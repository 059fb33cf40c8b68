"""DELRec's two stages declared in experiments.toml: the teacher and the soft prompt named by reference and matched
by seed, the ablations checked per stage, bad declarations refused before anything runs."""

import pytest
from llm_fixtures import tiny_llama  # noqa: F401  (fixture)
from recsys_fixtures import make_walk_dataset
from typer.testing import CliRunner

from seqrec.cli import app
from seqrec.experiments import plan as planner
from seqrec.methods.delrec import DISTILL_KIND, FINETUNE_KIND
from seqrec.store import open_store

runner = CliRunner()
SMALL = "soft_tokens = 2, candidates = 5, top_h = 3, icl_examples = 1, max_examples = 8, valid_examples = 4"
STAGE2 = "candidates = 5, max_examples = 8, valid_examples = 4, test_examples = 6"


def study(tmp_path, tiny_llama, seeds="[0, 1]", distill_extra="", finetune_extra="", more=""):
    raw = tmp_path / "raw"
    make_walk_dataset(raw, name="unused")  # writes the csv files; the study prepares its own dataset from them
    path = tmp_path / "experiments.toml"
    path.write_text(f"""
[datasets.walk]
source = "csv"
options = {{ interactions = "{raw / 'inter.csv'}", items = "{raw / 'items.csv'}", k_core = 2, max_len = 5 }}

[models.tiny]
alias = "{tiny_llama}"

[experiments.data]
stage = "prepare"
dataset = "walk"

[experiments.sasrec]
stage = "train"
after = ["data"]
dataset = "walk"
seeds = [0, 1]
params = {{ model = "sasrec", hidden = 16, heads = 2, layers = 1, epochs = 1, eval = "sampled:4" }}

[experiments.soft]
stage = "delrec-distill"
after = ["sasrec"]
dataset = "walk"
model = "tiny"
teacher = "train:sasrec"
seeds = {seeds}
params = {{ {SMALL}, epochs = 1, batch_size = 4, warmup_steps = 1{distill_extra} }}

[experiments.tuned]
stage = "delrec-finetune"
after = ["soft"]
dataset = "walk"
model = "tiny"
teacher = "train:sasrec"
seeds = {seeds}
params = {{ distilled = "delrec-distill:soft", {STAGE2}, epochs = 1, batch_size = 4, warmup_steps = 1{finetune_extra} }}
{more}""")
    return path


@pytest.mark.slow
def test_each_seed_distils_its_own_teacher_and_fine_tunes_its_own_soft_prompt(tmp_path, tiny_llama):
    path = study(tmp_path, tiny_llama)
    result = runner.invoke(app, ["run", "tuned", "--file", str(path)])
    assert result.exit_code == 0, result.output
    store = open_store()
    teachers = {run.seed: run.id for run in store.list_runs(kind="train", experiment="sasrec")}
    distilled = {run.seed: run for run in store.list_runs(kind=DISTILL_KIND, experiment="soft")}
    tuned = {run.seed: run for run in store.list_runs(kind=FINETUNE_KIND, experiment="tuned")}
    assert set(teachers) == set(distilled) == set(tuned) == {0, 1}
    for seed in (0, 1):
        assert distilled[seed].config["teacher_run"] == teachers[seed]
        assert tuned[seed].config["distilled_run"] == distilled[seed].id
        assert tuned[seed].status == "finished" and tuned[seed].config["eval"] == "sampled:4"
    again = planner.make_plan("tuned", path)
    assert {point.status for name in ("soft", "tuned") for point in again.points[name]} == {"done"}


def test_a_stage_2_only_ablation_runs_without_a_soft_prompt_and_plans_after_the_teacher(tmp_path, tiny_llama):
    path = study(tmp_path, tiny_llama, seeds="[0]", more="""
[experiments.no-prompt]
stage = "delrec-finetune"
after = ["sasrec"]
dataset = "walk"
model = "tiny"
teacher = "train:sasrec"
params = { ablation = "wo_sp", candidates = 5 }
""")
    plan = planner.make_plan("no-prompt", path)
    (point,) = plan.points["no-prompt"]
    assert point.status == "waiting"  # for the teacher's run of seed 0
    assert runner.invoke(app, ["run", "sasrec", "--file", str(path)]).exit_code == 0
    (point,) = planner.make_plan("no-prompt", path).points["no-prompt"]
    assert point.status == "to do"


@pytest.mark.parametrize("change, message", [
    (dict(distill_extra=', ablation = "w_xyz"'), "experiments.soft.params.ablation: ablation must be one of none"),
    (dict(distill_extra=', ablation = "w_ulsr"'), "w_ulsr is an ablation of the delrec-finetune stage"),
    (dict(finetune_extra=', ablation = "wo_ta"'), "wo_ta is an ablation of the delrec-distill stage"),
    (dict(finetune_extra=', ablation = "wo_sp"'), "ablation wo_sp takes no distilled soft prompt"),
    (dict(finetune_extra=', soft_tokens = 0'), "soft_tokens = 0 is out of range"),
    (dict(seeds="[0, 5]"), "experiments.soft.teacher: 'train:sasrec': that experiment has no seed 5"),
])
def test_bad_declarations_are_one_line_and_nothing_runs(tmp_path, tiny_llama, change, message):
    path = study(tmp_path, tiny_llama, **change)
    result = runner.invoke(app, ["run", "tuned", "--file", str(path)])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert open_store().list_runs() == []


def test_a_teacher_that_names_no_train_experiment_is_refused(tmp_path, tiny_llama):
    path = study(tmp_path, tiny_llama)
    path.write_text(path.read_text().replace('teacher = "train:sasrec"\nseeds', 'teacher = "train:data"\nseeds', 1))
    result = runner.invoke(app, ["run", "soft", "--file", str(path)])
    assert result.exit_code == 2
    assert "experiments.soft.teacher: 'train:data': name an experiment of this file with stage = 'train'" in \
        " ".join(result.output.split())


@pytest.mark.parametrize("size", ["cpu", "gpu"])
def test_the_shipped_delrec_study_plans_baselines_delrec_with_each_and_the_ablations(project_root, size):
    plan = planner.make_plan(f"delrec-{size}", project_root / "experiments.toml")
    points = [point for name in plan.order for point in plan.points[name]]
    per_stage = {stage: sum(point.stage == stage for point in points) for stage in ("train", "delrec-distill",
                                                                                    "delrec-finetune")}
    # 3 seeds of: 3 conventional models; stage 1 for each and for 3 ablations; stage 2 for those and 4 more
    assert per_stage == {"train": 9, "delrec-distill": 18, "delrec-finetune": 30}
    ablations = {point.params.get("ablation", "none") for point in points if point.stage == "delrec-finetune"}
    assert ablations == {"none", "wo_sp", "w_mcp", "w_usp", "w_ulsr"}
    assert not [point.error for point in points if point.status == "failed"]
