"""delrec-distill: DELRec's stage 1, a soft prompt that distils a conventional model's pattern into an LLM, one
run per grid point and seed. ``model`` is the LLM ([models] entry); ``teacher = "train:<experiment>"`` names a
train experiment, whose run of the same seed is the conventional model distilled."""

from seqrec.errors import SeqrecError
from seqrec.experiments.grid import expand
from seqrec.experiments.stages.base import Request, Stage, register
from seqrec.llm.registry import is_available
from seqrec.methods.delrec_options import (DISTILL_ABLATIONS, FINETUNE_ABLATIONS, DistillStageConfig,
                                           DistillTraining)
from seqrec.store import open_store
from seqrec.training.options import fields_of

TEACHER_STAGE = "train"
ABLATION = "ablation"


@register
class DELRecDistill(Stage):
    name = "delrec-distill"
    needs = ("dataset", "model", "teacher")
    references = {"model": "model"}
    makes = ("soft-prompt",)
    every_process = True
    resumable = True
    ablations = ("none", *DISTILL_ABLATIONS)  # the ablations this stage runs; the others are the other stage's
    seeded = {"teacher": TEACHER_STAGE}  # a field or parameter -> the stage whose run of the same seed it names

    def declared(self):
        return fields_of(DistillStageConfig, DistillTraining, exclude=("metric",))

    def check(self, plan, name):
        experiment = plan.spec.experiments[name]
        for key, stage_name in self.seeded.items():
            values = [getattr(experiment, key)] if key == "teacher" else {
                point[key] for point in expand(experiment) if point.get(key) is not None}
            for value in values:
                plan.check_seeded_reference(name, key, value, stage_name)
        for point in expand(experiment):
            ablation = point.get(ABLATION, "none")
            if ablation not in self.ablations:
                other = "delrec-finetune" if ablation in FINETUNE_ABLATIONS else "delrec-distill"
                raise SeqrecError(f"{plan.where(name, ABLATION)}: {ablation} is an ablation of the {other} stage; "
                                  f"{self.name} takes {', '.join(self.ablations)}")

    def seeded_arguments(self, plan, name, params) -> tuple[dict, str | None]:
        """The run ids the seed-matched references name for this point, and the first one still missing."""
        experiment = plan.spec.experiments[name]
        arguments, waiting = {}, None
        for key in self.seeded:
            reference = getattr(experiment, key) if key == "teacher" else params.get(key)
            if reference is None:
                continue
            arguments[key] = plan.result_of_seed(reference, params["seed"])
            if arguments[key] is None:
                waiting = waiting or reference
        return arguments, waiting

    def requests(self, plan, name):
        experiment = plan.spec.experiments[name]
        model = plan.model(name, "model")
        requests = []
        for params in expand(experiment):
            runs, waiting = self.seeded_arguments(plan, name, params)
            arguments = {**params, "model": model, "dataset": experiment.dataset, **runs}
            requests.append(Request(params, arguments, waiting_for=waiting or (None if model else experiment.model)))
        return requests

    def resolvable(self, arguments):
        return open_store().get_dataset(arguments["dataset"]) is not None and is_available(arguments["model"])

    @staticmethod
    def options(arguments: dict) -> dict:
        return {key: value for key, value in arguments.items()
                if key not in ("model", "dataset", "teacher", "distilled", "seed")}

    def resolve(self, arguments):
        from seqrec.methods.delrec import distill_config

        return distill_config(arguments["model"], arguments["dataset"], arguments["teacher"], arguments["seed"],
                              self.options(arguments))

    def lookup(self, config, experiment):
        from seqrec.methods.delrec import SOFT_PROMPT_ARTIFACT

        found = super().lookup(config, experiment)
        if found is not None and found.status == "finished" and not open_store().artifacts(
                found.id, kind=SOFT_PROMPT_ARTIFACT):
            return None  # distill_pattern() makes such a run again
        return found

    def execute(self, arguments, experiment, resume):
        from seqrec.methods.delrec import distill_pattern

        return distill_pattern(arguments["model"], arguments["dataset"], arguments["teacher"], seed=arguments["seed"],
                               resume=resume, experiment=experiment, **self.options(arguments))
