"""rerank: an LLM (``model``, a [models] entry, or ``endpoint``) re-ranks the top K of every finished training run
of the experiment named by ``of`` (only those trained on the item embeddings ``item_emb`` names, when given), one
run per trained run and grid point; ``prompt`` may name a [prompts] template."""

import inspect

from seqrec.errors import SeqrecError
from seqrec.experiments.grid import expand
from seqrec.experiments.stages.base import Request, Stage, is_reference, register
from seqrec.methods.rerank import rerank, rerank_config
from seqrec.store import open_store

OF = "of"
ITEM_EMB = "item_emb"
TRAINED_KIND = "train"
EXECUTE_ONLY = ("batch_size",)  # how to call, not what is computed


@register
class Rerank(Stage):
    name = "rerank"
    calls_llm = True
    uses = ("prompt",)
    required = (OF,)
    references = {ITEM_EMB: "item-embeddings"}
    per_experiment = True

    def parameters(self):
        return {OF, ITEM_EMB, "batch_size"} | set(inspect.signature(rerank_config).parameters) - {"base", "llm"}

    def check(self, plan, name):
        experiment = plan.spec.experiments[name]
        for params in expand(experiment):
            source = plan.spec.experiments.get(params[OF])
            if source is None or source.stage != TRAINED_KIND:
                raise SeqrecError(f"{plan.where(name, OF)}: {params[OF]!r} is not a {TRAINED_KIND} experiment of "
                                  "this file")

    def requests(self, plan, name):
        experiment = plan.spec.experiments[name]
        llm = plan.llm(name)
        if llm.llm is None and llm.endpoint is None:  # an earlier experiment's model, not made yet
            return [Request(params, waiting_for=experiment.model) for params in expand(experiment)]
        template = {"template": plan.template(name)} if experiment.prompt else {}
        store = open_store()
        requests = []
        for params in expand(experiment):
            options = {key: value for key, value in params.items() if key not in (OF, ITEM_EMB)}
            trained = [run for run in store.list_runs(kind=TRAINED_KIND, experiment=params[OF], status="finished",
                                                      limit=None) if run.seed == params["seed"]]
            wanted = params.get(ITEM_EMB)
            if is_reference(wanted):
                source = plan.result(wanted)
                if source is None:
                    requests.append(Request(params, waiting_for=wanted))
                    continue
                trained = [run for run in trained if run.config.get("item_emb_source") == source]
            elif wanted is not None:
                trained = [run for run in trained if (run.config.get("item_emb_source") or "id") == wanted]
            if not trained:
                requests.append(Request(params, waiting_for=params[OF]))
            requests += [Request({**params, "run": run.id}, {"base": run.id, "llm": llm, **template, **options})
                         for run in trained]
        return requests

    def resolve(self, arguments):
        return rerank_config(**{key: value for key, value in arguments.items() if key not in EXECUTE_ONLY})

    def execute(self, arguments, experiment, resume):
        return rerank(**arguments, experiment=experiment).run_id
