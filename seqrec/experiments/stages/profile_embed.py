"""profile-embed: the profiles an earlier profiles experiment wrote (``profiles = "profiles:<experiment>"``) embedded
by a sentence encoder (a [models] entry) into one vector per user, reduced by a seeded UMAP or PCA; one run per
grid point and seed (the reducer's seed). A train experiment distils them with ``profiles =
"profile-embed:<experiment>"``."""

import inspect

from seqrec.experiments.grid import expand
from seqrec.experiments.stages.base import Found, Request, Stage, is_reference, register
from seqrec.methods.profiles import embed_profiles, finished_user_embeddings, user_embedding_config

PROFILES = "profiles"


@register
class ProfileEmbed(Stage):
    name = "profile-embed"
    needs = ("model",)  # the dataset is the one the profiles were written for
    required = (PROFILES,)
    references = {PROFILES: "profiles"}
    makes = ("user-embeddings",)

    def parameters(self):
        return set(inspect.signature(embed_profiles).parameters) - {"encoder", "seed", "experiment"}

    def requests(self, plan, name):
        experiment = plan.spec.experiments[name]
        model = plan.model(name, "model")
        requests = []
        for params in expand(experiment):
            named = params[PROFILES]  # "profiles:<experiment>", or a run given as run:ID
            arguments = {**params, "model": model, PROFILES: plan.result(named) if is_reference(named) else named}
            waiting_for = experiment.model if model is None else None if arguments[PROFILES] else named
            requests.append(Request({**params, "model": model or experiment.model}, arguments, waiting_for))
        return requests

    @staticmethod
    def options(arguments: dict) -> dict:
        return {key: value for key, value in arguments.items() if key not in ("model", PROFILES)}

    def resolve(self, arguments):
        options = {key: value for key, value in self.options(arguments).items() if key != "batch_size"}
        return user_embedding_config(arguments[PROFILES], arguments["model"], **options)

    def lookup(self, config, experiment):
        found = finished_user_embeddings(config)  # a finished run counts while its matrix is on disk
        return None if found is None else Found(found.run_id, "finished")

    def execute(self, arguments, experiment, resume):
        return embed_profiles(arguments[PROFILES], arguments["model"], experiment=experiment,
                              **self.options(arguments)).run_id
