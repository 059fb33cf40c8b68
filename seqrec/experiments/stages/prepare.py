"""prepare: a [datasets] entry made into a prepared dataset. Its store is the dataset table, not runs: a dataset
name is unique, and preparing refuses a name already taken by other inputs or options."""

import dataclasses

from seqrec.data.prepare import PrepareOptions, prepare_source
from seqrec.experiments.stages.base import Found, Request, Stage, register
from seqrec.store import open_store

PREPARE_OPTIONS = {field.name for field in dataclasses.fields(PrepareOptions)}


@register
class Prepare(Stage):
    name = "prepare"
    needs = ("dataset",)

    def requests(self, plan, name):
        dataset_name = plan.spec.experiments[name].dataset
        dataset = plan.spec.datasets[dataset_name]
        return [Request({"dataset": dataset_name},
                        {"name": dataset_name, "source": dataset.source, "options": dict(dataset.options)})]

    def resolvable(self, arguments):
        return True

    def resolve(self, arguments):
        """The source and every preprocessing option, defaults filled in, as the dataset's row records them."""
        options = {key: value for key, value in arguments["options"].items() if key in PREPARE_OPTIONS}
        return {"name": arguments["name"], "source": arguments["source"],
                "options": PrepareOptions(**options).as_record()}

    def lookup(self, config, experiment):
        row = open_store().get_dataset(config["name"])
        if row is None or row.source != config["source"]:
            return None
        # the row also records the source's inputs and where the files were, which planning does not read
        recorded = {key: row.options.get(key) for key in config["options"]}
        return Found(row.id, "finished") if recorded == config["options"] else None

    def execute(self, arguments, experiment, resume):
        inputs = {key: value for key, value in arguments["options"].items() if key not in PREPARE_OPTIONS}
        options = {key: value for key, value in arguments["options"].items() if key in PREPARE_OPTIONS}
        return prepare_source(arguments["source"], {**inputs, "name": arguments["name"]}, options).id
