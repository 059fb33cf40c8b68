"""embed: every item's embedding from a text encoder or LLM, one per grid point (seeds do not apply: encoding is
deterministic). An embedding is shared by every experiment that asks for it."""

from seqrec.experiments.grid import expand
from seqrec.experiments.stages.base import Found, Request, Stage, register
from seqrec.llm.configs import EmbedConfig
from seqrec.llm.embed import embed_items, embedding_config, finished_embedding
from seqrec.training.options import fields_of


@register
class Embed(Stage):
    name = "embed"
    needs = ("dataset", "model")
    references = {"model": "model"}
    makes = ("item-embeddings",)

    def declared(self):
        return fields_of(EmbedConfig)

    def requests(self, plan, name):
        experiment = plan.spec.experiments[name]
        model = plan.model(name, "model")
        requests = []
        for params in expand(experiment):
            arguments = {"model": model, "dataset": experiment.dataset,
                         **{key: value for key, value in params.items() if key != "seed"}}
            request = Request({**arguments, "model": model or experiment.model}, arguments,
                              waiting_for=None if model else experiment.model)
            if request not in requests:
                requests.append(request)
        return requests

    def resolve(self, arguments):
        return embedding_config(**{key: value for key, value in arguments.items() if key != "batch_size"})

    def lookup(self, config, experiment):
        found = finished_embedding(config)  # a finished run counts while its matrix is on disk
        return None if found is None else Found(found.run_id, "finished")

    def execute(self, arguments, experiment, resume):
        return embed_items(**arguments).run_id
