"""train: a sequential recommender trained once per grid point and seed, on ID embeddings or on frozen item
embeddings that an earlier experiment made (``item_emb = "embed:<experiment>"``, ``"distill:..."``,
``"llm2rec:..."``), with or without distilling the user embeddings of a profile-embed experiment
(``profiles = "profile-embed:<experiment>"``; ``"none"`` trains without, so that one grid holds both)."""

import inspect

from seqrec.experiments.grid import expand
from seqrec.experiments.stages.base import Request, Stage, is_reference, register
from seqrec.recsys.configs import recommender_options
from seqrec.recsys.runner import train_config, train_model
from seqrec.training.options import fields_of

ITEM_EMB = "item_emb"
PROFILES = "profiles"
NO_PROFILES = "none"


@register
class Train(Stage):
    name = "train"
    needs = ("dataset",)
    required = ("model",)
    references = {ITEM_EMB: "item-embeddings", PROFILES: "user-embeddings"}
    every_process = True
    per_experiment = True
    resumable = True

    def declared(self):
        return fields_of(*recommender_options())

    def parameters(self):
        return set(self.declared()) | set(inspect.signature(train_config).parameters) - {"hyper", "dataset", "seed"}

    def choices(self):
        from seqrec.recsys.models import RECOMMENDERS

        return {"model": tuple(RECOMMENDERS)}

    def requests(self, plan, name):
        experiment = plan.spec.experiments[name]
        requests = []
        for params in expand(experiment):
            arguments = {"dataset": experiment.dataset, **params}
            if arguments.get(PROFILES) == NO_PROFILES:
                del arguments[PROFILES]  # the run's identity is that of a run never told about profiles
            waiting_for = None
            for key in self.references:
                if is_reference(arguments.get(key)):
                    arguments[key] = plan.result(params[key])
                    waiting_for = waiting_for or (None if arguments[key] else params[key])
            requests.append(Request(params, arguments, waiting_for))
        return requests

    def resolve(self, arguments):
        return train_config(**arguments)

    def execute(self, arguments, experiment, resume):
        options = {key: value for key, value in arguments.items() if key != "seed"}
        return train_model(**options, seeds=[arguments["seed"]], resume=resume, experiment=experiment)[0]
