"""evaluate: every finished training run of the experiment named by ``of`` evaluated again on the test split
(another protocol, noisy histories, masked seen items), one run per trained run and grid point."""

import inspect

from seqrec.errors import SeqrecError
from seqrec.experiments.grid import expand
from seqrec.experiments.stages.base import Request, Stage, register
from seqrec.recsys.runner import evaluate_run, evaluation_config
from seqrec.store import open_store

OF = "of"
TRAINED_KIND = "train"  # the kind of run it evaluates


@register
class Evaluate(Stage):
    name = "evaluate"
    required = (OF,)
    every_process = True
    per_experiment = True

    def parameters(self):
        return {OF} | set(inspect.signature(evaluate_run).parameters) - {"run_id", "experiment"}

    def check(self, plan, name):
        experiments = plan.spec.experiments
        for params in expand(experiments[name]):
            source = experiments.get(params[OF])
            if source is None or source.stage != TRAINED_KIND:
                raise SeqrecError(f"{plan.where(name, OF)}: {params[OF]!r} is not a {TRAINED_KIND} experiment of "
                                  "this file")

    def requests(self, plan, name):
        store = open_store()
        requests = []
        for params in expand(plan.spec.experiments[name]):
            overrides = {key: value for key, value in params.items() if key not in (OF, "seed")}
            trained_runs = [run for run in store.list_runs(kind=TRAINED_KIND, experiment=params[OF],
                                                           status="finished", limit=None)
                            if run.seed == params["seed"]]
            if not trained_runs:
                requests.append(Request(params, waiting_for=params[OF]))
            requests += [Request({**params, "run": trained.id}, {"run_id": trained.id, **overrides})
                         for trained in trained_runs]
        return requests

    def resolvable(self, arguments):
        return True

    def resolve(self, arguments):
        overrides = {key: value for key, value in arguments.items() if key != "run_id"}
        return evaluation_config(open_store().get_run(arguments["run_id"]), **overrides)

    def execute(self, arguments, experiment, resume):
        return evaluate_run(**arguments, experiment=experiment)
