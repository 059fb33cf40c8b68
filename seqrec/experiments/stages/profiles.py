"""profiles: one profile per training user of a dataset, written by an instruct LLM (the second paper), one run per
grid point and seed (the sampling seed). The LLM is a [models] entry, an earlier experiment's trained model or an
[endpoints] entry; an interrupted generation continues from the call cache when the experiment runs again."""

import inspect

from seqrec.experiments.grid import expand
from seqrec.experiments.stages.base import Found, Request, Stage, register
from seqrec.methods.profiles import PROMPTS, STRATEGIES, finished_profiles, generate_profiles, generation_config

FIXED = ("dataset", "llm", "seed")  # from the experiment's fields and seeds


@register
class Profiles(Stage):
    name = "profiles"
    needs = ("dataset",)
    calls_llm = True
    references = {"model": "model"}
    makes = ("profiles",)

    def parameters(self):
        return set(inspect.signature(generation_config).parameters) - set(FIXED)

    def choices(self):
        return {"prompt": PROMPTS, "strategy": STRATEGIES}

    def requests(self, plan, name):
        experiment = plan.spec.experiments[name]
        llm = plan.llm(name)
        waiting_for = experiment.model if llm.llm is None and llm.endpoint is None else None
        return [Request(params, {"llm": llm, "dataset": experiment.dataset, **params}, waiting_for=waiting_for)
                for params in expand(experiment)]

    @staticmethod
    def options(arguments: dict) -> dict:
        return {key: value for key, value in arguments.items() if key not in ("llm", "dataset")}

    def resolve(self, arguments):
        return generation_config(arguments["dataset"], arguments["llm"], **self.options(arguments))

    def lookup(self, config, experiment):
        found = finished_profiles(config)  # a finished run counts while its profiles are on disk
        return None if found is None else Found(found.run_id, "finished")

    def execute(self, arguments, experiment, resume):
        return generate_profiles(arguments["dataset"], arguments["llm"], experiment=experiment,
                                 **self.options(arguments)).run_id
