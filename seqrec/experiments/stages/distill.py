"""distill: a student LLM trained to embed items the way a frozen teacher does, one run per grid point and seed.
Teacher and student are [models] entries or an earlier experiment's trained model ("llm2rec:<experiment>")."""

from seqrec.experiments.grid import expand
from seqrec.experiments.stages.base import Found, Request, Stage, register
from seqrec.llm.configs import DistillConfig, DistillTraining
from seqrec.llm.distill import distill, distill_config_dict
from seqrec.store import open_store
from seqrec.training.options import fields_of

ROLES = ("teacher", "student")


@register
class Distill(Stage):
    name = "distill"
    needs = ("dataset", *ROLES)
    references = {role: "model" for role in ROLES}
    makes = ("model", "item-embeddings")
    every_process = True
    resumable = True

    def declared(self):
        return fields_of(DistillConfig, DistillTraining, exclude=("metric",))

    def requests(self, plan, name):
        experiment = plan.spec.experiments[name]
        models = {role: plan.model(name, role) for role in ROLES}
        waiting = next((getattr(experiment, role) for role in ROLES if models[role] is None), None)
        return [Request(params, {**models, "dataset": experiment.dataset, **params}, waiting_for=waiting)
                for params in expand(experiment)]

    def resolve(self, arguments):
        options = {key: value for key, value in arguments.items() if key not in (*ROLES, "dataset", "seed")}
        return distill_config_dict(arguments["teacher"], arguments["student"], arguments["dataset"],
                                   arguments["seed"], options)

    def lookup(self, config, experiment):
        found = super().lookup(config, experiment)
        if found is not None and found.status == "finished" and not open_store().artifacts(found.id,
                                                                                           kind="item-embeddings"):
            return None  # distill() makes such a run again
        return found

    def execute(self, arguments, experiment, resume):
        return distill(**arguments, resume=resume, experiment=experiment)
