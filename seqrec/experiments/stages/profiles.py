"""profiles: one profile per training user of a dataset, written by an instruct LLM (the second paper), one run per
grid point and seed (the sampling seed). The LLM is a [models] entry or an earlier experiment's trained model; an
interrupted generation continues from the call cache when the experiment runs again."""

import inspect

from seqrec.experiments.grid import expand
from seqrec.experiments.stages.base import Found, Request, Stage, register
from seqrec.methods.profiles import PROMPTS, STRATEGIES, finished_profiles, generate_profiles, generation_config

FIXED = ("dataset", "llm", "endpoint", "endpoint_model", "seed")  # from the experiment's fields and seeds


@register
class Profiles(Stage):
    name = "profiles"
    needs = ("dataset", "model")
    references = {"model": "model"}
    makes = ("profiles",)

    def parameters(self):
        return set(inspect.signature(generation_config).parameters) - set(FIXED)

    def choices(self):
        return {"prompt": PROMPTS, "strategy": STRATEGIES}

    def requests(self, plan, name):
        experiment = plan.spec.experiments[name]
        model = plan.model(name, "model")
        return [Request(params, {"model": model, "dataset": experiment.dataset, **params},
                        waiting_for=None if model else experiment.model) for params in expand(experiment)]

    @staticmethod
    def options(arguments: dict) -> dict:
        return {key: value for key, value in arguments.items() if key not in ("model", "dataset")}

    def resolve(self, arguments):
        return generation_config(arguments["dataset"], arguments["model"], **self.options(arguments))

    def lookup(self, config, experiment):
        found = finished_profiles(config)  # a finished run counts while its profiles are on disk
        return None if found is None else Found(found.run_id, "finished")

    def execute(self, arguments, experiment, resume):
        return generate_profiles(arguments["dataset"], arguments["model"], experiment=experiment,
                                 **self.options(arguments)).run_id
