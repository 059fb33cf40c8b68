"""llm2rec: one LLM2Rec step (csft, mntp or ic) trained on a model, which may be an earlier llm2rec experiment's
result (``model = "llm2rec:<experiment>"``); one run per grid point and seed.

One stage with a ``step`` parameter rather than a stage per step: the steps share their options, their run kind
and the "llm2rec:<experiment>" form that names their result, and the list of steps stays where the steps are
written. ``iem`` (mntp, then ic) is declared as two experiments, the second's model naming the first, so that
every experiment is one run with one identity.
"""

from seqrec.experiments.grid import expand
from seqrec.experiments.stages.base import Request, Stage, register
from seqrec.llm.configs import LLM2RecConfig, LLM2RecTraining
from seqrec.llm.llm2rec import STAGES, stage_config, train_embedder
from seqrec.training.options import fields_of

STEP = "step"


@register
class LLM2Rec(Stage):
    name = "llm2rec"
    needs = ("dataset", "model")
    required = (STEP,)
    references = {"model": "model"}
    makes = ("model", "item-embeddings")  # every step saves the model; ic also every item's embedding
    every_process = True
    resumable = True

    def declared(self):
        return fields_of(LLM2RecConfig, LLM2RecTraining, exclude=("metric",))

    def parameters(self):
        return {STEP} | set(self.declared())

    def choices(self):
        return {STEP: STAGES}

    def requests(self, plan, name):
        experiment = plan.spec.experiments[name]
        model = plan.model(name, "model")
        return [Request(params, {"model": model, "dataset": experiment.dataset, **params},
                        waiting_for=None if model else experiment.model) for params in expand(experiment)]

    @staticmethod
    def options(arguments: dict) -> dict:
        return {key: value for key, value in arguments.items() if key not in ("model", "dataset", STEP, "seed")}

    def resolve(self, arguments):
        return stage_config(arguments["model"], arguments["dataset"], arguments[STEP], arguments["seed"],
                            self.options(arguments))

    def execute(self, arguments, experiment, resume):
        run_ids = train_embedder(arguments["model"], arguments["dataset"], arguments[STEP], seed=arguments["seed"],
                                 resume=resume, experiment=experiment, **self.options(arguments))
        return run_ids[-1]
